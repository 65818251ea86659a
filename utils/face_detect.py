"""Faces in a photo with dlib: a CNN (mmod) or HOG detector, then five landmarks per face.

The model files come with the `face_recognition_models` package (found on disk, not imported:
its __init__ needs pkg_resources). Large photos are searched on a downscaled copy; the
landmarks are always placed on the full-resolution photo.
"""
import importlib.util
import os
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from .cli import UserError

DETECTORS = ('cnn', 'hog')
CNN_DETECTOR_FILE = 'mmod_human_face_detector.dat'
LANDMARKS_FILE = 'shape_predictor_5_face_landmarks.dat'
DEFAULT_DETECT_MAX_SIZE = 1600
# Lowest detection score kept. dlib keeps every HOG window scoring above 0, and weak ones
# (below ~0.15 on the astronaut photo's badges) are not faces; true faces score near 1.
MIN_SCORES = {'cnn': 0.0, 'hog': 0.3}
# Both dlib detectors scan an 80x80 window: a smaller image holds no face (and dlib's CNN
# fails on tiny images).
DETECTION_WINDOW = 80


class FaceModelMissing(UserError):
    """A dlib model file is not installed; the message says which and how to get it."""


def dlib_model_path(filename):
    """Path of a model file shipped in face_recognition_models/models/."""
    spec = importlib.util.find_spec('face_recognition_models')
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelMissing(f'{filename}: the face_recognition_models package is not installed '
                               f'(pip install face_recognition_models)')
    path = os.path.join(spec.submodule_search_locations[0], 'models', filename)
    if not os.path.isfile(path):
        raise FaceModelMissing(f'{path}: dlib model file missing; reinstall face_recognition_models')
    return path


@dataclass
class Face:
    """A detected face: box (left, top, right, bottom) and five landmarks (5, 2), in photo pixels."""
    box: tuple
    score: float
    landmarks: np.ndarray


def detection_plan(height, width, max_size):
    """(scale applied to the photo, dlib upsampling count) for detection.

    Photos longer than `max_size` are shrunk to it; photos at most half of it are searched
    once upsampled, as the published script did, which finds faces down to ~40 px.
    """
    longest = max(height, width)
    if longest > max_size:
        return max_size / longest, 0
    return 1.0, 1 if 2 * longest <= max_size else 0


class FaceDetector:
    """Callable: HxWx3 uint8 RGB photo -> list of `Face`, left to right."""

    def __init__(self, kind='cnn', max_size=DEFAULT_DETECT_MAX_SIZE, min_score=None):
        if kind not in DETECTORS:
            raise ValueError(f'detector must be one of {DETECTORS}, got {kind!r}')
        if max_size < 1:
            raise ValueError(f'the detection size limit must be a positive number of pixels, got {max_size}')
        self.kind = kind
        self.max_size = max_size
        self.min_score = MIN_SCORES[kind] if min_score is None else min_score
        if kind == 'cnn':
            self._cnn = dlib.cnn_face_detection_model_v1(dlib_model_path(CNN_DETECTOR_FILE))
        else:
            self._hog = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(dlib_model_path(LANDMARKS_FILE))

    def _dlib_boxes(self, image, upsample):
        """[(dlib.rectangle, score)] found in `image`."""
        if self.kind == 'cnn':
            return [(found.rect, found.confidence) for found in self._cnn(image, upsample)]
        rects, scores, _ = self._hog.run(image, upsample)
        return list(zip(rects, scores))

    def detect(self, photo):
        """[(box, score)] scoring at least `min_score`, boxes (left, top, right, bottom) in full-resolution pixels."""
        height, width = photo.shape[:2]
        scale, upsample = detection_plan(height, width, self.max_size)
        image = photo
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        if min(image.shape[:2]) * 2 ** upsample < DETECTION_WINDOW:
            return []
        found = []
        for rect, score in self._dlib_boxes(np.ascontiguousarray(image), upsample):
            if score < self.min_score:
                continue
            corners = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64)
            found.append((tuple(float(v) for v in (corners + 0.5) / scale - 0.5), float(score)))
        return found

    def landmarks(self, photo, box):
        """(5, 2) float landmarks of the face in `box`, placed on the full-resolution photo."""
        rect = dlib.rectangle(*(int(round(value)) for value in box))
        shape = self._landmarks(np.ascontiguousarray(photo), rect)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], dtype=np.float64)

    def __call__(self, photo):
        faces = [Face(box, score, self.landmarks(photo, box)) for box, score in self.detect(photo)]
        return sorted(faces, key=lambda face: (face.box[0], face.box[1]))
