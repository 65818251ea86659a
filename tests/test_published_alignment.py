"""Whole photos are found and aligned as the published script found and aligned them: its dlib
`cnn_face_detection_model_v1(img, 1)` boxes, its 5-point landmarks, hence its aligned faces, on
real photos (scikit-image's astronaut, matplotlib's Grace Hopper, a group of shipped faces)."""
import os

import dlib
import matplotlib
import numpy as np
import pytest
from PIL import Image
from skimage import data

from baselines.published import published_boxes
from data.sample_photos import grid_photo
from faces.align import align_face
from faces.detector import FaceDetector
from faces.dlib_models import CNN_DETECTOR_FILE, LANDMARKS_FILE, dlib_model_path


def hopper():
    path = os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')
    return np.asarray(Image.open(path).convert('RGB'))


PHOTOS = {  # small crops: dlib's own CNN takes about 1 s per 100,000 photo pixels
    'astronaut_face': lambda: data.astronaut()[20:220, 120:320],
    'hopper': lambda: hopper()[40:360, 110:430],
    'group': lambda: grid_photo(300, 420, 2, 3, face_sizes=(45, 70), seed=3)[0],
}


@pytest.fixture(scope='module')
def dlib_models():
    return (dlib.cnn_face_detection_model_v1(dlib_model_path(CNN_DETECTOR_FILE)),
            dlib.shape_predictor(dlib_model_path(LANDMARKS_FILE)))


def published_faces(photo, cnn, predictor):
    """[(box, landmarks)] as the published script finds them, left to right."""
    faces = []
    for box in published_boxes(photo, cnn):
        shape = predictor(photo, dlib.rectangle(*box))
        faces.append((box, np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)))
    return sorted(faces, key=lambda face: face[0][:2])


@pytest.mark.parametrize('name', [name if name == 'astronaut_face' else pytest.param(name, marks=pytest.mark.slow)
                                  for name in sorted(PHOTOS)])
def test_boxes_landmarks_and_aligned_faces_equal_the_published_script_s(dlib_models, name):
    photo = np.ascontiguousarray(PHOTOS[name]())
    expected = published_faces(photo, *dlib_models)
    assert len(expected) == (6 if name == 'group' else 1)
    with FaceDetector('cnn') as detector:
        found = detector(photo)
    assert [tuple(int(value) for value in face.box) for face in found] == [box for box, _ in expected]
    for face, (_, landmarks) in zip(found, expected):
        np.testing.assert_array_equal(face.landmarks, landmarks)
        ours, theirs = align_face(photo, face.landmarks)[0], align_face(photo, landmarks)[0]
        np.testing.assert_array_equal(ours, theirs)
