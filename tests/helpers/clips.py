"""Short video clips made in the tests with PyAV: the astronaut (a real face) moving, a sine-wave sound track."""
import fractions

import av
import numpy as np
import skimage.data

CLIP_SIZE = (320, 240)  # width, height: the astronaut's face is about 100 px across in it
AUDIO_RATE = 44100


def astronaut_frames(count: int, size: tuple[int, int] = CLIP_SIZE, step: int = 2) -> list[np.ndarray]:
    """`count` windows of the astronaut photo around her face, moving `step` px right and down each frame."""
    photo = skimage.data.astronaut()
    width, height = size
    return [np.ascontiguousarray(photo[10 + step * i:10 + step * i + height, 90 + step * i:90 + step * i + width])
            for i in range(count)]


def faceless_frame(size: tuple[int, int] = CLIP_SIZE) -> np.ndarray:
    """A frame with no face in it: a window of scikit-image's coffee photo."""
    width, height = size
    return np.ascontiguousarray(skimage.data.coffee()[:height, :width])


def write_clip(path, frames: list[np.ndarray], times_ms: list[int] | None = None, fps: int = 25,
               audio_seconds: float | None = None, rotation: int = 0, pix_fmt: str = 'yuv420p',
               color_trc: int | None = None, faststart: bool = False) -> None:
    """Encode `frames` (RGB, as they are stored) with libx264 at `times_ms` (default: `fps`), a 440 Hz AAC track
    of `audio_seconds` (default: as long as the frames; 0: none), the stream tagged with `rotation`."""
    times_ms = times_ms if times_ms is not None else [round(1000 * i / fps) for i in range(len(frames))]
    options = {'movflags': 'faststart'} if faststart else {}
    with av.open(str(path), 'w', options=options) as container:
        video = container.add_stream('libx264', rate=fps)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = pix_fmt
        video.time_base = fractions.Fraction(1, 1000)
        if color_trc is not None:
            video.codec_context.color_trc = color_trc
        if rotation:
            video.set_display_rotation(rotation)
        if audio_seconds is None:
            audio_seconds = (times_ms[-1] + 1000 / fps) / 1000
        audio = container.add_stream('aac', rate=AUDIO_RATE) if audio_seconds else None
        for image, pts in zip(frames, times_ms):
            frame = av.VideoFrame.from_ndarray(image, format='rgb24').reformat(format=pix_fmt)
            frame.pts, frame.time_base = pts, video.time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            t = np.arange(round(AUDIO_RATE * audio_seconds)) / AUDIO_RATE
            sound = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                               format='fltp', layout='mono')
            sound.sample_rate, sound.pts = AUDIO_RATE, 0
            container.mux(audio.encode(sound))
            container.mux(audio.encode(None))


def write_joined_ts(path, parts: list[list[np.ndarray]], continuous: bool = False, fps: int = 25) -> None:
    """MPEG-TS files joined end to end, as `cat a.ts b.ts > path` joins them: each part of `parts` encoded alone by
    `write_clip` at `fps`, so that the frame size may change at each join. Whole files (with their sound) start
    their timestamps again; `continuous` parts (without sound) continue those of the part before, as the segments
    of a live stream do, from 1 s (so that no part's decoding times are negative: the muxer would shift them)."""
    joined, start_ms = b'', 1000
    for index, frames in enumerate(parts):
        part = path.with_name(f'{path.stem}-{index}.ts')
        times_ms = [start_ms + round(1000 * i / fps) for i in range(len(frames))] if continuous else None
        write_clip(part, frames, times_ms, fps, audio_seconds=0 if continuous else None)
        start_ms += round(1000 * len(frames) / fps) if continuous else 0
        joined += part.read_bytes()
        part.unlink()
    path.write_bytes(joined)


def read_clip(path) -> dict:
    """What the tests compare: frames (as stored), their times in seconds, rotation, size, audio packet bytes."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(frame.to_ndarray(format='rgb24'), float(frame.pts * frame.time_base), frame.rotation)
                  for frame in container.decode(stream)]
    with av.open(str(path)) as container:
        audio = [(packet.pts, bytes(packet)) for packet in container.demux(audio=0) if packet.size] \
            if container.streams.audio else []
        codec = container.streams.video[0].codec_context.name
        rate = container.streams.video[0].average_rate
    return {'images': [image for image, _, _ in frames], 'times': [time for _, time, _ in frames],
            'rotations': {rotation for _, _, rotation in frames}, 'audio': audio, 'codec': codec, 'rate': rate}
