"""Encoding the enhanced frames with PyAV: H.264 at the input's timestamps and rotation, the audio copied as is.

The file is written under a temporary name and renamed once complete, so a killed run never leaves a
half-written video under the final name. Frames keep their pts (variable frame rate included), so the output
has the input's frame count, rate and timing; the stream's rotation is written back with the frames in the
orientation the input stores them. Audio packets are muxed without re-encoding.
"""
import contextlib
import logging
import os
from collections.abc import Iterable
from fractions import Fraction

import av
import numpy as np

from utils.atomic import LockedTemporary, fsync_dir
from video.reader import Frame, VideoSource, stored

log = logging.getLogger('video')
DEFAULT_CRF = 18  # x264's "visually lossless" level
H264_ENCODER = 'libx264'
FALLBACK_ENCODER = 'mpeg4'  # FFmpeg's own encoder: in every build
FALLBACK_BITS_PER_PIXEL = 0.3  # per pixel and frame: visually close at MPEG-4 Part 2's efficiency
OUTPUT_FORMATS = (('.mp4', 'mp4'), ('.mkv', 'matroska'))  # the first one that holds every audio codec


def has_h264_encoder() -> bool:
    return H264_ENCODER in av.codecs_available


def output_format(audio_codecs: list[str]) -> tuple[str, str]:
    """(extension, FFmpeg muxer) of the output: MP4 unless an audio codec of the input needs Matroska."""
    for ext, muxer in OUTPUT_FORMATS:
        probe = av.open(os.devnull, 'w', format=muxer)
        try:
            if all(codec in probe.supported_codecs for codec in audio_codecs):
                return ext, muxer
        finally:
            probe.close()
    return OUTPUT_FORMATS[-1]


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even sides: odd ones grow by one pixel (the last row or column repeated)."""
    return width + width % 2, height + height % 2


def pad_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    return np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0)), mode='edge')


class VideoSink:
    """The output of one `VideoSource`: frames `upscale` times its size, encoded in order by `write`.

    `close(keep=True)` finishes the file and renames it into place; `close(keep=False)` (or an exception
    in a `with` block) removes the temporary file and leaves the final name untouched.
    """

    def __init__(self, path: str, source: VideoSource, upscale: int = 1, crf: int = DEFAULT_CRF) -> None:
        self.path = path
        self.source = source
        self.notes: list[str] = []
        width, height = (side * upscale for side in source.size)
        self.width, self.height = even_size(width, height)
        if (self.width, self.height) != (width, height):
            self.notes.append(f'{width}x{height} frames padded to {self.width}x{self.height} (H.264 in yuv420p '
                              'needs even sides; the last row or column is repeated)')
        _, muxer = output_format([stream.codec_context.name for stream in source.audio_streams])
        os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
        self.temporary = LockedTemporary(path)  # locked until renamed or removed: no other run removes it
        self.tmp_path = self.temporary.path
        try:
            self.container = av.open(self.tmp_path, 'w', format=muxer)
        except BaseException:
            self.temporary.discard()
            raise
        try:
            self._add_streams(source, crf)
        except BaseException:
            self.close(keep=False)
            raise
        self.offset = None  # seconds cut from the front (--start): the output starts at 0

    def _add_streams(self, source: VideoSource, crf: int) -> None:
        rate = source.frame_rate or Fraction(25)
        if has_h264_encoder():
            self.video = self.container.add_stream(H264_ENCODER, rate=rate, options={'crf': str(crf)})
        else:
            self.notes.append(f'this FFmpeg has no H.264 encoder ({H264_ENCODER}): written as MPEG-4 Part 2 '
                              f'at {FALLBACK_BITS_PER_PIXEL} bits per pixel instead (--crf does not apply)')
            self.video = self.container.add_stream(FALLBACK_ENCODER, rate=rate)
            self.video.bit_rate = int(self.width * self.height * float(rate) * FALLBACK_BITS_PER_PIXEL)
        self.video.width, self.video.height, self.video.pix_fmt = self.width, self.height, 'yuv420p'
        self.video.time_base = source.time_base
        self.video.codec_context.time_base = source.time_base
        self.audio = {stream.index: self.container.add_stream_from_template(stream)
                      for stream in source.audio_streams}
        for line in self.notes:
            log.warning('%s: %s', source.path, line)

    def _set_first_frame(self, frame: Frame) -> None:
        """Tags the stream with the input's rotation and colours, once the first frame told them."""
        self.offset = frame.time if self.source.start else 0.0
        if self.source.rotation:
            self.video.set_display_rotation(self.source.rotation)
        context = self.video.codec_context
        context.colorspace, context.color_range = self.source.colorspace, self.source.color_range

    def write(self, frame: Frame, image: np.ndarray) -> None:
        """Encode `image` (upright RGB, the frame's enhanced picture) at `frame`'s time; its audio goes first."""
        if self.offset is None:
            self._set_first_frame(frame)
        for packet in frame.audio:
            self._mux_audio(packet)
        picture = pad_to(stored(image, self.source.rotation), self.width, self.height)
        video_frame = av.VideoFrame.from_ndarray(picture, format='rgb24').reformat(
            format='yuv420p', dst_colorspace=self.source.colorspace or None,
            dst_color_range=self.source.color_range or None)
        video_frame.pts = frame.pts - round(self.offset / self.source.time_base)
        video_frame.time_base = self.source.time_base
        if frame.duration:
            video_frame.duration = frame.duration  # the last frame's too: the output lasts as long
        self.container.mux(self.video.encode(video_frame))

    def _mux_audio(self, packet) -> None:
        shift = round(self.offset / packet.time_base)
        if shift and packet.pts < shift:
            return  # before the first frame kept (--start)
        packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = self.audio[packet.stream.index]
        self.container.mux(packet)

    def close(self, keep: bool = True) -> None:
        """Flush the encoder and rename the file into place (`keep`), or remove it."""
        try:
            if keep:
                if self.offset is not None:
                    for packet in self.source.trailing_audio:
                        self._mux_audio(packet)
                self.container.mux(self.video.encode(None))
            self.container.close()
        except BaseException:
            keep = False
            raise
        finally:
            if keep:
                with open(self.tmp_path, 'rb+') as handle:
                    os.fsync(handle.fileno())
                os.replace(self.tmp_path, self.path)
                self.temporary.release()
                fsync_dir(os.path.dirname(self.path) or '.')
            else:
                with contextlib.suppress(OSError):
                    self.container.close()
                self.temporary.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close(keep=exc_type is None)


def write_frames(path: str, frames: Iterable[np.ndarray], fps: int | Fraction = 25, crf: int = DEFAULT_CRF) -> int:
    """Encode RGB frames of one even size at a constant `fps` as H.264 in MP4, without sound; returns their number.

    For clips made from photos (scripts/make_sample_video.py) and for frames enhanced one by one put back together
    (the published steps in the benchmark), written under a temporary name as `VideoSink` writes.
    """
    temporary = LockedTemporary(path)
    count = 0
    try:
        with av.open(temporary.path, 'w', format='mp4') as container:
            stream = container.add_stream(H264_ENCODER, rate=fps, options={'crf': str(crf)})
            stream.pix_fmt = 'yuv420p'
            for image in frames:
                if count == 0:
                    stream.height, stream.width = image.shape[:2]
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format='rgb24')))
                count += 1
            container.mux(stream.encode(None))
        os.replace(temporary.path, path)
    finally:
        temporary.discard()
    return count
