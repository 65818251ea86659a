"""Faces in a photo with dlib's detectors: the CNN (mmod) or HOG, then five landmarks per face.

The photo is searched as `search_plan.plan_search` lays out: at the scale that brings the
smallest face wanted (`min_face_size`) up to dlib's 80 px window, in tiles when that image is
large, then at smaller scales for the larger faces. dlib's CNN runs in PyTorch
(`mmod_detector`: the same network, pyramid and boxes, on every core or the GPU); HOG releases
the GIL and searches tiles in threads. The landmarks are always placed on the full-resolution
photo. The model files come from `faces.dlib_models`.
"""
import argparse
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Self

import cv2
import dlib
import numpy as np
import torch

from faces.dlib_models import CNN_DETECTOR_FILE, LANDMARKS_FILE, dlib_model_path
from faces.mmod_detector import MmodDetector
from faces.search_plan import DETECTION_WINDOW, SearchPass, check_search, non_max_suppression, plan_search
from utils.progress import progress

log = logging.getLogger('face_detect')
DETECTORS = ('cnn', 'hog')
DEFAULT_MIN_FACE_SIZE = 40
# Lowest detection score kept. dlib keeps every HOG window scoring above 0, and weak ones
# (below ~0.15 on the astronaut photo's badges) are not faces; true faces score near 1.
MIN_SCORES = {'cnn': 0.0, 'hog': 0.3}
# Memory per pixel searched: the CNN about 200 bytes (measured: 0.8 GB at 2048x2048, 1.8 GB at
# 3072x3072), HOG about 16.
CNN_SEARCH_BYTES_PER_PIXEL = 200
HOG_SEARCH_BYTES_PER_PIXEL = 16
# Default longest side of one searched image. HOG: a fixed 4096. The CNN: as large as this share of
# the memory of the device it runs on holds (5675 px with 24 GiB: photos up to 2837 px a side are
# searched whole at 2x, as the published script searches them, in under a fifth of its memory),
# at least CNN_MIN_TILE_SIZE.
HOG_TILE_SIZE = 4096
CNN_MEMORY_SHARE = 0.25
CNN_MIN_TILE_SIZE = 2048
# HOG threads searching at once may fill this share of the machine's memory.
WORKER_MEMORY_SHARE = 0.5


@dataclass
class Face:
    """A detected face: box (left, top, right, bottom) and five landmarks (5, 2), in photo pixels."""
    box: tuple
    score: float
    landmarks: np.ndarray


@dataclass
class FaceSearch:
    """What searching one photo found, how (the `SearchPass`es run) and in how many seconds."""
    faces: list
    passes: list
    seconds: float

    def describe(self) -> str:
        """E.g. 'scale 2.00 in 6 tiles, 0.86 in 2 tiles, 0.37 whole'."""
        if not self.passes:
            return 'photo too small to search'
        return 'scale ' + ', '.join(f'{step.scale:.2f} ' + (f'in {len(step.tiles)} tiles' if len(step.tiles) > 1
                                                            else 'whole') for step in self.passes)


class HogSearch:
    """Callable: HxWx3 uint8 image -> [(left, top, right, bottom, score)] found by dlib's HOG at the image's own
    scale."""

    def __init__(self):
        self._hog = dlib.get_frontal_face_detector()

    def __call__(self, image):
        rects, scores, _ = self._hog.run(image, 0)
        return [(rect.left(), rect.top(), rect.right(), rect.bottom(), float(score))
                for rect, score in zip(rects, scores)]


_thread_searches = threading.local()


def _search_in_thread(image):
    """dlib's HOG releases the GIL: threads search in parallel, each with its own detector."""
    if not hasattr(_thread_searches, 'search'):
        _thread_searches.search = HogSearch()
    return _thread_searches.search(image)


# At this scale a photo is searched as dlib's detectors search it with `upsample_num_times=1` (the published
# script's `cnn_face_detection_model_v1(img, 1)`): enlarged whole by dlib's pyramid_up (its bilinear resize
# to the size pyramid_down(2).rect_up gives the photo), boxes mapped back by pyramid_down(2).rect_down. So
# a photo searched in one piece gets dlib's own boxes, hence its landmarks and aligned faces; tiles are
# windows of that enlarged photo (about 12 bytes per photo pixel).
DLIB_UPSAMPLE_SCALE = 2
_DLIB_PYRAMID = dlib.pyramid_down(2)


def dlib_pyramid_up(photo: np.ndarray) -> np.ndarray:
    """dlib's `pyramid_up(img, pyramid_down<2>)`: the photo resized to (2 h + 1) x (2 w + 2), bilinear."""
    height, width = photo.shape[:2]
    return dlib.resize_image(np.ascontiguousarray(photo), 2 * height + 1, 2 * width + 2)


@dataclass(frozen=True)
class SearchImage:
    """A window of the photo resized for one search, and how a box found in it maps back to the photo."""

    image: np.ndarray
    origin: tuple  # (x0, y0) of the image in the photo, or in dlib's enlarged photo
    scales: tuple | None  # (x, y) scales applied; None for a window of `dlib_pyramid_up(photo)`

    def box_in_photo(self, box: Sequence[float]) -> tuple:
        """(left, top, right, bottom) in photo pixels of a box (left, top, right, bottom) of the search image."""
        x0, y0 = self.origin
        left, top, right, bottom = box[:4]
        if self.scales is None:
            rect = _DLIB_PYRAMID.rect_down(dlib.rectangle(int(left) + x0, int(top) + y0, int(right) + x0,
                                                          int(bottom) + y0))
            return rect.left(), rect.top(), rect.right(), rect.bottom()
        scale_x, scale_y = self.scales
        return ((left + 0.5) / scale_x - 0.5 + x0, (top + 0.5) / scale_y - 0.5 + y0,
                (right + 0.5) / scale_x - 0.5 + x0, (bottom + 0.5) / scale_y - 0.5 + y0)


def search_image(photo: np.ndarray, window: tuple, scale: float, enlarged: np.ndarray | None = None) -> SearchImage:
    """The photo's `window` (x0, y0, x1, y1) resized by about `scale`, contiguous.

    At `DLIB_UPSAMPLE_SCALE`, the window's part of `enlarged` (`dlib_pyramid_up(photo)`); else OpenCV
    (area when shrinking, bilinear when enlarging).
    """
    x0, y0, x1, y1 = window
    if scale == DLIB_UPSAMPLE_SCALE and enlarged is not None:
        top, left = 2 * y0, 2 * x0
        bottom, right = min(2 * y1 + 1, enlarged.shape[0]), min(2 * x1 + 2, enlarged.shape[1])
        return SearchImage(np.ascontiguousarray(enlarged[top:bottom, left:right]), (left, top), None)
    crop = photo[y0:y1, x0:x1]
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    if size != (x1 - x0, y1 - y0):
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return SearchImage(np.ascontiguousarray(crop), (x0, y0), (size[0] / (x1 - x0), size[1] / (y1 - y0)))


def search_images(photo: np.ndarray, jobs: Sequence[tuple]) -> Iterator[SearchImage]:
    """The `SearchImage` of each (SearchPass, Tile) job, in order; dlib's enlarged photo made once, if needed."""
    enlarged = None
    for search_pass, tile in jobs:
        if search_pass.scale == DLIB_UPSAMPLE_SCALE and enlarged is None:
            enlarged = dlib_pyramid_up(photo)
        yield search_image(photo, tile.window, search_pass.scale, enlarged)


def device_memory(device: torch.device | str = 'cpu') -> int | None:
    """Bytes of memory of the device (the machine's RAM for the CPU), None when unknown."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (AttributeError, ValueError, OSError):
        return None


def default_tile_size(kind: str, device: torch.device | str = 'cpu') -> int:
    """The longest side of one searched image when --detect_tile_size is not given (see `CNN_MEMORY_SHARE`)."""
    if kind == 'hog':
        return HOG_TILE_SIZE
    memory = device_memory(device)
    if memory is None:
        return CNN_MIN_TILE_SIZE
    return max(CNN_MIN_TILE_SIZE, math.isqrt(int(CNN_MEMORY_SHARE * memory / CNN_SEARCH_BYTES_PER_PIXEL)))


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def default_workers(kind: str, tile_size: int) -> int:
    """HOG: one search thread per usable core, as many as fit in `WORKER_MEMORY_SHARE`. CNN: 1, PyTorch spreads
    each search over the cores."""
    if kind == 'cnn':
        return 1
    memory = device_memory()
    if memory is None:
        return 1
    per_worker = HOG_SEARCH_BYTES_PER_PIXEL * tile_size ** 2
    return max(1, min(usable_cores(), int(memory * WORKER_MEMORY_SHARE // per_worker)))


class FaceDetector:
    """Callable: HxWx3 uint8 RGB photo -> list of `Face`, left to right.

    Finds faces whose box side is at least `min_face_size` photo pixels; each searched image is
    at most `tile_size` pixels a side (default: `default_tile_size`); `max_search_size`
    (the deprecated --detect_max_size) further caps the first search's longer side. The CNN
    searches one image at a time on PyTorch's threads, on `device`; HOG searches tiles in
    `workers` threads (1: in the caller's thread; 0: `default_workers`). Use as a context manager, or
    `close()`, to stop them.
    """

    def __init__(self, kind: str = 'cnn', min_face_size: int = DEFAULT_MIN_FACE_SIZE, min_score: float | None = None,
                 tile_size: int | None = None, workers: int = 1, max_search_size: int | None = None,
                 progress: bool = False, device: torch.device | str = 'cpu') -> None:
        if kind not in DETECTORS:
            raise ValueError(f'detector must be one of {DETECTORS}, got {kind!r}')
        self.tile_size = default_tile_size(kind, device) if tile_size is None else tile_size
        check_search(min_face_size, self.tile_size)
        if max_search_size is not None and max_search_size < 1:
            raise ValueError(f'the search size limit must be a positive number of pixels, got {max_search_size}')
        if workers < 0:
            raise ValueError(f'the number of detection workers must be 0 (one per core) or more, got {workers}')
        workers = workers or default_workers(kind, self.tile_size)
        self.kind = kind
        self.min_face_size = min_face_size
        self.min_score = MIN_SCORES[kind] if min_score is None else min_score
        self.workers = workers
        self.max_search_size = max_search_size
        self.progress = progress
        self._search = MmodDetector(dlib_model_path(CNN_DETECTOR_FILE), device) if kind == 'cnn' else HogSearch()
        self._landmarks = dlib.shape_predictor(dlib_model_path(LANDMARKS_FILE))
        self._pool = None

    def plan(self, height: int, width: int) -> list[SearchPass]:
        """The `SearchPass`es run on a photo of this size."""
        max_scale = math.inf if self.max_search_size is None else self.max_search_size / max(height, width)
        return plan_search(height, width, self.min_face_size, self.tile_size, max_scale)

    def _searches(self, prepared, count, bar):
        """[(SearchImage, dlib's boxes in it)] for `count` search images, in order, `bar` updated as each is searched.

        HOG searches run in `workers` threads when there are several; CNN ones one after another.
        """
        def searched(searched_image, found):
            bar.update()
            return searched_image, found
        if self.kind == 'cnn' or self.workers == 1 or count < 2:
            return [searched(item, self._search(item.image)) for item in prepared]
        self._pool = self._pool or ThreadPoolExecutor(self.workers, thread_name_prefix='hog_search')
        pending, found = deque(), []
        for item in prepared:  # a bounded number of images wait for a thread
            pending.append((item, self._pool.submit(_search_in_thread, item.image)))
            if len(pending) > 2 * self.workers:
                item, future = pending.popleft()
                found.append(searched(item, future.result()))
        found.extend(searched(item, future.result()) for item, future in pending)
        return found

    def detect(self, photo: np.ndarray,
               passes: Sequence[SearchPass] | None = None) -> list[tuple[tuple[float, float, float, float], float]]:
        """[(box, score)] scoring at least `min_score`, boxes (left, top, right, bottom) in photo pixels.

        `passes`: the search plan, by default `plan(height, width)`.
        """
        passes = self.plan(*photo.shape[:2]) if passes is None else passes
        jobs = [(search_pass, tile) for search_pass in passes for tile in search_pass.tiles]
        bar = progress(total=len(jobs), desc='face search', unit='tile', leave=False,
                       disable=not self.progress or len(jobs) < 2)
        prepared = search_images(photo, jobs)
        boxes, scores = [], []
        with bar:
            found_per_tile = self._searches(prepared, len(jobs), bar)
        for (search_pass, tile), (searched, found) in zip(jobs, found_per_tile):
            for *box_found, score in found:
                box = searched.box_in_photo(box_found)
                if score >= self.min_score and search_pass.keeps(tile, box):
                    boxes.append(box)
                    scores.append(score)
        return [(boxes[index], scores[index]) for index in non_max_suppression(boxes, scores)]

    def landmarks(self, photo: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """(5, 2) float landmarks of the face in `box`, placed on the full-resolution photo."""
        rect = dlib.rectangle(*(int(round(value)) for value in box))
        shape = self._landmarks(np.ascontiguousarray(photo), rect)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], dtype=np.float64)

    def search(self, photo: np.ndarray) -> FaceSearch:
        """`FaceSearch` of the photo: its faces left to right, the passes run, the seconds taken."""
        start = time.perf_counter()
        passes = self.plan(*photo.shape[:2])
        found = self.detect(photo, passes)
        faces = sorted((Face(box, score, self.landmarks(photo, box)) for box, score in found),
                       key=lambda face: (face.box[0], face.box[1]))
        return FaceSearch(faces, passes, time.perf_counter() - start)

    def __call__(self, photo: np.ndarray) -> list[Face]:
        return self.search(photo).faces

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def detector_from_flags(args: argparse.Namespace, device: torch.device | str = 'cpu') -> FaceDetector:
    """The `FaceDetector` the flags of options/detection_flags.py ask for (their values checked by argparse), its
    CNN on `device`; --detect_max_size warns."""
    warn_max_size(args)
    return FaceDetector(args.detector, args.min_face_size, args.detect_min_score, args.detect_tile_size,
                        args.detect_workers, args.detect_max_size, progress=True, device=device)


def warn_max_size(args: argparse.Namespace) -> None:
    """One warning line when the deprecated --detect_max_size is given, saying what it does."""
    if args.detect_max_size is not None:
        log.warning('--detect_max_size is deprecated (use --min_face_size): it still caps the first search image '
                    'at %d px a side, so in a photo longer than %d px the smallest face found is %d x (longer side) '
                    '/ %d px, more than --min_face_size %d', args.detect_max_size,
                    args.detect_max_size * args.min_face_size // DETECTION_WINDOW, DETECTION_WINDOW,
                    args.detect_max_size, args.min_face_size)
