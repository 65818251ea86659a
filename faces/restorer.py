"""The whole-photo pipeline: find the faces, align them, enhance them in batches, paste them back."""
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from faces.align import FACE_SIZE, align_face, paste_faces
from utils.progress import progress


class NoFaceFound(Exception):
    """The detector found no face in the photo."""


class Landmarked(Protocol):
    """A found face as the pipeline reads it (e.g. `faces.detector.Face`): its five landmarks (5, 2)."""
    landmarks: np.ndarray


@dataclass
class RestoredPhoto:
    """What the pipeline made of one photo: aligned inputs, enhanced faces, and the blended photo.

    `matrices[i]` is the 2x3 map from photo pixels to the pixels of `lq_faces[i]`.
    """
    faces: list
    matrices: list
    lq_faces: np.ndarray
    hq_faces: np.ndarray
    final: np.ndarray


class FaceRestorer:
    """Callable: HxWx3 uint8 RGB photo -> `RestoredPhoto`.

    `find_faces(photo)` returns objects with `.landmarks` (5, 2) (e.g. `FaceDetector`);
    `enhance(faces)` maps (N, S, S, 3) uint8 aligned faces to enhanced ones of the same shape;
    `background(photo)`, if given, enlarges the photo `upscale` times in place of bicubic interpolation
    (e.g. `upsamplers.background.BackgroundUpsampler`).
    """

    def __init__(self, find_faces: Callable[[np.ndarray], Sequence[Landmarked]] | None,
                 enhance: Callable[[np.ndarray], np.ndarray], face_size: int = FACE_SIZE, batch_size: int = 4,
                 upscale: int = 1, progress: bool = True,
                 background: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f'the face batch size must be at least 1, got {batch_size}')
        if upscale < 1:
            raise ValueError(f'the upscale factor must be at least 1, got {upscale}')
        self.find_faces = find_faces
        self.enhance = enhance
        self.face_size = face_size
        self.batch_size = batch_size
        self.upscale = upscale
        self.progress = progress
        self.background = background

    def enhance_faces(self, lq_faces: np.ndarray, show_progress: bool = True) -> np.ndarray:
        """Run `enhance` over the aligned faces `batch_size` at a time, with a progress bar over faces (unless
        `show_progress` is False: the faces of video frames, whose bar counts frames)."""
        enhanced = []
        with progress(total=len(lq_faces), desc='faces', unit='face', leave=False,
                      disable=not (self.progress and show_progress)) as bar:
            for start in range(0, len(lq_faces), self.batch_size):
                batch = lq_faces[start:start + self.batch_size]
                result = np.asarray(self.enhance(batch))
                if result.shape != batch.shape or result.dtype != np.uint8:
                    raise ValueError(f'the enhancer returned {result.dtype} {result.shape} '
                                     f'for uint8 {batch.shape} faces')
                enhanced.append(result)
                bar.update(len(batch))
        return np.concatenate(enhanced)

    def __call__(self, photo: np.ndarray) -> RestoredPhoto:
        if self.find_faces is None:
            raise ValueError('no face finder given: call restore(photo, faces) with faces found elsewhere')
        return self.restore(photo, self.find_faces(photo))

    def restore(self, photo: np.ndarray, faces: Sequence[Landmarked]) -> RestoredPhoto:
        """`RestoredPhoto` of the faces found in the photo (raises NoFaceFound when there are none)."""
        if not faces:
            raise NoFaceFound('no face found')
        aligned = [align_face(photo, face.landmarks, self.face_size) for face in faces]
        lq_faces = np.stack([crop for crop, _ in aligned])
        hq_faces = self.enhance_faces(lq_faces)
        matrices = [matrix for _, matrix in aligned]
        background = self.background(photo) if self.background is not None else None
        final = paste_faces(photo, hq_faces, matrices, self.upscale, background)
        return RestoredPhoto(list(faces), matrices, lq_faces, hq_faces, final)
