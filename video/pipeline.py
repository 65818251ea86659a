"""The whole-photo pipeline over the frames of a video, streaming: decode, detect, enhance, paste, encode.

Four stages overlap, each a few frames ahead of the next (`utils.prefetch`): decoding (PyAV), face detection
with tracking (`video.tracking`), landmark smoothing (`video.smoothing`) and alignment, the network on the faces
of several frames at once, and pasting plus encoding (a writer thread). Frames without a face pass through,
enlarged as photos are. A `stop` event set (the web page's server stopping) ends the run between frames with
`Cancelled`; however the run ends, the stages' threads have ended when `run` returns or raises.
"""
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from faces.align import align_face, paste_faces
from faces.restorer import FaceRestorer
from utils.prefetch import prefetch
from utils.write_pool import WritePool
from video.reader import Frame
from video.scene_cuts import SceneCutDetector
from video.smoothing import Tracked, smooth_tracks
from video.tracking import FaceTracker

STAGE_DEPTH = 2  # frames each stage holds ahead of the next
MAX_PENDING_FRAMES = 8  # frames whose faces wait for a full batch


class Cancelled(Exception):
    """The run was asked to stop (its `stop` event set) before it was done."""


@dataclass
class FrameFaces:
    """A frame and its faces: smoothed detections, aligned crops, photo -> crop matrices, enhanced crops."""
    frame: Frame
    faces: list
    lq_faces: list
    matrices: list
    hq_faces: list | None = None


@dataclass
class VideoTotals:
    frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0


class VideoRestorer:
    """The pipeline of `restorer` over the frames of a video: `run` hands each enhanced frame to a writer.

    Faces are followed from frame to frame (tracks end at scene cuts) and, with `smooth`, their landmarks are
    smoothed along their tracks before alignment.
    """

    def __init__(self, restorer: FaceRestorer, smooth: bool = True) -> None:
        self.restorer = restorer
        self.smooth = smooth
        self.tracker = FaceTracker()
        self.scene_cuts = SceneCutDetector()
        self.totals = VideoTotals()

    def tracked(self, frames: Iterable[Frame]) -> Iterator[Tracked]:
        for frame in frames:
            faces = self.restorer.find_faces(frame.image)
            tracks = self.tracker.update(faces, scene_cut=self.scene_cuts(frame.image))
            yield Tracked(frame, frame.time, faces, tracks)

    def found(self, frames: Iterable[Frame]) -> Iterator[FrameFaces]:
        """The frames in order with their faces found, followed, smoothed (with `smooth`) and aligned."""
        tracked = self.tracked(frames)
        for entry in smooth_tracks(tracked) if self.smooth else tracked:
            aligned = [align_face(entry.item.image, face.landmarks, self.restorer.face_size) for face in entry.faces]
            yield FrameFaces(entry.item, entry.faces, [crop for crop, _ in aligned], [matrix for _, matrix in aligned])

    def enhance(self, pending: list[FrameFaces]) -> None:
        """Enhance the faces of several frames in the restorer's batches (filled across frames)."""
        lq_faces = [face for item in pending for face in item.lq_faces]
        hq_faces = iter(self.restorer.enhance_faces(np.stack(lq_faces), show_progress=False) if lq_faces else ())
        for item in pending:
            item.hq_faces = [next(hq_faces) for _ in item.lq_faces]

    def paste(self, item: FrameFaces) -> np.ndarray:
        image, upscale = item.frame.image, self.restorer.upscale
        background = self.restorer.background(image) if self.restorer.background is not None else None
        if not item.faces:
            if background is not None:
                return background
            return image if upscale == 1 else cv2.resize(image, None, fx=upscale, fy=upscale,
                                                         interpolation=cv2.INTER_CUBIC)
        return paste_faces(image, item.hq_faces, item.matrices, upscale, background)

    def batches(self, found: Iterable[FrameFaces]) -> Iterator[FrameFaces]:
        """The frames in order, their faces enhanced once a batch is full (or the frames waiting too many)."""
        pending, waiting_faces = [], 0
        for item in found:
            pending.append(item)
            waiting_faces += len(item.faces)
            if waiting_faces >= self.restorer.batch_size or len(pending) >= MAX_PENDING_FRAMES or not waiting_faces:
                self.enhance(pending)
                yield from pending
                pending, waiting_faces = [], 0
        self.enhance(pending)
        yield from pending

    def run(self, frames: Iterable[Frame], write: Callable[[Frame, np.ndarray], None],
            on_frame: Callable[[], None] = lambda: None, stop: threading.Event | None = None) -> VideoTotals:
        """Every frame through the pipeline, handed to `write(frame, image)` in order on a writer thread; Cancelled
        at the next frame once `stop` is set."""
        def paste_and_write(item: FrameFaces) -> None:
            write(item.frame, self.paste(item))
            on_frame()

        decoded = prefetch(frames, STAGE_DEPTH, 'decode')
        found = prefetch(self.found(decoded), STAGE_DEPTH, 'detect')
        try:
            with WritePool(1, max_pending=STAGE_DEPTH) as writer:
                for item in self.batches(found):
                    if stop is not None and stop.is_set():
                        raise Cancelled('stopped before the last frame')
                    self.totals.frames += 1
                    self.totals.frames_with_faces += bool(item.faces)
                    self.totals.faces += len(item.faces)
                    writer.submit(paste_and_write, item)
        finally:  # the stages end here, not when the traceback goes: the caller closes the video next
            found.close()
            decoded.close()
        return self.totals
