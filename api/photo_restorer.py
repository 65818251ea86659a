"""Whole photos and videos in, restored ones out: every face found (dlib), aligned to the FFHQ template, enhanced
and pasted back, the photo enlarged by bicubic interpolation or a background upsampler; the models loaded once."""
import os
import threading
from collections.abc import Callable, Sequence

import numpy as np
import torch

from api.choices import DEFAULT_MAX_PIXELS, checked, device_of, float_precision
from api.face_enhancer import FaceEnhancer
from archs.generator_spec import GeneratorSpec
from faces.align import FACE_SIZE
from faces.detector import DEFAULT_MIN_FACE_SIZE, FaceDetector, FaceSearch
from faces.restorer import FaceRestorer, Landmarked, RestoredPhoto
from upsamplers.background import DEFAULT_TILE, NONE, BackgroundUpsampler
from utils.cli import UserError
from utils.image_io import ImageReadError, image_size, read_rgb_array
from utils.output_plan import OutputPlan
from video.enhance import enhance_video
from video.pipeline import VideoTotals
from video.writer import DEFAULT_CRF
from weights.released import DEFAULT_PHOTO_MODEL


def check_pixels(width: int, height: int, max_pixels: int, upscale: int = 1, name: str = 'the photo') -> None:
    """ImageReadError when a `width` x `height` photo, enlarged `upscale` times, is over `max_pixels`."""
    pixels = width * height * upscale ** 2
    if pixels > max_pixels:
        enlarged = f' enlarged {upscale}x' if upscale > 1 else ''
        raise ImageReadError(f'{name}: {width}x{height}{enlarged} is {pixels / 1e6:.1f} megapixels, more than '
                             f'--max_pixels {max_pixels}; raise --max_pixels if this machine has the memory'
                             + (', or lower --test_upscale' if upscale > 1 else ''))


class PhotoRestorer:
    """The whole-photo pipeline of test_enhance_single_unalign.py, with its flags as keyword arguments (its
    defaults, its one-line errors: `utils.cli.UserError`).

    `restore(photo)` takes an RGB uint8 array or a path and returns a `RestoredPhoto`: the restored photo (`final`)
    and what was found (`faces`: boxes, scores, landmarks; `lq_faces` and `hq_faces`: the aligned faces and their
    enhanced versions; `matrices`: each 2x3 map from photo pixels to its aligned face); `restore_video(path,
    output)` does every frame of a video. `model` and the network's arguments are `FaceEnhancer`'s, or give a
    loaded `enhancer` (any callable of uint8 aligned faces). Safe to call from several threads (each stage runs one
    call at a time); `close()` (or a `with` block) stops the detector's threads.
    """

    def __init__(self, model: str = DEFAULT_PHOTO_MODEL, *,
                 enhancer: FaceEnhancer | Callable[[np.ndarray], np.ndarray] | None = None,
                 detector: str = 'cnn', min_face_size: int = DEFAULT_MIN_FACE_SIZE,
                 detect_min_score: float | None = None, detect_tile_size: int | None = None, detect_workers: int = 0,
                 detect_max_size: int | None = None, upscale: int = 1, bg_upsampler: str = NONE,
                 bg_tile: int = DEFAULT_TILE, face_batch_size: int = 4, device: torch.device | str | None = None,
                 precision: str = 'fp32', batch_size: int | None = None, network: GeneratorSpec | None = None,
                 reference_impl: bool = False, round_output: bool = False, weights_dir: str | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, codeformer_noncommercial: bool = False,
                 codeformer_fidelity: float = 0.5, calibration: str | None = None, progress: bool = False) -> None:
        for flag, value in (('detector', detector), ('min_face_size', min_face_size),
                            ('detect_min_score', detect_min_score), ('detect_tile_size', detect_tile_size),
                            ('detect_workers', detect_workers), ('test_upscale', upscale), ('bg_tile', bg_tile),
                            ('face_batch_size', face_batch_size), ('max_pixels', max_pixels)):
            checked(flag, value)
        self.device = device_of(device)
        self.upscale, self.max_pixels = upscale, max_pixels
        background = BackgroundUpsampler.named(bg_upsampler, upscale, bg_tile, self.device,
                                               float_precision(self.device, precision), weights_dir)
        if enhancer is None:
            enhancer = FaceEnhancer(model, device=self.device, precision=precision, batch_size=batch_size,
                                    load_size=FACE_SIZE, network=network, reference_impl=reference_impl,
                                    round_output=round_output, weights_dir=weights_dir, max_pixels=max_pixels,
                                    codeformer_noncommercial=codeformer_noncommercial,
                                    codeformer_fidelity=codeformer_fidelity, calibration=calibration)
        self.enhancer = enhancer
        enhance: Callable[[np.ndarray], np.ndarray] = enhancer.enhance if isinstance(enhancer, FaceEnhancer) \
            else enhancer
        try:
            self.detector = FaceDetector(detector, min_face_size, detect_min_score, detect_tile_size, detect_workers,
                                         detect_max_size, progress=progress, device=self.device)
        except ValueError as err:
            raise UserError(str(err)) from err
        self.pipeline = FaceRestorer(self.detector, enhance, batch_size=face_batch_size, upscale=upscale,
                                     progress=progress, background=background)
        self._detecting, self._pasting = threading.Lock(), threading.Lock()

    def read(self, path: str | os.PathLike) -> np.ndarray:
        """The photo at `path` as RGB uint8 (EXIF-rotated), refused from its header first when it is over
        `max_pixels` once enlarged: ImageReadError naming the file."""
        size = image_size(path)
        if size is not None:
            check_pixels(*size, self.max_pixels, self.upscale, str(path))
        return read_rgb_array(path)

    def search(self, photo: np.ndarray) -> FaceSearch:
        """The faces found in `photo` (`FaceSearch.faces`: boxes, scores, five landmarks each), left to right."""
        with self._detecting:
            return self.detector.search(photo)

    def restore(self, photo: np.ndarray | str | os.PathLike,
                faces: Sequence[Landmarked] | None = None) -> RestoredPhoto:
        """`photo` (RGB uint8, or a path) with its faces enhanced and pasted back; `faces`: found elsewhere (objects
        with five `landmarks`), else searched here. NoFaceFound when there is none."""
        if not isinstance(photo, np.ndarray):
            photo = self.read(photo)
        elif photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
            raise UserError(f'photo: expected an RGB uint8 image (H, W, 3), got {photo.dtype} {photo.shape}')
        else:
            check_pixels(photo.shape[1], photo.shape[0], self.max_pixels, self.upscale)
        if faces is None:
            faces = self.search(photo).faces
        with self._pasting:
            return self.pipeline.restore(photo, faces)

    def restore_video(self, video: str | os.PathLike, output: str | os.PathLike, *, start: float | None = None,
                      end: float | None = None, crf: int = DEFAULT_CRF, temporal_smoothing: bool = True,
                      progress: Callable[[int, int | None], None] | None = None,
                      stop: threading.Event | None = None) -> VideoTotals:
        """Every face of every frame of `video` (from `start` to `end` seconds) enhanced into `output` (H.264 at
        `crf`, the input's timing, rotation and sound; written under a temporary name, renamed once complete).
        `progress(frames done, frames expected or None)` after each frame; `stop` set cancels. VideoFailed (a
        UserError) when it cannot be read or frames were lost; the output may not be the input."""
        for flag, value in (('start', start), ('end', end), ('crf', crf)):
            checked(flag, value)
        if start is not None and end is not None and end <= start:
            raise UserError(f'--end {end:g} must be after --start {start:g}')
        video, output = os.fspath(video), os.fspath(output)
        plan = OutputPlan()
        plan.reads_file('the video', video)
        plan.writes_file('the output', output)
        plan.check()
        with plan.claimed(), self._detecting, self._pasting:
            return enhance_video(self.pipeline, video, output, start=start, end=end, max_pixels=self.max_pixels,
                                 crf=crf, smooth=temporal_smoothing, show_progress=self.pipeline.progress,
                                 on_frame=progress, stop=stop)

    def close(self) -> None:
        self.detector.close()

    def __enter__(self) -> 'PhotoRestorer':
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
