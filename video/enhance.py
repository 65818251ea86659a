"""One video through the whole-photo pipeline: every face of every frame enhanced, into one output video
(`<name>.mp4`, `.mkv` when an audio codec of the input does not fit MP4) with the input's frames, timing, rotation
and sound. The whole-photo script, the Python API and the web page run videos here.

A video that cannot be read fails with one line; a damaged one keeps every frame that decoded, says how many were
lost and fails. The output is written under a temporary name and renamed when complete.
"""
import logging
import os
import threading
from collections.abc import Callable

import av

from faces.restorer import FaceRestorer
from models.enhancer import NonFiniteOutput
from utils.cli import UserError
from utils.output_plan import real_path
from utils.progress import progress
from video.pipeline import VideoRestorer, VideoTotals
from video.reader import VideoReadError, VideoSource
from video.writer import DEFAULT_CRF, VideoSink, output_format

log = logging.getLogger('video')


class VideoFailed(UserError):
    """One video could not be enhanced (or only in part): the message says what happened to it."""


def output_ext(video_path: str) -> str:
    """`.mp4`, or `.mkv` when the input's audio needs Matroska (a video that cannot be probed gets `.mp4`, and fails
    when enhanced)."""
    try:
        with av.open(video_path, metadata_errors='ignore') as container:
            ext, _ = output_format([stream.codec_context.name for stream in container.streams.audio])
    except (av.error.FFmpegError, UnicodeDecodeError):
        ext = '.mp4'
    return ext


def output_path(video_path: str, results_dir: str) -> str:
    """`<results_dir>/<stem>.mp4` (`.mkv`: `output_ext`) of one video."""
    return os.path.join(results_dir, os.path.splitext(os.path.basename(video_path))[0] + output_ext(video_path))


def kept_part(start: float | None, end: float | None) -> str:
    """' from --start 5 and before --end 9', or '' for the whole video."""
    bounds = [f'{words} {value:g}' for words, value in (('from --start', start), ('before --end', end))
              if value is not None]
    return ' ' + ' and '.join(bounds) if bounds else ''


def check_not_input(video_path: str, out_path: str) -> None:
    if real_path(video_path) == real_path(out_path):
        raise UserError(f'{video_path} would be overwritten by its own output; choose another --results_dir')


def enhance_video(restorer: FaceRestorer, video_path: str, out_path: str, *, start: float | None = None,
                  end: float | None = None, max_pixels: int | None = None, crf: int = DEFAULT_CRF,
                  smooth: bool = True, show_progress: bool = True,
                  on_frame: Callable[[int, int | None], None] | None = None,
                  stop: threading.Event | None = None) -> VideoTotals:
    """Enhance one video from `start` to `end` seconds into `out_path`, its frames enlarged `restorer.upscale` times
    (each frame held to `max_pixels`), H.264 at `crf`, the landmarks smoothed in time (`smooth`).

    `on_frame(frames done, frames expected or None)` after each frame. VideoFailed, with the output kept, when
    frames were lost; Cancelled, with nothing written, once `stop` is set (the web page's server stopping).
    """
    check_not_input(video_path, out_path)
    try:
        with VideoSource(video_path, start, end, max_pixels, restorer.upscale) as source:
            expected = source.expected_frames() or None
            with VideoSink(out_path, source, restorer.upscale, crf) as sink, \
                    progress(total=expected, desc=os.path.basename(video_path), unit='frame',
                             disable=not show_progress) as bar:
                done = 0

                def frame_done():
                    nonlocal done
                    done += 1
                    bar.update(1)
                    if on_frame is not None:
                        on_frame(done, expected)
                video = VideoRestorer(restorer, smooth=smooth)
                totals = video.run(source.frames(), sink.write, frame_done, stop)
                if totals.frames == 0:
                    raise VideoReadError(f'{video_path}: no frame decoded{kept_part(start, end)}')
            lost, decoded = source.lost, source.decoded
    except NonFiniteOutput as err:
        raise VideoFailed(f'{video_path}: {err}; nothing written') from err
    except av.error.FFmpegError as err:
        raise VideoFailed(f'{video_path}: FFmpeg failed ({err}); nothing written') from err
    if lost:
        raise VideoFailed(f'{video_path}: {lost} frame(s) could not be decoded (a damaged or truncated file); '
                          f'the {decoded} that did are in {out_path}')
    return totals
