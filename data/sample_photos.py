"""Sample photos to try the pipeline on and to measure detection: one face (scikit-image's astronaut), or a group.

A group photo is a grid of real faces shipped with the installed packages (the astronaut, Grace
Hopper from matplotlib, and the LFW faces of scikit-image's `lfw_subset`) at random sizes within
`face_sizes` (side of the face box, about brow to chin, in pixels) on a colour gradient.
"""
import os
from collections.abc import Iterable

import cv2
import matplotlib
import numpy as np
import skimage.data
from PIL import Image

# Faces (left, top, right, bottom) as dlib's CNN boxes them in the astronaut and Grace Hopper photos.
ASTRONAUT_BOX = (168, 69, 263, 164)
HOPPER_BOX = (191, 146, 355, 310)
# The LFW crops of `lfw_subset` are faces cut tightly; dlib's CNN boxes the middle 82 % of them.
LFW_BOX_SHARE = 0.82
# LFW faces that dlib's CNN and HOG detectors each find exactly once, alone on a gray ground, at
# box sides of 38 to 62 px searched at 2x, and HOG at 76 to 124 px searched as they are; mirrored too.
LFW_FACES = (0, 3, 5, 8, 10, 11, 15, 18, 19, 22, 24, 25, 27, 31, 34, 36, 37, 38, 40, 41, 42, 48, 50, 51, 52, 53,
             57, 58, 60, 61, 62, 69, 72, 76, 77, 79, 80, 81, 84, 85, 86, 88, 90, 91, 92, 93, 94, 95, 97, 98, 99)


def shipped_faces() -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
    """[(RGB uint8 image, face box (left, top, right, bottom))]: real faces of the installed packages.

    The astronaut and Grace Hopper come with a margin of one face side around the box.
    """
    hopper = np.asarray(Image.open(os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg'))
                        .convert('RGB'))
    faces = []
    for photo, (left, top, right, bottom) in ((skimage.data.astronaut(), ASTRONAUT_BOX), (hopper, HOPPER_BOX)):
        side = right - left + 1
        crop = photo[top - side // 2:bottom + 1 + side // 2, left - side // 2:right + 1 + side // 2]
        faces.append((crop, (side // 2, side // 2, side // 2 + side - 1, side // 2 + side - 1)))
    lfw = skimage.data.lfw_subset()
    for index in LFW_FACES:
        gray = np.rint(lfw[index] * 255).astype(np.uint8)
        side = gray.shape[0]
        margin = side * (1 - LFW_BOX_SHARE) / 2
        faces.append((np.repeat(gray[..., None], 3, axis=2), (margin, margin, side - 1 - margin, side - 1 - margin)))
    return faces


def gradient_background(height: int, width: int) -> np.ndarray:
    """A gentle diagonal colour gradient: nothing in it looks like a face, at any scale."""
    ramp = (np.arange(height)[:, None, None] / height + np.arange(width)[None, :, None] / width) / 2
    return np.rint(np.array([90, 140, 170]) + ramp * np.array([60, -30, -50])).astype(np.uint8)


def group_photo(height: int, width: int, centres: Iterable[tuple[float, float]],
                sizes: Iterable[float]) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """(photo, boxes): shipped faces pasted with their box centred on each (x, y) of `centres`, box side `sizes`.

    Faces take turns among `shipped_faces()`, every other one mirrored; `boxes` are their boxes
    (left, top, right, bottom) in photo pixels.
    """
    photo = gradient_background(height, width)
    covered = np.zeros((height, width), bool)
    sources = shipped_faces()
    boxes = []
    for index, ((x, y), size) in enumerate(zip(centres, sizes)):
        image, (left, top, right, bottom) = sources[index % len(sources)]
        if index // len(sources) % 2:
            image = image[:, ::-1]
            left, right = image.shape[1] - 1 - right, image.shape[1] - 1 - left
        scale = size / (right - left + 1)
        patch = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        x0 = round(x - ((left + right) / 2 + 0.5) * scale)
        y0 = round(y - ((top + bottom) / 2 + 0.5) * scale)
        if x0 < 0 or y0 < 0 or x0 + patch.shape[1] > width or y0 + patch.shape[0] > height:
            raise ValueError(f'a face of {size} px centred at ({x}, {y}) does not fit in a {width}x{height} photo')
        if covered[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]].any():
            raise ValueError(f'a face of {size} px centred at ({x}, {y}) would cover another face')
        covered[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] = True
        photo[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] = patch
        boxes.append(tuple(float(origin + (value + 0.5) * scale - 0.5)
                           for origin, value in zip((x0, y0, x0, y0), (left, top, right, bottom))))
    return photo, boxes


def grid_photo(height: int, width: int, rows: int, cols: int, face_sizes: tuple[float, float] = (40, 60),
               seed: int = 0) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """(photo, boxes): a rows x cols grid of shipped faces, box sides drawn within `face_sizes`, jittered in cells."""
    rng = np.random.default_rng(seed)
    cell_height, cell_width = height / rows, width / cols
    sizes = rng.uniform(*face_sizes, rows * cols)
    room = np.clip(np.minimum(cell_height, cell_width) / 2 - 1.2 * sizes, 0, None)  # keep the margins in the cell
    centres = [((col + 0.5) * cell_width + rng.uniform(-1, 1) * room[index],
                (row + 0.5) * cell_height + rng.uniform(-1, 1) * room[index])
               for index, (row, col) in enumerate(np.ndindex(rows, cols))]
    return group_photo(height, width, centres, sizes)
