"""Identity similarity with dlib: a face stays closer to its blurred copy than to another person."""
import os

import cv2
import dlib
import numpy as np
import pytest
from PIL import Image
from skimage import data

from metrics.identity import FaceIdentity, cosine_similarity

matplotlib = pytest.importorskip('matplotlib', reason='the second face is matplotlib sample data')


def face_crop(image, left, top, size, out_size=200):
    """A square crop around a face, resized so that faces of different photos line up."""
    crop = image[top:top + size, left:left + size]
    return np.asarray(Image.fromarray(crop).resize((out_size, out_size), Image.BICUBIC))


@pytest.fixture(scope='module')
def faces():
    """Two people, their faces (found by dlib's HOG detector) centred and of the same size."""
    hopper = np.asarray(Image.open(os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg'))
                        .convert('RGB'))
    return face_crop(data.astronaut(), 135, 39, 174), face_crop(hopper, 53, 29, 430)


@pytest.fixture(scope='module')
def identity():
    return FaceIdentity('hog')


def test_cosine_similarity_by_hand():
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(2 ** -0.5, abs=1e-12)
    assert cosine_similarity(np.array([3.0, 4.0]), np.array([-6.0, -8.0])) == pytest.approx(-1.0, abs=1e-12)


def test_same_face_blurred_is_more_similar_than_another_person(faces, identity):
    astronaut, hopper = faces
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 1.5)
    same_cos, same_dist = identity.compare(blurred, astronaut)
    other_cos, other_dist = identity.compare(hopper, astronaut)
    assert same_cos > other_cos
    assert same_dist < other_dist
    assert same_dist < 0.6 < other_dist  # dlib's own same-person threshold
    assert identity.compare(astronaut.copy(), astronaut) == (pytest.approx(1.0, abs=1e-6), pytest.approx(0, abs=1e-6))


def test_scores_are_those_of_the_descriptors(faces, identity):
    astronaut, hopper = faces
    box = identity.find_face(astronaut)
    descriptors = identity.descriptor(hopper, box), identity.descriptor(astronaut, box)
    assert descriptors[0].shape == (128,)
    cos, dist = identity.compare(hopper, astronaut)
    assert cos == pytest.approx(cosine_similarity(*descriptors), abs=1e-12)
    assert dist == pytest.approx(np.linalg.norm(descriptors[0] - descriptors[1]), abs=1e-12)


def test_small_faces_are_found_by_upsampling(faces, identity):
    small = np.asarray(Image.fromarray(faces[0]).resize((96, 96), Image.BICUBIC))
    assert not dlib.get_frontal_face_detector()(small, 0)  # too small for HOG at its own size
    box = identity.find_face(small)
    assert box is not None and 30 < box.center().x < 66 and 30 < box.center().y < 66


def test_no_face_in_the_ground_truth_gives_none(identity):
    noise = np.random.default_rng(0).integers(0, 256, (120, 120, 3), dtype=np.uint8)
    assert identity.find_face(noise) is None
    assert identity.compare(noise, noise) is None


def test_cnn_detector_finds_the_face_and_survives_tiny_images(faces):
    detector = FaceIdentity('cnn')
    box = detector.find_face(faces[0])
    assert box is not None and abs(box.center().x - 100) < 20 and abs(box.center().y - 100) < 20
    assert detector.find_face(np.full((8, 8, 3), 128, np.uint8)) is None  # dlib's CNN aborts on these
