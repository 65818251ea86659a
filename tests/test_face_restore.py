"""Detection, landmarks and the whole-photo pipeline on a real face (scikit-image's astronaut)."""
import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from faces.align import ffhq_template, transform_points
from faces.detector import FaceDetector
from faces.dlib_models import FaceModelMissing, dlib_model_path
from faces.restorer import FaceRestorer, NoFaceFound
from metrics.psnr_ssim import psnr
from utils.image_io import read_rgb_array

ASTRONAUT_FACE = (179, 83, 266, 170)  # dlib HOG box (left, top, right, bottom), checked by eye


def identity(faces):
    return faces.copy()


@pytest.fixture(scope='module')
def hog():
    """HOG searching a 512 px photo as it is (faces from 80 px; upsampled, HOG also finds a false face)."""
    return FaceDetector('hog', min_face_size=80)


@pytest.fixture(scope='module')
def astronaut():
    return data.astronaut()


def paste_weight(detector, photo):
    """Per-pixel weight of the enhanced face in the final photo, from black and white "enhancers"."""
    finals = [FaceRestorer(detector, lambda faces, value=value: np.full_like(faces, value), progress=False)(photo).final
              for value in (0, 255)]
    return (finals[1].astype(np.float64) - finals[0])[..., 1] / 255


@pytest.mark.parametrize('kind', ['hog', 'cnn'])
def test_one_face_found_where_it_is(kind, astronaut):
    faces = FaceDetector(kind, min_face_size=80)(astronaut)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, ASTRONAUT_FACE, atol=15)
    left, top, right, bottom = faces[0].box
    landmarks = faces[0].landmarks
    assert landmarks.shape == (5, 2)
    assert ((landmarks[:, 0] > left) & (landmarks[:, 0] < right)).all()
    assert ((landmarks[:, 1] > top) & (landmarks[:, 1] < bottom)).all()
    assert landmarks[0, 0] > landmarks[2, 0]  # dlib order: the photo-right eye first


@pytest.mark.slow
def test_weak_hog_windows_are_not_faces(astronaut):
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    assert len(FaceDetector('hog', min_score=0.0).detect(mirrored)) == 2  # dlib's own threshold: a badge too
    assert len(FaceDetector('hog').detect(mirrored)) == 1


def test_a_missing_model_file_is_named():
    with pytest.raises(FaceModelMissing, match='missing.dat: dlib model file missing'):
        dlib_model_path('missing.dat')


def test_aligned_face_has_its_landmarks_on_the_template(hog, astronaut):
    result = FaceRestorer(hog, identity, progress=False)(astronaut)
    moved = transform_points(result.matrices[0], result.faces[0].landmarks)
    assert np.abs(moved - ffhq_template()).max() < 4
    found_again = hog(result.lq_faces[0])
    assert len(found_again) == 1
    assert np.abs(found_again[0].landmarks - ffhq_template()).max() < 6


def test_identity_round_trip_leaves_the_photo_unchanged(hog, astronaut):
    result = FaceRestorer(hog, identity, progress=False)(astronaut)
    assert result.lq_faces.shape == result.hq_faces.shape == (1, 512, 512, 3)
    assert result.final.shape == astronaut.shape and result.final.dtype == np.uint8
    inside = paste_weight(hog, astronaut) > 0
    assert 5000 < inside.sum() < 100000
    np.testing.assert_array_equal(result.final[~inside], astronaut[~inside])
    assert psnr(result.final[inside][:, None], astronaut[inside][:, None], 'rgb') > 38


def test_the_pasted_face_fades_in_without_a_seam(hog, astronaut):
    weight = paste_weight(hog, astronaut)
    left, top, right, bottom = np.rint(hog(astronaut)[0].box).astype(int)
    assert weight[top:bottom, left:right].min() > 0.99  # the face itself is fully replaced
    assert weight.max() <= 1.0 and weight.min() >= 0.0
    assert max(np.abs(np.diff(weight, axis=0)).max(), np.abs(np.diff(weight, axis=1)).max()) < 0.12


def test_faces_are_batched_and_ordered_left_to_right(hog, astronaut):
    mirrored = astronaut[:, ::-1]
    pair = np.ascontiguousarray(np.concatenate([astronaut, mirrored, astronaut], axis=1))
    batches = []

    def recording(faces):
        batches.append(len(faces))
        return faces.copy()
    result = FaceRestorer(FaceDetector('hog', min_face_size=80), recording, batch_size=2, progress=False)(pair)
    assert batches == [2, 1]
    lefts = [face.box[0] for face in result.faces]
    assert lefts == sorted(lefts) and len(lefts) == 3
    np.testing.assert_allclose(lefts, [179, 1024 - 267, 1024 + 179], atol=20)


def test_large_photo_is_searched_downscaled_and_aligned_at_full_resolution(astronaut):
    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    faces = FaceDetector('hog', min_face_size=320)(big)  # the search runs on a 512 px copy
    assert len(faces) == 1
    expected_box = (np.array(ASTRONAUT_FACE) + 0.5) * 4 - 0.5
    np.testing.assert_allclose(faces[0].box, expected_box, atol=60)
    small_landmarks = FaceDetector('hog', min_face_size=80)(astronaut)[0].landmarks
    np.testing.assert_allclose(faces[0].landmarks, (small_landmarks + 0.5) * 4 - 0.5, atol=8)


@pytest.mark.slow
def test_huge_photo(astronaut):
    """6000x4000 with one face: found on a 1600 px search copy, the rest left as it was."""
    huge = np.full((4000, 6000, 3), 90, np.uint8)
    huge[1500:3548, 3000:5048] = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    result = FaceRestorer(FaceDetector('hog', min_face_size=300), identity, progress=False)(huge)
    assert len(result.faces) == 1 and result.final.shape == huge.shape
    left, top = result.faces[0].box[:2]
    assert abs(left - (3000 + 179 * 4)) < 40 and abs(top - (1500 + 83 * 4)) < 40
    np.testing.assert_array_equal(result.final[:1400], huge[:1400])
    assert psnr(result.final[1400:2800, 3200:4700], huge[1400:2800, 3200:4700], 'rgb') > 40


def test_a_face_larger_than_999_pixels_is_processed(hog, astronaut):
    close_up = cv2.resize(astronaut[50:210, 150:300], (1950, 2080), interpolation=cv2.INTER_CUBIC)
    result = FaceRestorer(FaceDetector('hog', min_face_size=280), identity, progress=False)(close_up)
    left, top, right, bottom = result.faces[0].box
    assert right - left > 999
    assert psnr(result.final, close_up, 'rgb') > 40


@pytest.mark.parametrize('photo', [data.chelsea(), np.zeros((8, 8, 3), np.uint8), np.full((1, 1, 3), 255, np.uint8),
                                   np.zeros((3, 900, 3), np.uint8)], ids=['cat', 'tiny', 'one_pixel', 'strip'])
@pytest.mark.slow
@pytest.mark.parametrize('kind', ['hog', 'cnn'])
def test_no_face(kind, photo):
    with pytest.raises(NoFaceFound, match='no face found'):
        FaceRestorer(FaceDetector(kind, min_face_size=80), identity, progress=False)(photo)


@pytest.mark.parametrize('mode', ['RGBA', 'L', 'I;16'])
def test_rgba_grayscale_and_16_bit_photos(tmp_path, hog, astronaut, mode):
    if mode == 'RGBA':
        image = Image.fromarray(np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)]))
    elif mode == 'L':
        image = Image.fromarray(astronaut).convert('L')
    else:
        image = Image.fromarray(np.asarray(Image.fromarray(astronaut).convert('L'), np.uint16) * 257)
    path = tmp_path / 'photo.png'
    image.save(path)
    photo = read_rgb_array(path)
    result = FaceRestorer(hog, identity, progress=False)(photo)
    assert len(result.faces) == 1 and result.final.shape == (512, 512, 3)
    assert psnr(result.final, photo, 'rgb') > 40


def test_an_enhancer_returning_the_wrong_shape_is_reported(hog, astronaut):
    with pytest.raises(ValueError, match='enhancer returned'):
        FaceRestorer(hog, lambda faces: faces[:, ::2, ::2], progress=False)(astronaut)
