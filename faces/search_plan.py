"""Where to run a fixed-window face detector over a photo so that every face above a minimum size is found once.

dlib's detectors scan an 80x80 window over their own pyramid of downscaled copies: one search of
the photo resized by `scale` finds faces from about 80 / scale photo pixels up to the whole image.
A search image larger than `tile_size` is cut into tiles overlapping by `OVERLAP` pixels, so
memory stays bounded. A tile keeps only the faces small enough to fit in that overlap whose
centre lies in the part of the tile it owns (so a face cut by a tile edge is taken from the tile
that holds it whole); a further pass at a smaller scale finds the larger faces, until a pass fits
in one tile or keeps faces as large as the photo. The same face found by two passes is merged
by non-maximum suppression.
"""
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Side of the window both dlib detectors scan, in pixels of the image they search.
DETECTION_WINDOW = 80
# Pixels of the search image shared by neighbouring tiles.
OVERLAP = 256
# A tile also keeps faces whose centre is up to this many search pixels beyond the part it owns:
# the same face found by two tiles can be placed a few pixels apart (dlib's CNN has a stride of 8).
CENTRE_SLACK = 16
# The next pass's smallest face is this much below the largest face a tiled pass keeps (one step
# of dlib's 5/6 pyramid), so sizes near the limit are searched twice, not missed.
PASS_MARGIN = 1.2
# Detections of one face by two passes overlap by at least this IoU (boxes 1.2x apart: 0.69).
NMS_IOU = 0.4


@dataclass(frozen=True)
class Tile:
    """A window of the photo searched as one image, and the box centres it keeps, in photo pixels.

    `window` is (x0, y0, x1, y1) integer slice bounds; `owned` is (x0, y0, x1, y1), infinite on
    the photo's own edges.
    """
    window: tuple
    owned: tuple


@dataclass(frozen=True)
class SearchPass:
    """The photo searched at one scale: its tiles, and the largest face side (photo pixels) kept."""
    scale: float
    tiles: tuple
    max_face: float

    def keeps(self, tile, box):
        """Whether a box (left, top, right, bottom) found in `tile` belongs to this pass."""
        left, top, right, bottom = box
        if max(right - left, bottom - top) + 1 > self.max_face:
            return False
        slack = CENTRE_SLACK / self.scale
        x, y = (left + right) / 2, (top + bottom) / 2
        x0, y0, x1, y1 = tile.owned
        return x0 - slack <= x < x1 + slack and y0 - slack <= y < y1 + slack


def axis_tiles(length, tile, overlap):
    """[(start, end, owned_start, owned_end)]: the fewest pieces of at most `tile` covering 0..length with `overlap`.

    The pieces share the length equally; each owns the half of its overlaps nearest to it.
    """
    if length <= tile:
        return [(0, length, -math.inf, math.inf)]
    count = math.ceil((length - overlap) / (tile - overlap))
    piece = (length + (count - 1) * overlap) / count
    starts = [math.floor(index * (piece - overlap)) for index in range(count)]
    ends = [min(math.ceil(index * (piece - overlap) + piece), length) for index in range(count)]
    cuts = [-math.inf] + [(ends[index] + starts[index + 1]) / 2 for index in range(count - 1)] + [math.inf]
    return [(starts[index], ends[index], cuts[index], cuts[index + 1]) for index in range(count)]


def check_search(min_face_size: int, tile_size: int) -> None:
    """ValueError unless faces are looked for from a positive size, in tiles wider than two overlaps."""
    if not min_face_size > 0:
        raise ValueError(f'the minimum face size must be a positive number of pixels, got {min_face_size}')
    if tile_size < 2 * OVERLAP:
        raise ValueError(f'the detection tile size must be at least {2 * OVERLAP} pixels, got {tile_size}')


def plan_search(height, width, min_face_size, tile_size, max_scale=math.inf):
    """[SearchPass], finest first, that find every face of at least `min_face_size` photo pixels.

    `tile_size` bounds the side of every searched image (in its own pixels); `max_scale` caps the
    first pass's scale. Tiles too small to hold a detection window are left out.
    """
    check_search(min_face_size, tile_size)
    scale = min(DETECTION_WINDOW / min_face_size, max_scale)
    largest_kept = OVERLAP - 2 * CENTRE_SLACK
    passes = []
    while True:
        rows = axis_tiles(height, tile_size / scale, OVERLAP / scale)
        cols = axis_tiles(width, tile_size / scale, OVERLAP / scale)
        tiled = len(rows) * len(cols) > 1
        tiles = tuple(Tile((x0, y0, x1, y1), (own_x0, own_y0, own_x1, own_y1))
                      for y0, y1, own_y0, own_y1 in rows for x0, x1, own_x0, own_x1 in cols
                      if min(x1 - x0, y1 - y0) * scale >= DETECTION_WINDOW)
        max_face = largest_kept / scale if tiled else math.inf
        if tiles:
            passes.append(SearchPass(scale, tiles, max_face))
        if max_face >= min(height, width):  # no larger face fits in the photo
            return passes
        scale *= DETECTION_WINDOW * PASS_MARGIN / largest_kept


def box_iou(box, boxes):
    """IoU of one (left, top, right, bottom) box, corners inclusive as dlib's, with each of (N, 4) boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + 1
    height = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + 1
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    return inter / (area + areas - inter)


def non_max_suppression(boxes, scores, iou=NMS_IOU):
    """Indices of the boxes kept, best score first: each box drops the lower-scored ones overlapping it above `iou`.

    (OpenCV's cv2.dnn.NMSBoxes also drops every box scoring at or below its score threshold,
    which must be >= 0, and dlib scores can be 0.)
    """
    order = list(np.argsort(-np.asarray(scores, dtype=np.float64), kind='stable'))
    kept = []
    while order:
        best, order = order[0], order[1:]
        kept.append(int(best))
        if order:
            overlaps = box_iou(boxes[best], [boxes[index] for index in order])
            order = [index for index, overlap in zip(order, overlaps) if overlap <= iou]
    return kept


def same_faces(boxes: Sequence[Sequence[float]], other_boxes: Sequence[Sequence[float]],
               tolerance: float = 0.3) -> list[tuple[int, int]]:
    """[(i, j)]: boxes[i] and other_boxes[j] on the same face, each box paired at most once, nearest first.

    Two boxes are on the same face when their centres are less than `tolerance` times the side
    of the larger one apart (dlib's two detectors box faces a little differently).
    """
    def centres_and_sides(values):
        values = np.asarray(values, dtype=np.float64).reshape(-1, 4)
        sizes = values[:, 2:] - values[:, :2] + 1
        return (values[:, :2] + values[:, 2:]) / 2, sizes.max(axis=1)
    centres, sides = centres_and_sides(boxes)
    other_centres, other_sides = centres_and_sides(other_boxes)
    distance = np.linalg.norm(centres[:, None] - other_centres[None], axis=2)
    close = distance < tolerance * np.maximum.outer(sides, other_sides)
    pairs, used, used_other = [], set(), set()
    for i, j in zip(*np.unravel_index(np.argsort(distance, axis=None), distance.shape)):
        if close[i, j] and i not in used and j not in used_other:
            pairs.append((int(i), int(j)))
            used.add(i)
            used_other.add(j)
    return pairs
