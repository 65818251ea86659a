"""Decoding a video for the face pipeline with PyAV: upright 8-bit RGB frames, their timestamps, the audio beside them.

Frames come out in display orientation (the stream's rotation undone, so faces are upright for the detector)
with the pts of the stream; the packets of every audio stream are handed out with the frame they precede, so a
writer can copy them in step without holding the whole sound track. A damaged file gives every frame that
decodes: `lost` counts the ones that did not (packets the decoder refused, and frames the container announced
but never delivered).

Files joined end to end (MPEG-TS parts concatenated byte for byte) change the frame size and restart the
timestamps mid-stream: every frame is held to --max_pixels as decoded, then scaled to the video's size (its
first frames', the output's); timestamps that go back are moved after those before, stream by stream, so the
parts play one after the other. Each is said in one line.
"""
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import cv2
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


def fit_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to fit `width`x`height` with its proportions kept (black bars where they differ): the
    frames of a video whose size changes mid-stream, made the size of the others."""
    scale = min(width / image.shape[1], height / image.shape[0])
    size = (max(1, min(width, round(image.shape[1] * scale))), max(1, min(height, round(image.shape[0] * scale))))
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if size == (width, height):
        return scaled
    framed = np.zeros((height, width, 3), np.uint8)
    top, left = (height - size[1]) // 2, (width - size[0]) // 2
    framed[top:top + size[1], left:left + size[0]] = scaled
    return framed


class VideoSource:
    """An open video: its first video stream and its audio streams, checked, and `frames()` decoding it.

    `start` / `end` (seconds, None for the ends) keep part of it; audio packets outside keep out too.
    `notes` holds one line per conversion the frames went through (10-bit, HDR, odd rotation, another size,
    timestamps that go back). `max_pixels` bounds the header's size enlarged `upscale` times, and every frame as
    decoded (it is then scaled to the header's size, if need be).
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
        self.max_pixels = max_pixels
        self.decoded = 0
        self.failed_packets = 0
        self.notes: list[str] = []
        self.rotation = 0
        self.colorspace = self.color_range = 0  # the first frame's (0: unspecified)
        self.trailing_audio: list = []  # audio packets after the last frame, once `frames()` is done
        self._sizes_noted = {self.size}
        self._timing: dict[int, tuple] = {}  # stream index -> (shift, last dts, its duration, end), in its ticks

    def _check(self, start, end, max_pixels, upscale):
        if not self.container.streams.video:
            raise VideoReadError(f'{self.path}: no video stream in it (streams: '
                                 f'{", ".join(s.type for s in self.container.streams) or "none"})')
        self.stream = self.container.streams.video[0]
        self.audio_streams = list(self.container.streams.audio)
        width, height = self.stream.codec_context.width, self.stream.codec_context.height
        if width <= 0 or height <= 0:
            raise VideoReadError(f'{self.path}: its video stream has no frame size (a damaged header)')
        self._size = width, height  # the decoder's own changes with the frames
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
        """(width, height) as stored (before rotation), from the header: every frame comes out at this size."""
        return self._size

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

    def _continue_timestamps(self, packet) -> None:
        """Move `packet` after the packets before it in its stream when its timestamps go back (the parts of files
        joined end to end each start again): the stream's later packets follow by as much, so the parts play in
        turn."""
        index = packet.stream.index
        shift, last_dts, step, end = self._timing.get(index, (0, None, 0, None))
        pts = None if packet.pts is None else packet.pts + shift
        if packet.dts is None:
            packet.pts = pts
            return
        dts = packet.dts + shift
        if last_dts is not None and dts < last_dts:
            moved = max(last_dts + step - dts, end - (dts if pts is None else pts))
            if packet.stream is self.stream:
                self._note(f'its timestamps go back at {float(end * packet.time_base):.2f} s (files joined end to '
                           'end?): the frames from there on are placed after those before')
            shift, dts, pts = shift + moved, dts + moved, None if pts is None else pts + moved
        packet.dts, packet.pts = dts, pts
        step = packet.duration or (dts - last_dts if last_dts is not None else 0) or 1
        end = max(end if end is not None else dts, (dts if pts is None else pts) + step)
        self._timing[index] = (shift, dts, step, end)

    def _picture(self, frame, seconds: float) -> np.ndarray:
        """The frame as RGB at the video's size: held to max_pixels as decoded first, then scaled (one line per
        new size)."""
        width, height = frame.width, frame.height
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise VideoReadError(f'{self.path}: frame {self.decoded + 1} ({seconds:.2f} s) is {width}x{height}, '
                                 f'{width * height / 1e6:.1f} megapixels, more than --max_pixels {self.max_pixels}; '
                                 'nothing written; raise --max_pixels if this machine has the memory')
        image = frame.to_ndarray(format='rgb24', src_color_range=frame.color_range or None)
        if (width, height) == self.size:
            return image
        if (width, height) not in self._sizes_noted:
            self._sizes_noted.add((width, height))
            self._note(f'frames from frame {self.decoded + 1} ({seconds:.2f} s) on are {width}x{height}: scaled to '
                       f'{self.size[0]}x{self.size[1]}, the video\'s size'
                       + ('' if width * self.size[1] == height * self.size[0] else ' (black bars keep their shape)'))
        return fit_to(image, *self.size)

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
            self._continue_timestamps(packet)
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
                image = self._picture(frame, seconds)
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
