"""Searching whole photos for faces: the tile and pass plan, merging, and group photos of real faces."""
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from data.sample_photos import grid_photo, group_photo
from faces.detector import FaceDetector
from faces.search_plan import (
    CENTRE_SLACK,
    DETECTION_WINDOW,
    OVERLAP,
    PASS_MARGIN,
    axis_tiles,
    box_iou,
    non_max_suppression,
    plan_search,
    same_faces,
)


def centre(box):
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def assert_each_face_found_once(faces, boxes):
    """Every planted face found, once, and nothing else."""
    pairs = same_faces(boxes, [face.box for face in faces])
    missed = sorted(set(range(len(boxes))) - {i for i, _ in pairs})
    assert len(pairs) == len(boxes) == len(faces), f'{len(faces)} found for {len(boxes)}; missed {missed}'


def test_axis_tiles_by_hand():
    assert axis_tiles(1000, 300, 100) == [(0, 280, -math.inf, 230.0), (180, 460, 230.0, 410.0),
                                          (360, 640, 410.0, 590.0), (540, 820, 590.0, 770.0),
                                          (720, 1000, 770.0, math.inf)]
    assert axis_tiles(300, 300, 100) == [(0, 300, -math.inf, math.inf)]


def test_first_pass_brings_the_smallest_face_to_the_detection_window():
    [only] = plan_search(500, 600, 40, 1536)  # the published single 2x upsampling
    assert only.scale == 2 and only.max_face == math.inf
    assert [(tile.window, tile.owned) for tile in only.tiles] == [((0, 0, 600, 500), (-math.inf, -math.inf,
                                                                                      math.inf, math.inf))]
    assert plan_search(3000, 2000, 160, 1536)[0].scale == 0.5  # large faces only: a smaller search image
    assert plan_search(1200, 3200, 40, 4096, max_scale=1600 / 3200)[0].scale == 0.5  # --detect_max_size 1600


@pytest.mark.parametrize('shape', [(30, 30), (3, 900), (900, 3)])
def test_a_photo_too_small_for_the_window_is_not_searched(shape):
    assert plan_search(*shape, 40, 1536) == []


@pytest.mark.parametrize('height, width, min_face_size, tile_size', [
    (700, 700, 40, 512), (1066, 2732, 40, 1536), (4000, 6000, 40, 1536), (4000, 6000, 80, 4096),
    (333, 5000, 25, 1000), (2000, 2000, 300, 512)])
def test_plan_bounds_every_search_and_keeps_each_face_from_one_tile_holding_it_whole(height, width, min_face_size,
                                                                                     tile_size):
    passes = plan_search(height, width, min_face_size, tile_size)
    assert passes[0].scale == pytest.approx(DETECTION_WINDOW / min_face_size)
    assert passes[-1].max_face >= min(height, width)  # the last pass keeps the largest faces
    rng = np.random.default_rng(0)
    for search_pass, next_pass in zip(passes, passes[1:] + [None]):
        for tile in search_pass.tiles:
            x0, y0, x1, y1 = tile.window
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            assert max(x1 - x0, y1 - y0) * search_pass.scale <= tile_size
        if next_pass is not None:  # faces too large for this pass are found in the next one, with a margin
            assert search_pass.max_face * next_pass.scale >= DETECTION_WINDOW * PASS_MARGIN * 0.999
        # random faces up to the largest this pass keeps: exactly one tile owns each centre, and holds it whole
        sides = rng.uniform(min_face_size, min(search_pass.max_face, height, width), 300)
        for side in sides:
            left, top = rng.uniform(0, width - side), rng.uniform(0, height - side)
            box = (left, top, left + side - 1, top + side - 1)
            owners = [tile for tile in search_pass.tiles if search_pass.keeps(tile, box)]
            assert owners
            strict = [tile for tile in owners if tile.owned[0] <= centre(box)[0] < tile.owned[2]
                      and tile.owned[1] <= centre(box)[1] < tile.owned[3]]
            assert len(strict) == 1
            x0, y0, x1, y1 = strict[0].window
            assert x0 <= box[0] and box[2] < x1 and y0 <= box[1] and box[3] < y1


def test_a_tiled_pass_drops_faces_too_large_for_its_overlap():
    search_pass = plan_search(2000, 2000, 40, 1024)[0]
    tile = search_pass.tiles[0]
    largest = (OVERLAP - 2 * CENTRE_SLACK) / search_pass.scale
    assert search_pass.keeps(tile, (10, 10, 10 + largest - 1, 10 + largest - 1))
    assert not search_pass.keeps(tile, (10, 10, 10 + largest, 10 + largest))


def test_box_iou_by_hand():
    np.testing.assert_allclose(box_iou((0, 0, 9, 9), [(0, 0, 9, 9), (5, 0, 14, 9), (10, 10, 19, 19), (0, 0, 4, 9)]),
                               [1, 50 / 150, 0, 0.5])


def test_same_faces_pairs_each_box_once_nearest_first():
    planted = [(0, 0, 99, 99), (200, 0, 299, 99)]
    found = [(25, 0, 124, 99), (5, 5, 104, 104), (400, 0, 499, 99), (3, 0, 102, 99)]
    # 0 pairs with its nearest (found 3, 3 px away) not with found 1 (7 px) or 0 (25 px); 1 has no face within 30 px
    assert same_faces(planted, found) == [(0, 3)]
    assert same_faces(planted, [(200, 20, 299, 119)], tolerance=0.1) == []
    assert same_faces([], found) == [] and same_faces(planted, []) == []


def test_non_max_suppression_keeps_the_best_of_each_overlapping_group():
    boxes = [(0, 0, 99, 99), (10, 5, 109, 104), (200, 0, 279, 79), (0, 0, 49, 99), (205, 0, 284, 79)]
    scores = [0.9, 1.2, 0.0, 0.5, 0.0]
    # box 1 drops box 0 (IoU 0.74) but not box 3 (IoU 0.35); the two scoring 0 overlap: the first is kept
    assert non_max_suppression(boxes, scores) == [1, 3, 2]
    assert non_max_suppression([], []) == []


@pytest.mark.parametrize('kind, shape, grid, tile_size, workers', [('hog', (700, 700), (5, 5), 512, 2),
                                                                   ('cnn', (400, 400), (3, 3), 640, 1)])
@pytest.mark.slow
def test_tiled_search_finds_each_face_once_with_the_untiled_landmarks(kind, shape, grid, tile_size, workers):
    """A photo small enough for one search: searched in tiles too (HOG's in threads), the same faces,
    landmarks within dlib's 1 px."""
    photo, boxes = grid_photo(*shape, *grid, face_sizes=(40, 60))
    whole = FaceDetector(kind).search(photo)
    with FaceDetector(kind, tile_size=tile_size, workers=workers) as detector:
        tiled = detector.search(photo)
    assert len(whole.passes) == 1 and len(tiled.passes[0].tiles) >= 4
    assert_each_face_found_once(whole.faces, boxes)
    assert_each_face_found_once(tiled.faces, boxes)
    shifts = []
    for face in whole.faces:
        twin = min(tiled.faces, key=lambda other: np.linalg.norm(centre(other.box) - centre(face.box)))
        shifts.append(np.abs(twin.landmarks - face.landmarks).max())
    assert max(shifts) <= 1  # dlib places landmarks on whole pixels
    assert shifts.count(0) >= len(boxes) // 3


def vertical_edges(search_pass, width):
    """x of the tile window edges and ownership cuts of a pass, inside the photo."""
    return sorted(({tile.window[0] for tile in search_pass.tiles} | {tile.window[2] for tile in search_pass.tiles}
                   | {tile.owned[0] for tile in search_pass.tiles}) - {0, width, -math.inf})


def faces_on_vertical_edges(search_pass, width):
    """(centres, sizes): faces of 40, 50, 60 px centred on each vertical edge and cut of a pass, at 3 heights."""
    edges = vertical_edges(search_pass, width)
    return ([(x, (60, 170, 280)[index % 3]) for index, x in enumerate(edges)],
            [(40, 50, 60)[index % 3] for index in range(len(edges))])


def count_cut(boxes, search_pass, width):
    return sum(any(box[0] < edge < box[2] for edge in vertical_edges(search_pass, width)) for box in boxes)


@pytest.mark.slow
def test_faces_cut_by_tile_borders_are_found_once():
    """Faces of 40 to 400 px centred on the tile edges and cuts of the passes of a 3000x1000 photo."""
    height, width = 1000, 3000
    detector = FaceDetector('hog', tile_size=1024)
    passes = detector.plan(height, width)
    assert [len(search_pass.tiles) for search_pass in passes] == [24, 4, 2, 1]
    centres, sizes = faces_on_vertical_edges(passes[0], width)
    cut_y = min(tile.owned[3] for tile in passes[0].tiles)
    for tile in passes[0].tiles[:8]:  # on its first horizontal cut, between the vertical edges
        centres.append(((tile.window[0] + tile.window[2]) / 2, cut_y))
        sizes.append(50)
    assert {675, 974, 1500, 2175} <= set(vertical_edges(passes[1], width)) and 1849 in vertical_edges(passes[2], width)
    for x, size in ((675, 150), (974, 250), (1500, 250), (1849, 150), (2175, 150), (2750, 400)):
        centres.append((x, 756))  # larger faces on the later passes' edges and cuts
        sizes.append(size)
    photo, boxes = group_photo(height, width, centres, sizes)
    assert count_cut(boxes, passes[0], width) >= 21 and sum(box[1] < cut_y < box[3] for box in boxes) >= 8
    assert_each_face_found_once(detector(photo), boxes)


@pytest.mark.slow
def test_cnn_faces_cut_by_tile_borders_are_found_once():
    """dlib's CNN places a face a few pixels differently in two tiles (its stride is 8): still found once."""
    height, width = 340, 700
    with FaceDetector('cnn', tile_size=640) as detector:
        passes = detector.plan(height, width)
        centres, sizes = faces_on_vertical_edges(passes[0], width)
        photo, boxes = group_photo(height, width, centres, sizes)
        assert len(passes[0].tiles) >= 3 and count_cut(boxes, passes[0], width) >= 6
        assert_each_face_found_once(detector(photo), boxes)


@pytest.mark.slow
def test_group_photo_of_3000_px():
    photo, boxes = grid_photo(1800, 3000, 3, 8, face_sizes=(40, 60), seed=1)
    search = FaceDetector('hog').search(photo)
    assert len(search.passes[0].tiles) > 1
    assert_each_face_found_once(search.faces, boxes)


@pytest.mark.slow
def test_group_photo_of_24_megapixels():
    """6000x4000 with faces of 80 to 120 px, searched for faces from 80 px: tiles of 4096 px at most."""
    photo, boxes = grid_photo(4000, 6000, 6, 9, face_sizes=(80, 120), seed=2)
    search = FaceDetector('hog', min_face_size=80).search(photo)
    assert search.describe() == 'scale 1.00 in 2 tiles, 0.43 whole'
    assert_each_face_found_once(search.faces, boxes)


@pytest.mark.slow
def test_hog_searches_tiles_in_threads_with_the_same_result():
    photo, boxes = grid_photo(700, 700, 5, 5, face_sizes=(40, 60), seed=3)
    alone = FaceDetector('hog', tile_size=512).detect(photo)
    with FaceDetector('hog', tile_size=512, workers=2) as detector:
        assert detector.detect(photo) == alone
        assert isinstance(detector._pool, ThreadPoolExecutor)
    assert detector._pool is None
    assert len(alone) == len(boxes)
