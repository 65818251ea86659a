"""dlib's CNN face detector run by PyTorch: the pyramid layout and box rules by hand, then the same
boxes as dlib's own `cnn_face_detection_model_v1` on real faces."""
import dlib
import numpy as np
import pytest
import torch
from skimage import data

from data.sample_photos import grid_photo
from faces.dlib_models import CNN_DETECTOR_FILE, dlib_model_path
from faces.mmod_detector import MmodDetector, boxes_overlap, nearest_level, pyramid_layout, pyramid_sizes


@pytest.fixture(scope='module')
def ours():
    return MmodDetector(dlib_model_path(CNN_DETECTOR_FILE))


@pytest.fixture(scope='module')
def dlib_cnn():
    return dlib.cnn_face_detection_model_v1(dlib_model_path(CNN_DETECTOR_FILE))


def test_pyramid_levels_shrink_by_five_sixths_down_to_five_rows():
    assert pyramid_sizes(10, 100, 6) == [(10, 100), (8, 83), (6, 69), (5, 57)]
    assert pyramid_sizes(4, 100, 6) == [(4, 100)]


def test_pyramid_layout_by_hand():
    """100x100 (padding 10, outer 11): five levels down the left column, the ten smaller ones up the right edge."""
    rects, shape = pyramid_layout(100, 100, 6, 10, 11)
    assert shape == (418, 122)
    assert rects == [(11, 11, 110, 110), (11, 121, 93, 203), (11, 214, 79, 282), (11, 293, 67, 349),
                     (11, 360, 57, 406), (72, 368, 110, 406), (79, 326, 110, 357), (85, 290, 110, 315),
                     (90, 259, 110, 279), (94, 232, 110, 248), (97, 208, 110, 221), (100, 187, 110, 197),
                     (102, 168, 110, 176), (104, 151, 110, 157), (106, 136, 110, 140)]
    assert pyramid_layout(10, 10, 6, 10, 11) == ([(11, 11, 20, 20), (11, 31, 18, 38), (11, 49, 16, 54),
                                                  (11, 65, 15, 69)], (81, 32))


@pytest.mark.parametrize('shape', [(512, 512), (300, 1500), (1500, 300), (37, 45)])
def test_pyramid_levels_fit_apart_inside_the_tiled_image(shape):
    rects, (rows, cols) = pyramid_layout(*shape, 6, 10, 11)
    sizes = pyramid_sizes(*shape, 6)
    assert [(bottom - top + 1, right - left + 1) for left, top, right, bottom in rects] == sizes[:len(rects)]
    for index, (left, top, right, bottom) in enumerate(rects):
        assert 11 <= left and right < cols - 11 + 1 and 11 <= top and bottom < rows - 11 + 1
        for other in rects[index + 1:]:
            assert other[0] > right or other[2] < left or other[1] > bottom or other[3] < top


def test_nearest_level_is_the_first_holding_the_point_else_the_closest():
    rects = [(0, 0, 9, 9), (20, 0, 29, 9), (5, 5, 24, 24)]
    assert nearest_level(rects, 7, 7) == 0
    assert nearest_level(rects, 12, 2) == 0  # 3 px from the first, 8 from the second
    assert nearest_level(rects, 17, 2) == 1
    assert nearest_level(rects, 15, 30) == 2


def test_box_overlap_divides_by_the_enclosing_box():
    a, b = (0, 0, 9, 9), (5, 0, 14, 9)  # 50 px shared, enclosing box 150 px: 1/3 (true IoU 1/3 too)
    assert boxes_overlap(a, b, 0.33, 1.0) and not boxes_overlap(a, b, 0.34, 1.0)
    c = (5, 5, 14, 14)  # 25 px shared, union 175, enclosing box 225: 0.111 (true IoU 0.143)
    assert not boxes_overlap(a, c, 0.12, 1.0) and boxes_overlap(a, c, 0.11, 1.0)
    inside = (2, 2, 5, 5)
    assert boxes_overlap(a, inside, 0.9, 0.99) and not boxes_overlap(a, inside, 0.9, 1.0)
    assert not boxes_overlap(a, (10, 0, 19, 9), 0.0, 0.0)


def test_output_positions_map_to_the_input_as_dlib_maps_them(ours):
    """Three 5x5 stride-2 convs without padding, then padded stride-1 convs: output p is input 8p + 14."""
    assert ours.net.output_to_input() == [(8, 14), (8, 14)]


def dlib_boxes(dlib_cnn, image):
    return [(found.rect.left(), found.rect.top(), found.rect.right(), found.rect.bottom(), found.confidence)
            for found in dlib_cnn(image, 0)]


@pytest.mark.slow
@pytest.mark.parametrize('name', ['astronaut', 'astronaut_mirrored', 'grid', 'chelsea', 'strip'])
def test_same_boxes_and_scores_as_dlib(ours, dlib_cnn, name):
    astronaut = data.astronaut()
    image = {'astronaut': astronaut, 'astronaut_mirrored': np.ascontiguousarray(astronaut[:, ::-1]),
             'grid': grid_photo(480, 720, 2, 3, face_sizes=(80, 100), seed=4)[0],
             'chelsea': data.chelsea(), 'strip': np.ascontiguousarray(astronaut[150:230])}[name]
    found, expected = ours(image), dlib_boxes(dlib_cnn, image)
    assert [box[:4] for box in found] == [box[:4] for box in expected]
    np.testing.assert_allclose([box[4] for box in found], [box[4] for box in expected], atol=1e-3)
    assert len(found) == {'astronaut': 1, 'astronaut_mirrored': 1, 'grid': 6, 'chelsea': 0, 'strip': 0}[name]


def test_images_too_small_for_the_network_find_nothing(ours):
    """dlib fails on the first three; the plan never searches an image under 80 px anyway."""
    for shape in [(0, 0, 3), (1, 1, 3), (8, 8, 3), (8, 600, 3), (79, 79, 3)]:
        assert ours(np.full(shape, 128, np.uint8)) == []


@pytest.mark.gpu
def test_same_boxes_on_the_gpu(ours):
    on_gpu = MmodDetector(dlib_model_path(CNN_DETECTOR_FILE), 'cuda')
    image = grid_photo(480, 720, 2, 3, face_sizes=(80, 100), seed=4)[0]
    found, expected = on_gpu(image), ours(image)
    assert [box[:4] for box in found] == [box[:4] for box in expected]
    np.testing.assert_allclose([box[4] for box in found], [box[4] for box in expected], atol=1e-3)
    assert on_gpu.net.layers[0].weight.device.type == 'cuda' and torch.cuda.is_available()
