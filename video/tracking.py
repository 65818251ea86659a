"""Faces followed from frame to frame of a video: each found face continues the track of the previous frame's face
it overlaps most, or starts a new one. `video.smoothing` then smooths each track's landmarks over time.
"""
import itertools
from collections.abc import Sequence

import numpy as np

from faces.detector import Face

IOU_THRESHOLD = 0.3


def box_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of boxes (N, 4) and (M, 4), each (left, top, right, bottom)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 1, 4)
    others = np.asarray(others, dtype=np.float64).reshape(1, -1, 4)
    width = np.clip(np.minimum(boxes[..., 2], others[..., 2]) - np.maximum(boxes[..., 0], others[..., 0]), 0, None)
    height = np.clip(np.minimum(boxes[..., 3], others[..., 3]) - np.maximum(boxes[..., 1], others[..., 1]), 0, None)
    intersection = width * height

    def area(b):
        return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area(boxes) + area(others) - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def match_boxes(previous: np.ndarray, current: np.ndarray, threshold: float = IOU_THRESHOLD) -> dict[int, int]:
    """{index in `current`: index in `previous`} of the box pairs overlapping most in total (Hungarian assignment
    on IoU), each pair's IoU at least `threshold`."""
    if len(previous) == 0 or len(current) == 0:
        return {}
    from scipy.optimize import linear_sum_assignment  # scipy.optimize takes most of a second to import: videos only
    iou = box_iou(current, previous)
    rows, columns = linear_sum_assignment(iou, maximize=True)
    return {int(row): int(column) for row, column in zip(rows, columns) if iou[row, column] >= threshold}


class FaceTracker:
    """Follows faces from frame to frame by their boxes: `update` gives each face of a frame its track number.

    A face overlapping one of the previous frame's faces by at least `iou_threshold` continues its track (Hungarian
    assignment on overlap, so two faces never share one); any other starts a new track, and a track without a face
    in a frame ends (a face that leaves and comes back starts afresh), as all do at a scene cut.
    """

    def __init__(self, iou_threshold: float = IOU_THRESHOLD) -> None:
        self.iou_threshold = iou_threshold
        self._numbers = itertools.count()
        self._boxes: list[tuple] = []
        self._tracks: list[int] = []

    def update(self, faces: Sequence[Face], scene_cut: bool = False) -> list[int]:
        """The track number of each face of the next frame, in their order; `scene_cut`: the frame starts a new
        shot, every track ends."""
        previous_boxes, previous_tracks = ([], []) if scene_cut else (self._boxes, self._tracks)
        matches = match_boxes(np.array(previous_boxes).reshape(-1, 4),
                              np.array([face.box for face in faces]).reshape(-1, 4), self.iou_threshold)
        self._tracks = [previous_tracks[matches[index]] if index in matches else next(self._numbers)
                        for index in range(len(faces))]
        self._boxes = [face.box for face in faces]
        return list(self._tracks)
