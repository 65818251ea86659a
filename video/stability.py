"""Measures of how steady enhanced faces are in a video, and clips with a known camera path to measure them on.

- `landmark_jitter`: how much the alignment shakes, in pixels of the 512 px aligned face;
- `face_flicker`: how much more the output's face region changes from frame to frame than the input's;
- `pan_zoom_clip`: a real photo filmed by a smoothly panning and zooming camera, with sensor noise and JPEG
  compression, and the true photo -> frame matrices (so the true landmarks of every frame are known).
"""
from collections.abc import Sequence

import cv2
import numpy as np

from faces.align import FACE_SIZE, ffhq_template, upscale_matrix


def eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eyes' centres of dlib's five landmarks (..., 5, 2): the face's size in the jitter
    metric (points 0-1 and 2-3 are the corners of each eye)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    first = landmarks[..., 0:2, :].mean(axis=-2)
    second = landmarks[..., 2:4, :].mean(axis=-2)
    return np.linalg.norm(first - second, axis=-1)


# Eye distance in the aligned face: a distance of d eye distances in a frame is d * ALIGNED_EYE_DISTANCE pixels there.
ALIGNED_EYE_DISTANCE = float(eye_distance(ffhq_template(FACE_SIZE)))


def landmark_jitter(landmarks: np.ndarray) -> float:
    """Mean norm of the second differences over time of one face's landmarks (T, 5, 2), T >= 3, in pixels of the
    512 px aligned face: each frame's are divided by that frame's eye distance, times the aligned face's.

    A face moving at constant velocity has none; the frame-to-frame shake that alignment turns into a shaking
    face is what remains.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[0] < 3:
        raise ValueError(f'landmarks must be (T >= 3, points, 2), got shape {landmarks.shape}')
    second = landmarks[2:] - 2 * landmarks[1:-1] + landmarks[:-2]
    return float(np.mean(np.linalg.norm(second, axis=-1) / eye_distance(landmarks[1:-1])[:, None])
                 * ALIGNED_EYE_DISTANCE)


def landmark_error(landmarks: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance of landmarks (T, 5, 2) to the true ones, in pixels of the 512 px aligned face (divided by the
    true eye distance of each frame): the lag smoothing adds shows here."""
    landmarks, truth = np.asarray(landmarks, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    return float(np.mean(np.linalg.norm(landmarks - truth, axis=-1) / eye_distance(truth)[..., None])
                 * ALIGNED_EYE_DISTANCE)


def face_flicker(output_frames: Sequence[np.ndarray], input_frames: Sequence[np.ndarray],
                 region: Sequence) -> float:
    """How much more the output's face region changes between consecutive frames than the input's, in levels.

    For each pair of consecutive frames, the mean absolute difference (over pixels and channels, 0-255) of the
    region in the output minus the same in the input; the mean over pairs. The input's own change (noise, motion)
    is so not counted: 0 means the output changes as much as its input, a positive value flicker added. Output
    frames of another size are first resized to the input's (area interpolation), so both are measured on the
    same pixels. `region`: (left, top, right, bottom) in input pixels, or one such box per frame (the pair ending
    at frame t is measured in frame t's box).
    """
    if len(output_frames) != len(input_frames) or len(input_frames) < 2:
        raise ValueError(f'need as many output as input frames, at least 2: got {len(output_frames)} and '
                         f'{len(input_frames)}')
    boxes = np.asarray(region, dtype=np.float64)
    boxes = np.broadcast_to(boxes, (len(input_frames), 4)) if boxes.ndim == 1 else boxes
    height, width = input_frames[0].shape[:2]
    outputs = [frame if frame.shape[:2] == (height, width) else
               cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in output_frames]

    def change(frames, t, box):
        left, top, right, bottom = box
        before, after = (frame[top:bottom, left:right].astype(np.float64) for frame in (frames[t - 1], frames[t]))
        return np.mean(np.abs(after - before))
    changes = []
    for t in range(1, len(input_frames)):
        box = np.clip(np.round(boxes[t]).astype(int), 0, [width, height, width, height])
        changes.append(change(outputs, t, box) - change(input_frames, t, box))
    return float(np.mean(changes))


def photo_views(frames: Sequence[np.ndarray], matrices: np.ndarray, box: Sequence[float],
                upscale: int = 1) -> list[np.ndarray]:
    """Each frame's view of one region of the photo (`box`: left, top, right, bottom in photo pixels), warped back
    through the true photo -> frame `matrices` (of frames `upscale` times enlarged): what a camera that never moved
    would have filmed. Between these views the motion is gone; noise, compression and flicker remain."""
    left, top, right, bottom = box
    size = (int(round(right - left)), int(round(bottom - top)))
    to_region = np.array([[1.0, 0.0, left], [0.0, 1.0, top], [0.0, 0.0, 1.0]])
    views = []
    for frame, matrix in zip(frames, matrices):
        region_to_frame = (upscale_matrix(upscale) @ np.vstack([matrix, [0.0, 0.0, 1.0]]) @ to_region)
        views.append(cv2.warpAffine(frame, region_to_frame, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    return views


def camera_matrices(photo_size: tuple[int, int], n_frames: int, size: tuple[int, int], rng: np.random.Generator,
                    centre: tuple[float, float] | None = None, coverage: float = 0.6, pan: float = 0.8,
                    zoom: float = 0.15) -> np.ndarray:
    """(n_frames, 2, 3) photo -> frame matrices of a smooth camera path over a photo (width, height).

    The first frame sees `coverage` of the largest view of the frame's shape that fits in the photo, around
    `centre` (photo pixels; default the photo's centre; moved in as far as the view needs to fit). The view then
    narrows smoothly by `zoom` (cosine ease: it starts and stops gently) while its centre glides at constant speed
    in a random direction, from `pan` of the room the photo's edges leave on one side to as much on the other.
    """
    photo_width, photo_height = photo_size
    width, height = size
    start = max(width / photo_width, height / photo_height) / coverage
    progress = np.linspace(0.0, 1.0, n_frames)
    scales = start * (1 + zoom * (1 - np.cos(np.pi * progress)) / 2)
    photo_shape, half_view = np.array([photo_width, photo_height]), np.array([width, height]) / (2 * start)
    centre = photo_shape / 2 if centre is None else np.clip(centre, half_view, photo_shape - half_view)
    # How far the view's centre may move each way, at the widest view, in photo pixels.
    room = np.minimum(centre, photo_shape - centre) - half_view
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    centres = centre + pan * (2 * progress[:, None] - 1) * direction * room
    matrices = np.zeros((n_frames, 2, 3))
    matrices[:, 0, 0] = matrices[:, 1, 1] = scales
    matrices[:, :, 2] = np.array([width, height]) / 2 - scales[:, None] * centres
    return matrices


def pan_zoom_clip(photo: np.ndarray, n_frames: int, size: tuple[int, int] = (1280, 720), seed: int = 0,
                  centre: tuple[float, float] | None = None, pan: float = 0.8, noise: float = 2.0,
                  jpeg_quality: int = 70) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (HxWx3 uint8 RGB, `size` = (width, height)) of a camera panning and zooming smoothly over the photo
    around `centre` (`camera_matrices`), each with Gaussian noise of `noise` levels and JPEG compression at
    `jpeg_quality`, and the (n_frames, 2, 3) photo -> frame matrices: `faces.align.transform_points(matrices[t],
    points)` is where points of the photo are in frame t."""
    rng = np.random.default_rng(seed)
    matrices = camera_matrices((photo.shape[1], photo.shape[0]), n_frames, size, rng, centre, pan=pan)
    frames = []
    for matrix in matrices:
        frame = cv2.warpAffine(photo, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame = frame + noise * rng.standard_normal(frame.shape, dtype=np.float32)
        bgr = np.clip(frame[..., ::-1], 0, 255).astype(np.uint8)
        _, encoded = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        frames.append(np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]))
    return frames, matrices
