"""Each face's landmarks smoothed over time along its track, looking ahead as well as back, so that the aligned
crop and the pasted face do not shake.

A video is enhanced after it was filmed, so the smoothing need not lag: each frame's landmarks are replaced by
a local quadratic fit over the frames of the same track within `REACH` sigmas on both sides (Gaussian weights
in time: variable frame rates are smoothed alike), evaluated at the frame's time. Motion up to constant
acceleration (pans, zooms easing in and out) passes unchanged, the detector's frame-to-frame noise does not.
Measured on clips of real photos (`scripts.measure_video_stability`, CNN detector, 1280x720 at 30 fps: see
docs/videos.md) the jitter of the alignment fell 15 to 20 times, the flicker of the output 17 to 78 times, and
the mean distance to the true landmarks did not grow. A causal filter (One-Euro, tried first) divided the
jitter by 2 to 3.3 only, with 2 to 5 px of lag in the 512 px aligned face.

Frames come out as soon as the frames `REACH` sigmas later have been seen (at most `MAX_LOOKAHEAD` frames):
the memory of a few frames.
"""
import dataclasses
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

SIGMA_SECONDS = 4 / 30  # the Gaussian's width: 4 frames at 30 fps
REACH = 2.0  # frames within this many sigmas of a frame take part in its fit
MAX_LOOKAHEAD = 16  # frames: at high frame rates the window holds at most this many on each side
DEGREE = 2


@dataclass
class Tracked:
    """A frame's faces and the track number of each (`video.tracking.FaceTracker`); `item` rides along."""
    item: object
    time: float
    faces: list
    tracks: list


def local_fit(times: np.ndarray, values: np.ndarray, at: float, sigma: float = SIGMA_SECONDS,
              degree: int = DEGREE) -> np.ndarray:
    """The value at time `at` of the polynomial of `degree` (lower when there are fewer points) fitted to
    (times (T,), values (T, ...)) by least squares with Gaussian weights of width `sigma` around `at`."""
    offsets = np.asarray(times, dtype=np.float64) - at
    values = np.asarray(values, dtype=np.float64)
    root_weights = np.exp(-0.25 * (offsets / sigma) ** 2)[:, None]
    design = np.vander(offsets / sigma, min(degree, len(offsets) - 1) + 1, increasing=True) * root_weights
    coefficients, *_ = np.linalg.lstsq(design, values.reshape(len(offsets), -1) * root_weights, rcond=None)
    return coefficients[0].reshape(values.shape[1:])


def _smoothed(window: deque, index: int, sigma: float) -> Tracked:
    entry = window[index]
    reach = REACH * sigma
    faces = []
    for face, track in zip(entry.faces, entry.tracks):
        times, points = zip(*((other.time, other.faces[other.tracks.index(track)].landmarks) for other in window
                              if track in other.tracks and abs(other.time - entry.time) <= reach))
        faces.append(dataclasses.replace(face, landmarks=local_fit(np.array(times), np.array(points), entry.time,
                                                                   sigma)))
    return dataclasses.replace(entry, faces=faces)


def smooth_tracks(tracked: Iterable[Tracked], sigma: float = SIGMA_SECONDS,
                  max_lookahead: int = MAX_LOOKAHEAD) -> Iterator[Tracked]:
    """The entries of `tracked` in order, each face's landmarks smoothed along its track (new `Face` objects);
    each is handed out once the entries `REACH` sigmas later (or `max_lookahead` of them) have been read."""
    window: deque = deque()  # the entries handed out that later ones still fit over, then the waiting ones
    done = 0  # how many entries at the front of `window` have been handed out
    for entry in tracked:
        window.append(entry)
        while done < len(window) and (entry.time - window[done].time > REACH * sigma
                                      or len(window) - 1 - done >= max_lookahead):
            yield _smoothed(window, done, sigma)
            done += 1
            upcoming = window[min(done, len(window) - 1)].time  # the next to hand out, or the latest read
            while done and (upcoming - window[0].time > REACH * sigma or done > max_lookahead):
                window.popleft()
                done -= 1
    for index in range(done, len(window)):
        yield _smoothed(window, index, sigma)
