"""The faces that int8 quantization calibrates on: the images of a folder, or the bundled set.

Static int8 quantization fixes each activation's range from the values it takes on a few inputs; inputs like the ones
the network will see give ranges that clip nothing the network needs. A `--calibration` folder holds such inputs: face
images as the network is given them (test.py's LR faces, aligned crops of photos), any size, resized to the network's
with PIL bicubic as test.py resizes its inputs. Without one, the bundled set is used: the astronaut of scikit-image's
sample data (a real face that every install has), aligned as the photo pipeline aligns faces and degraded as the
model's inputs are (x8 bicubic reduction for SPARNet, the training's blind degradations for SPARNetHD), in variants.
"""
import hashlib
import os
from collections.abc import Iterator

import numpy as np
import skimage.data

from data.degradations import degrade
from data.single_dataset import read_face, resized
from faces.align import align_face
from utils.cli import UserError
from utils.image_io import ImageReadError, find_images
from utils.tensor_image import uint8_to_tensor

# dlib's five landmarks of the astronaut's face in skimage.data.astronaut() (HOG detector, 5-point predictor)
ASTRONAUT_LANDMARKS = np.array([[255.0, 104.0], [238.0, 105.0], [195.0, 101.0], [212.0, 103.0], [224.0, 135.0]])
BUNDLED_COUNT = 8
BUNDLED_ID = 'astronaut-v1'
SPARNET_SCALE = 8  # the x8 reduction of SPARNet's LR faces (16 -> 128)
MAX_FOLDER_IMAGES = 64  # more adds calibration time, not range


class CalibrationFaces:
    """The calibration inputs of one network: `identity` names them (for the cache of quantized models), `inputs`
    yields them as (1, 3, size, size) float32 arrays in [-1, 1]."""

    def __init__(self, folder: str | None = None) -> None:
        self.folder = folder
        self.paths = self._images(folder) if folder else []
        self.identity = self._digest() if folder else BUNDLED_ID
        self.count = len(self.paths) if folder else BUNDLED_COUNT

    @staticmethod
    def _images(folder: str) -> list[str]:
        """The folder's first MAX_FOLDER_IMAGES images (sorted, subfolders too)."""
        return [os.path.join(folder, name) for name in find_images(folder, '--calibration')[:MAX_FOLDER_IMAGES]]

    def _digest(self) -> str:
        digest = hashlib.sha256()
        for path in self.paths:
            digest.update(os.path.basename(path).encode())
            with open(path, 'rb') as f:
                digest.update(hashlib.sha256(f.read()).digest())
        return digest.hexdigest()[:16]

    def inputs(self, model: str, size: int) -> Iterator[np.ndarray]:
        """The calibration inputs of a `model` ('sparnet' or 'sparnethd') that takes `size` x `size` faces."""
        faces = (self._folder_faces(size) if self.folder else bundled_faces(model, size))
        for face in faces:
            yield uint8_to_tensor(face[None]).numpy()

    def _folder_faces(self, size: int) -> Iterator[np.ndarray]:
        for path in self.paths:
            try:
                yield read_face(path, size)
            except ImageReadError as err:
                raise UserError(f'--calibration: {err}; remove it from the folder') from None


def astronaut_variants(size: int) -> list[np.ndarray]:
    """BUNDLED_COUNT versions of the astronaut's aligned face at `size`: as is, mirrored, darker, lighter, gray,
    shifted and rescaled crops (the range of framings and exposures faces come in)."""
    photo = skimage.data.astronaut()
    variants = []
    for index in range(BUNDLED_COUNT):
        zoom, shift = (1.0, 0.0) if index < 5 else (0.85 + 0.1 * (index - 5), 4.0 * (index - 6))
        landmarks = (ASTRONAUT_LANDMARKS - ASTRONAUT_LANDMARKS.mean(0)) * zoom + ASTRONAUT_LANDMARKS.mean(0) + shift
        face, _ = align_face(photo, landmarks, size)
        face = face.astype(np.float32)
        if index == 1:
            face = face[:, ::-1]
        elif index == 2:
            face = face * 0.6
        elif index == 3:
            face = 255 - (255 - face) * 0.6
        elif index == 4:
            face = np.repeat(face @ np.array([[0.299], [0.587], [0.114]], np.float32), 3, axis=2)
        variants.append(np.ascontiguousarray(np.clip(face + 0.5, 0, 255).astype(np.uint8)))
    return variants


def bundled_faces(model: str, size: int) -> list[np.ndarray]:
    """The bundled calibration inputs of `model` at `size`: SPARNet's as test.py sees them (the face reduced x8 with
    PIL bicubic, then brought back to `size`), SPARNetHD's degraded as its training degraded them (seeded)."""
    faces = astronaut_variants(size)
    if model == 'sparnethd':
        rng = np.random.default_rng(0)
        return [degrade(face, rng) for face in faces]
    small = max(1, size // SPARNET_SCALE)
    return [resized(resized(face, small), size) for face in faces]
