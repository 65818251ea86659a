"""dlib's model files, as the `face_recognition_models` package ships them.

The package is found on disk, not imported: its __init__ needs pkg_resources, which new
setuptools no longer has.
"""
import importlib.util
import os

from utils.cli import UserError

CNN_DETECTOR_FILE = 'mmod_human_face_detector.dat'
LANDMARKS_FILE = 'shape_predictor_5_face_landmarks.dat'
DESCRIPTOR_FILE = 'dlib_face_recognition_resnet_model_v1.dat'


class FaceModelMissing(UserError):
    """A dlib model file is not installed; the message says which and how to get it."""


def dlib_model_path(filename: str) -> str:
    """Path of a model file shipped in face_recognition_models/models/."""
    spec = importlib.util.find_spec('face_recognition_models')
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelMissing(f'{filename}: the face_recognition_models package is not installed '
                               f'(pip install face_recognition_models)')
    path = os.path.join(spec.submodule_search_locations[0], 'models', filename)
    if not os.path.isfile(path):
        raise FaceModelMissing(f'{path}: dlib model file missing; reinstall face_recognition_models')
    return path
