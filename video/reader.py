"""Decoding a video for the face pipeline with PyAV: upright 8-bit RGB frames, their timestamps, the audio beside them.

Frames come out in display orientation (the stream's rotation undone, so faces are upright for the detector)
with the pts of the stream; the packets of every audio stream are handed out with the frame they precede, so a
writer can copy them in step without holding the whole sound track. A damaged file gives every frame that
decodes: `lost` counts the ones that did not (packets the decoder refused, and frames the container announced
but never delivered).
"""
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from utils.cli import UserError

log = logging.getLogger('video')
VIDEO_EXTENSIONS = ('.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.mpg', '.mpeg', '.ts', '.mts', '.m2ts',
                    '.wmv', '.flv', '.3gp', '.ogv')
HDR_TRANSFERS = {16: 'PQ (SMPTE 2084)', 18: 'HLG (ARIB STD-B67)'}  # AVColorTransferCharacteristic values


class VideoReadError(UserError):
    """A file cannot be read as a video (not one, no frame, too large): one line naming it."""


def is_video_file(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


@dataclass
class Frame:
    """A decoded frame: `image` upright RGB uint8, `pts` and `duration` in the stream's `time_base`, the audio
    packets before it."""
    index: int
    image: np.ndarray
    pts: int
    time: float
    duration: int = 0  # in `time_base` (0: unknown)
    audio: list = field(default_factory=list)


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as players show it: rotated `rotation` degrees counter-clockwise."""
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90)) if rotation % 360 else image


def stored(image: np.ndarray, rotation: int) -> np.ndarray:
    """`upright`'s inverse: a frame in display orientation back in the orientation the stream stores."""
    return np.ascontiguousarray(np.rot90(image, k=-(rotation // 90))) if rotation % 360 else image


class VideoSource:
    """An open video: its first video stream and its audio streams, checked, and `frames()` decoding it.

    `start` / `end` (seconds, None for the ends) keep part of it; audio packets outside keep out too.
    `notes` holds one line per conversion the frames went through (10-bit, HDR, odd rotation).
    """

    def __init__(self, path: str, start: float | None = None, end: float | None = None,
                 max_pixels: int | None = None, upscale: int = 1) -> None:
        self.path = path
        try:
            self.container = av.open(path, metadata_errors='ignore')
        except (av.error.FFmpegError, UnicodeDecodeError) as err:
            raise VideoReadError(f'{path}: not a video FFmpeg can read ({err.__class__.__name__}: '
                                 f'{getattr(err, "strerror", None) or err})') from err
        try:
            self._check(start, end, max_pixels, upscale)
        except BaseException:
            self.container.close()
            raise
        self.start, self.end = start, end
        self.decoded = 0
        self.failed_packets = 0
        self.notes: list[str] = []
        self.rotation = 0
        self.colorspace = self.color_range = 0  # the first frame's (0: unspecified)
        self.trailing_audio: list = []  # audio packets after the last frame, once `frames()` is done

    def _check(self, start, end, max_pixels, upscale):
        if not self.container.streams.video:
            raise VideoReadError(f'{self.path}: no video stream in it (streams: '
                                 f'{", ".join(s.type for s in self.container.streams) or "none"})')
        self.stream = self.container.streams.video[0]
        self.audio_streams = list(self.container.streams.audio)
        width, height = self.stream.codec_context.width, self.stream.codec_context.height
        if width <= 0 or height <= 0:
            raise VideoReadError(f'{self.path}: its video stream has no frame size (a damaged header)')
        if max_pixels is not None and width * height * upscale ** 2 > max_pixels:
            enlarged = f' enlarged {upscale}x' if upscale > 1 else ''
            raise VideoReadError(f'{self.path}: its {width}x{height} frames{enlarged} are '
                                 f'{width * height * upscale ** 2 / 1e6:.1f} megapixels, more than --max_pixels '
                                 f'{max_pixels}; raise --max_pixels if this machine has the memory'
                                 + (', or lower --test_upscale' if upscale > 1 else ''))
        if start is not None and end is not None and end <= start:
            raise VideoReadError(f'{self.path}: --end {end} is not after --start {start}')

    @property
    def time_base(self) -> Fraction:
        return self.stream.time_base

    @property
    def frame_rate(self) -> Fraction | None:
        return self.stream.average_rate or self.stream.guessed_rate

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as stored (before rotation)."""
        return self.stream.codec_context.width, self.stream.codec_context.height

    def expected_frames(self) -> int:
        """About how many frames the part kept holds, for the progress bar (0: unknown)."""
        if self.start is None and self.end is None and self.stream.frames:
            return self.stream.frames
        seconds = (float(self.stream.duration * self.time_base) if self.stream.duration
                   else self.container.duration / av.time_base if self.container.duration else None)
        if seconds is None or not self.frame_rate:
            return 0
        first = float((self.stream.start_time or 0) * self.time_base)
        begin = max(first, self.start if self.start is not None else first)
        finish = min(first + seconds, self.end if self.end is not None else first + seconds)
        return max(0, round((finish - begin) * self.frame_rate))

    @property
    def lost(self) -> int:
        """Frames that did not decode: packets the decoder refused, or fewer frames than the stream's index lists
        (a truncated file). Only MP4-like containers list them; of the others a lost tail goes unnoticed
        unless the demuxer reports damaged data (`notes`)."""
        listed = self.stream.frames if self.start is None and self.end is None else 0
        return max(self.failed_packets, listed - self.decoded)

    def _note_format(self, frame) -> None:
        depth = max((component.bits for component in frame.format.components), default=8)
        if depth > 8:
            self._note(f'{frame.format.name} frames ({depth}-bit) converted to 8-bit RGB')
        transfer = HDR_TRANSFERS.get(frame.color_trc)
        if transfer:
            self._note(f'HDR input ({transfer}) converted to 8-bit without tone mapping: colours will look flat; '
                       'tone-map it to SDR first for a faithful result')
        self.colorspace, self.color_range = frame.colorspace, frame.color_range
        self.rotation = frame.rotation % 360
        if self.rotation % 90:
            self._note(f'rotation of {frame.rotation} degrees is not a quarter turn: frames kept as stored')
            self.rotation = 0

    def _note(self, line: str) -> None:
        self.notes.append(line)
        log.warning('%s: %s', self.path, line)

    def _in_range(self, seconds: float) -> bool:
        return (self.start is None or seconds >= self.start - 1e-6) and (self.end is None or seconds < self.end - 1e-6)

    def frames(self) -> Iterator[Frame]:
        """Decode the part kept, frame by frame; audio packets in range ride with the next frame."""
        if self.start:
            self.container.seek(int(self.start / self.time_base), stream=self.stream, backward=True)
        audio = []
        packets = self.container.demux(self.stream, *self.audio_streams)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as err:  # a broken container: what came before is kept
                self._note(f'the file ends in damaged data ({err.__class__.__name__}); frames after it are lost')
                break
            if packet.stream.type == 'audio':
                if packet.pts is not None and packet.size and self._in_range(float(packet.pts * packet.time_base)):
                    audio.append(packet)
                continue
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                self.failed_packets += 1
                continue
            for frame in decoded:
                if frame.pts is None:
                    continue
                seconds = float(frame.pts * self.time_base)
                if self.end is not None and seconds >= self.end - 1e-6:
                    self.trailing_audio = audio
                    return
                if not self._in_range(seconds):
                    continue
                if self.decoded == 0:
                    self._note_format(frame)
                image = frame.to_ndarray(format='rgb24', src_color_range=frame.color_range or None)
                yield Frame(self.decoded, upright(image, self.rotation), frame.pts, seconds, frame.duration or 0, audio)
                audio = []
                self.decoded += 1
        self.trailing_audio = audio

    def close(self) -> None:
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
