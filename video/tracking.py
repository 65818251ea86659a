"""Faces followed from frame to frame of a video, their landmarks smoothed over time so that the aligned crops and
the pasted faces do not jitter; and scene cuts, where following stops.

The smoothing is the One-Euro filter (Casiez, Roussel and Vogel, CHI 2012): a low-pass filter whose cutoff rises
with the speed of the signal, so a still face is smoothed hard and a moving one followed without lag.
"""
import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from faces.detector import Face

# Defaults measured with the CNN detector on 40-frame 1280x720 pan-and-zoom clips (`video.stability.pan_zoom_clip`,
# noise 2, JPEG 70) of two real photos, at 30 fps. Jitter / mean error to the true landmarks, in pixels of the
# 512 px aligned face, found -> smoothed: face moving 0.37 eye distances/s: 0.82 / 0.99 -> 0.25 / 2.36; 1.5 and
# 1.7 eye distances/s (fast pans): 0.87 / 1.00 -> 0.45 / 5.13 and 1.23 / 0.87 -> 0.65 / 5.01. A lower min_cutoff
# or beta smooths more but lags more when the face moves (beta 1: errors near 7 px on the fast pans); a higher beta
# lags less but keeps more jitter (beta 5: jitter divided by 1.5 only). The lag only shifts the aligned crop by
# under 1 % of its size: the face is pasted back through the same matrix, so it stays where it is in the frame.
MIN_CUTOFF = 2.0
BETA = 2.0
D_CUTOFF = 1.0
IOU_THRESHOLD = 0.3


def smoothing_factor(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
    """The exponential smoothing factor of a first-order low-pass filter at `cutoff` Hz over `dt` seconds."""
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """The One-Euro filter over an array of any shape, element by element, driven by timestamps in seconds.

    `min_cutoff` (Hz) sets the smoothing of a still signal, `beta` how fast the cutoff rises with speed, `d_cutoff`
    (Hz) the smoothing of the speed itself. Speeds are in units of `scale` per second (`scale` given with each
    value): with a face's size as the scale, the same `beta` fits small and large faces.
    """

    def __init__(self, min_cutoff: float = MIN_CUTOFF, beta: float = BETA, d_cutoff: float = D_CUTOFF) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._value = None
        self._speed = None
        self._time = None

    def __call__(self, value: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        """The filtered value at time `t` (seconds, increasing); the first value passes unchanged."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None:
            self._value, self._speed, self._time = value.copy(), np.zeros_like(value), t
            return value.copy()
        dt = t - self._time
        if dt <= 0:
            raise ValueError(f'timestamps must increase: {t} after {self._time}')
        speed = (value - self._value) / dt
        self._speed = self._speed + smoothing_factor(self.d_cutoff, dt) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed) / scale
        self._value = self._value + smoothing_factor(cutoff, dt) * (value - self._value)
        self._time = t
        return self._value.copy()


def eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eyes' centres of dlib's five landmarks (..., 5, 2): the face's size for the filter and
    the jitter metric (points 0-1 and 2-3 are the corners of each eye)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    first = landmarks[..., 0:2, :].mean(axis=-2)
    second = landmarks[..., 2:4, :].mean(axis=-2)
    return np.linalg.norm(first - second, axis=-1)


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
    iou = box_iou(current, previous)
    rows, columns = linear_sum_assignment(iou, maximize=True)
    return {int(row): int(column) for row, column in zip(rows, columns) if iou[row, column] >= threshold}


@dataclasses.dataclass
class _Track:
    box: tuple
    smoother: OneEuroFilter


class FaceTracker:
    """Follows faces from frame to frame by their boxes and smooths each one's landmarks over time.

    A face overlapping one of the previous frame's faces by at least `iou_threshold` continues its track; any other
    starts a new one, and a track without a face in a frame ends (a face that leaves and comes back starts afresh).
    `smooth=False` still tracks but returns the faces as found (--no_temporal_smoothing).
    """

    def __init__(self, smooth: bool = True, min_cutoff: float = MIN_CUTOFF, beta: float = BETA,
                 d_cutoff: float = D_CUTOFF, iou_threshold: float = IOU_THRESHOLD) -> None:
        self.smooth = smooth
        self.filter_settings = {'min_cutoff': min_cutoff, 'beta': beta, 'd_cutoff': d_cutoff}
        self.iou_threshold = iou_threshold
        self._tracks = []

    def update(self, faces: Sequence[Face], t: float, scene_cut: bool = False) -> list[Face]:
        """The faces of the frame at time `t` (seconds), in their order, landmarks smoothed along their tracks (new
        `Face` objects; the inputs are left alone). `scene_cut`: the frame starts a new shot, every track ends."""
        previous = [] if scene_cut else self._tracks
        matches = match_boxes(np.array([track.box for track in previous]).reshape(-1, 4),
                              np.array([face.box for face in faces]).reshape(-1, 4), self.iou_threshold)
        self._tracks = []
        smoothed = []
        for index, face in enumerate(faces):
            track = previous[matches[index]] if index in matches else _Track(face.box, OneEuroFilter(
                **self.filter_settings))
            track.box = face.box
            self._tracks.append(track)
            if self.smooth:
                scale = max(float(eye_distance(face.landmarks)), 1.0)
                face = dataclasses.replace(face, landmarks=track.smoother(face.landmarks, t, scale))
            smoothed.append(face)
        return smoothed
