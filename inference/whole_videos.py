"""Enhancing every face of every frame of videos (test_enhance_single_unalign.py with a video, or a folder with
some): one output video per input, `<results_dir>/<name>.mp4` (`.mkv` when an audio codec of the input does not
fit MP4), with the input's frames, timing, rotation and sound.

A video that cannot be read fails alone with one line; a damaged one keeps every frame that decoded, says how
many were lost and counts as failed. The output is written under a temporary name and renamed when complete.
"""
import argparse
import logging
import os
import threading

import av

from faces.restorer import FaceRestorer
from models.enhancer import NonFiniteOutput
from utils.cli import UserError
from utils.output_plan import real_path
from utils.progress import progress
from video.pipeline import VideoRestorer, VideoTotals
from video.reader import VideoReadError, VideoSource
from video.writer import VideoSink, output_format

log = logging.getLogger('test_enhance_single_unalign')


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


def enhance_video(restorer: FaceRestorer, video_path: str, out_path: str, opt: argparse.Namespace,
                  show_progress: bool = True, stop: threading.Event | None = None) -> VideoTotals:
    """Enhance one video into `out_path` (VideoFailed, with the output kept, when frames were lost; Cancelled,
    with nothing written, once `stop` is set: the web page's server stopping)."""
    check_not_input(video_path, out_path)
    try:
        with VideoSource(video_path, opt.start, opt.end, opt.max_pixels, opt.test_upscale) as source:
            expected = source.expected_frames()
            with VideoSink(out_path, source, opt.test_upscale, opt.crf) as sink, \
                    progress(total=expected or None, desc=os.path.basename(video_path), unit='frame',
                             disable=not show_progress) as bar:
                video = VideoRestorer(restorer, smooth=not opt.no_temporal_smoothing)
                totals = video.run(source.frames(), sink.write, lambda: bar.update(1), stop)
                if totals.frames == 0:
                    raise VideoReadError(f'{video_path}: no frame decoded{kept_part(opt.start, opt.end)}')
            lost, decoded = source.lost, source.decoded
    except NonFiniteOutput as err:
        raise VideoFailed(f'{video_path}: {err}; nothing written') from err
    except av.error.FFmpegError as err:
        raise VideoFailed(f'{video_path}: FFmpeg failed ({err}); nothing written') from err
    if lost:
        raise VideoFailed(f'{video_path}: {lost} frame(s) could not be decoded (a damaged or truncated file); '
                          f'the {decoded} that did are in {out_path}')
    return totals
