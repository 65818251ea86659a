"""FFHQ alignment of a face from its five dlib landmarks, and pasting a restored face back.

Both directions warp with OpenCV; when a warp shrinks by 2x or more, the source is first
reduced with a Gaussian pyramid so large faces do not alias.
"""
from collections.abc import Iterable

import cv2
import numpy as np

FACE_SIZE = 512

# dlib's five landmarks (shape_predictor_5_face_landmarks order: eye corners, then the nose)
# in a 1024x1024 FFHQ-aligned face.
FFHQ_TEMPLATE_1024 = np.array([
    [686.7722772277227, 488.6237623762376],
    [586.7722772277227, 493.5940594059406],
    [337.91089108910893, 488.38613861386136],
    [437.9504950495049, 493.51485148514854],
    [513.5841584158416, 678.5049504950495],
])

# Share of the face crop over which a pasted face fades in: zero on the outer margin, then a
# smooth ramp to full weight.
FEATHER_MARGIN = 0.02
FEATHER_RAMP = 0.10


def ffhq_template(size: int = FACE_SIZE) -> np.ndarray:
    """The five template points for a size x size crop (the 1024 template scaled)."""
    return FFHQ_TEMPLATE_1024 * (size / 1024.0)


def similarity_transform(src, dst):
    """2x3 matrix (rotation, uniform scale, translation) mapping `src` points onto `dst` in least squares.

    Solves x' = a x - b y + tx, y' = b x + a y + ty over all points (no RANSAC, no reflection).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    x, y = src[:, 0], src[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    system = np.empty((2 * len(src), 4))
    system[0::2] = np.stack([x, -y, ones, zeros], axis=1)
    system[1::2] = np.stack([y, x, zeros, ones], axis=1)
    (a, b, tx, ty), *_ = np.linalg.lstsq(system, dst.reshape(-1), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def affine_scale(matrix: np.ndarray) -> float:
    """Length scale of an affine map (square root of the area ratio)."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def _compose(matrix, inner):
    """The 2x3 matrix of `matrix` applied after the 2x3 matrix `inner`."""
    return matrix @ np.vstack([inner, [0.0, 0.0, 1.0]])


def _corners(width, height):
    return np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64)


def _window(points, shape, margin):
    """Integer (x0, y0, x1, y1) bounding `points` plus `margin`, clipped to an image of `shape`."""
    x0, y0 = np.floor(points.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + margin).astype(int) + 1
    return max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])


def warp_affine(src, matrix, dsize, border_mode=cv2.BORDER_CONSTANT):
    """`cv2.warpAffine` (bicubic, source -> destination `matrix`) that stays sharp without aliasing.

    When the map shrinks by 2x or more, only the source window it reads is kept and halved
    with `cv2.pyrDown` (Gaussian blur, keep even pixels: source x = 2 x') until it shrinks by
    less than 2x, the matrix following each step.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if affine_scale(matrix) <= 0.5:
        levels = int(np.floor(np.log2(1.0 / affine_scale(matrix))))
        read = transform_points(cv2.invertAffineTransform(matrix), _corners(*dsize))
        x0, y0, x1, y1 = _window(read, src.shape, margin=4 * 2 ** levels)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return np.zeros((dsize[1], dsize[0]) + src.shape[2:], dtype=src.dtype)
        src = src[y0:y1, x0:x1]
        matrix = _compose(matrix, np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]]))
        for _ in range(levels):
            if min(src.shape[:2]) < 2:
                break
            src = cv2.pyrDown(src)
            matrix = _compose(matrix, np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    return cv2.warpAffine(np.ascontiguousarray(src), matrix, dsize, flags=cv2.INTER_CUBIC, borderMode=border_mode)


def align_face(photo: np.ndarray, landmarks: np.ndarray, size: int = FACE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(size x size FFHQ-aligned crop, 2x3 photo -> crop matrix) for a face's five landmarks.

    Pixels beyond the photo are filled by reflection, as in the FFHQ crops SPARNetHD learnt from.
    """
    matrix = similarity_transform(landmarks, ffhq_template(size))
    crop = warp_affine(photo, matrix, (size, size), border_mode=cv2.BORDER_REFLECT_101)
    return crop, matrix


def feather_mask(size: int = FACE_SIZE) -> np.ndarray:
    """size x size float32 blending weights: 0 at the crop border, 1 in the middle, smooth between."""
    index = np.arange(size, dtype=np.float64)
    to_border = np.minimum(index, size - 1 - index)
    distance = np.minimum.outer(to_border, to_border)
    ramp = np.clip((distance - FEATHER_MARGIN * size) / (FEATHER_RAMP * size), 0.0, 1.0)
    return (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)


def upscale_matrix(factor: int) -> np.ndarray:
    """2x3 map from photo pixels to the pixels of the photo enlarged `factor` times by `cv2.resize`."""
    shift = (factor - 1) / 2.0
    return np.array([[factor, 0.0, shift], [0.0, factor, shift]])


def paste_faces(photo: np.ndarray, faces: Iterable[np.ndarray], matrices: Iterable[np.ndarray],
                upscale: int = 1, background: np.ndarray | None = None) -> np.ndarray:
    """Blend faces back into the photo (enlarged `upscale` times, bicubic) through feathered masks.

    `faces` are the restored crops, `matrices` the photo -> crop matrices of `align_face`. Each
    face is warped and blended (in float) only over the window it covers, so huge photos stay
    uint8 in memory; the result is uint8. `background`, the photo already enlarged `upscale`
    times some other way (a super-resolution network), replaces the bicubic enlargement.
    """
    height, width = photo.shape[:2]
    if background is not None:
        if background.shape != (height * upscale, width * upscale, 3):
            raise ValueError(f'the background is {background.shape}, not the photo {photo.shape} enlarged '
                             f'{upscale} times')
        canvas = background.copy()
    else:
        canvas = photo.copy() if upscale == 1 else cv2.resize(photo, (width * upscale, height * upscale),
                                                              interpolation=cv2.INTER_CUBIC)
    for face, matrix in zip(faces, matrices):
        back = _compose(upscale_matrix(upscale), cv2.invertAffineTransform(matrix))
        x0, y0, x1, y1 = _window(transform_points(back, _corners(*face.shape[1::-1])), canvas.shape, margin=2)
        if x1 <= x0 or y1 <= y0:
            continue
        to_window = back - np.array([[0.0, 0.0, x0], [0.0, 0.0, y0]])
        window = (x1 - x0, y1 - y0)
        pasted = warp_affine(face.astype(np.float32), to_window, window)
        weight = warp_affine(feather_mask(face.shape[0]), to_window, window)
        weight = np.clip(weight, 0.0, 1.0)[..., None]
        region = canvas[y0:y1, x0:x1].astype(np.float32)
        region += weight * (pasted - region)
        canvas[y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255)
    return canvas
