"""What the web page (app.py) runs, without Gradio: its choices -> the scripts' pipeline, job folders, zips.

The choices become the arguments of the Python API (`api.FaceEnhancer`, `api.PhotoRestorer`), the objects the
scripts run too, so weights resolve, download (with the tqdm bar the page shows) and load as for the scripts;
the models of `app.py --models` (`webapp.added_models`) join the released ones there. Photos go through
`PhotoRestorer.restore` (detect, align, enhance, paste back), a video through `PhotoRestorer.restore_video`;
aligned faces are read by `data.single_dataset.read_face` and enhanced by the FaceEnhancer, as in test.py. The
last networks used stay loaded, keyed by model and precision, each running one batch at a time for all jobs.
When the server stops, `cancel_jobs` cancels the running jobs (each stops at its next frame, photo or batch of
faces, its temporary files removed) and waits for them. Everything is written below the run folder:

    photos_NNNN/<name>.<ext>                      the whole photo with its faces enhanced
    photos_NNNN/<name>/LQ_faces/000.<ext>, HQ/... its aligned faces and their enhanced versions
    photos_NNNN/faces.zip                         LQ_faces and HQ of every photo of the job
    videos_NNNN/<name>.mp4                        the video with its faces enhanced (.mkv when its sound needs it)
    faces_NNNN/<name>.<ext>, faces_NNNN/faces.zip the enhanced aligned faces
"""
import contextlib
import functools
import itertools
import os
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field

from PIL import Image
from tqdm import tqdm

from api import FaceEnhancer, PhotoRestorer
from api.choices import CHOICES, DEFAULT_MAX_PIXELS, MAX_SECONDS, check_device_precision
from data.single_dataset import read_face
from faces.detector import DETECTORS
from faces.restorer import NoFaceFound
from models.enhancer import NonFiniteOutput
from upsamplers.background import NONE, serves
from utils.atomic import atomic_write
from utils.cli import UserError
from utils.devices import select_device
from utils.image_io import ImageReadError, read_rgb_array, save_rgb
from video.enhance import VideoFailed, output_path
from video.pipeline import Cancelled, VideoTotals
from video.reader import VideoReadError, VideoSource
from webapp.added_models import SPARNET, SPARNETHD
from weights.other_models import OTHER_MODELS, names_of
from weights.released import RELEASED_MODELS
from weights.spandrel_file import BACKGROUND, FACE

# SPARNet (x8) enlarges 16x16 faces: faces cut out of a photo are far larger, so only SPARNetHD runs on photos.
PHOTO_MODELS = tuple(name for name, model in RELEASED_MODELS.items() if model.spec.model == 'sparnethd')
FACE_MODELS = tuple(RELEASED_MODELS)
BACKGROUNDS = (NONE, *names_of(BACKGROUND))  # Real-ESRGAN x2plus / x4plus, downloaded on first use
OUTPUT_FORMATS = ('png', 'jpg')
JPEG_QUALITY = 95
UPSCALES = (1, 2, 3, 4)

MODELS_KEPT = 2  # networks kept loaded; a SPARNetHD takes about 0.7 GB
STOPPED = 'the server is stopping: the job was cancelled'


class JobError(UserError):
    """A job could not start (a choice outside the offered ones, weights not fetched or not fitting)."""


class InputProblem(Exception):
    """One input file cannot be used; the message names it by its file name only."""


@dataclass
class Item:
    """One input done: its name, the input (before), the output (after) and, for a photo, its faces."""

    name: str
    before: str
    after: str
    faces: list = field(default_factory=list)  # [(aligned face, enhanced face)] paths


@dataclass
class JobResult:
    folder: str
    items: list
    problems: list  # one line per input that could not be done
    zip_path: str | None
    seconds: float


@dataclass
class VideoResult(JobResult):
    totals: VideoTotals | None = None  # None when frames were lost (the output holds those that decoded)


def supported_precisions(device):
    """The precisions `device` runs natively (api.choices.check_device_precision), fp32 first, then auto."""
    supported = []
    for precision in CHOICES['precision']:
        try:
            check_device_precision(device, precision)
        except UserError:
            continue
        supported.append(precision)
    return supported


def unique_names(paths):
    """A name per input file: its name without extension, `_2`, `_3`, ... added to repeated ones."""
    names = []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, count = stem, 1
        while name in names:
            count += 1
            name = f'{stem}_{count}'
        names.append(name)
    return names


def write_zip(path, folder, files):
    """Zip `files` under their paths relative to `folder` (stored: images are compressed already)."""
    with atomic_write(path) as handle, zipfile.ZipFile(handle, 'w', zipfile.ZIP_STORED) as archive:
        for file in files:
            archive.write(file, os.path.relpath(file, folder))
    return path


def check_choice(value, choices, what):
    if value not in choices:
        raise JobError(f"{value!r} is not a {what} offered here ({', '.join(map(str, choices))})")


def check_span(start, end):
    """JobError unless the seconds chosen (None: from the beginning, to the end) are within the flags' bounds."""
    for value, what in ((start, 'start'), (end, 'end')):
        if value is not None and not 0 <= value <= MAX_SECONDS:
            raise JobError(f'the {what} must be a number of seconds from 0 to {MAX_SECONDS} (got {value:g})')
    if start is not None and end is not None and end <= start:
        raise JobError(f'the end ({end:g} s) must be after the start ({start:g} s)')


class AppPipeline:
    """Runs the page's jobs on one device (the GPU with the most free memory, or the CPU)."""

    def __init__(self, run_dir, gpus=1, weights_dir=None, max_pixels=DEFAULT_MAX_PIXELS, added=(),
                 noncommercial_ok=False):
        self.run_dir = run_dir
        self.added = {model.label: model for model in added}
        self.noncommercial_ok = noncommercial_ok
        self.photo_models = PHOTO_MODELS + self._added_of(SPARNETHD, FACE)
        self.face_models = FACE_MODELS + self._added_of(SPARNET, SPARNETHD)
        self.backgrounds = tuple(dict.fromkeys(BACKGROUNDS + self._added_of(BACKGROUND)))
        self.device = select_device(min(gpus, 1))[0]  # warns once when there is no GPU
        self.weights_dir = weights_dir
        self.max_pixels = max_pixels
        self.precisions = supported_precisions(self.device)
        self._enhancers = OrderedDict()
        self._lock = threading.Lock()
        self._job_numbers = itertools.count(1)
        self._stopping = threading.Event()
        self._running = 0  # jobs under way
        self._jobs_changed = threading.Condition()

    @contextlib.contextmanager
    def _job(self):
        """A job's span: refused once the server stops, counted while it runs (`wait_for_jobs` waits for it), one
        message when it is cancelled."""
        with self._jobs_changed:
            if self._stopping.is_set():
                raise JobError(STOPPED)
            self._running += 1
        try:
            yield
        except Cancelled as err:
            raise JobError(STOPPED) from err
        finally:
            with self._jobs_changed:
                self._running -= 1
                self._jobs_changed.notify_all()

    def _check_stopping(self):
        if self._stopping.is_set():
            raise Cancelled(STOPPED)

    def _stoppable(self, enhance):
        """`enhance` stopping the job before each batch of faces once the server stops: a batch takes seconds on a
        CPU, a photo or a frame may hold many."""
        def run(faces):
            self._check_stopping()
            return enhance(faces)
        return run

    def cancel_jobs(self) -> int:
        """Cancel the jobs: those running stop at their next frame, photo or batch of faces, their temporary files
        removed; no other starts. Returns how many were running."""
        with self._jobs_changed:
            self._stopping.set()
            return self._running

    def wait_for_jobs(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds (None: no limit) until no job runs; False if some still do."""
        with self._jobs_changed:
            return self._jobs_changed.wait_for(lambda: self._running == 0, timeout)

    def _added_of(self, *kinds):
        return tuple(label for label, model in self.added.items() if model.kind in kinds)

    def enhancer(self, model, precision):
        """The FaceEnhancer of a model of the page (a released name, or one of --models), loaded once and kept for
        the next jobs; released weights are downloaded on first use."""
        added = self.added.get(model)
        source = added.source if added is not None else model
        key = (source, precision)
        with self._lock:
            if key not in self._enhancers:
                self._enhancers[key] = FaceEnhancer(source, device=self.device, precision=precision,
                                                    weights_dir=self.weights_dir,
                                                    codeformer_noncommercial=self.noncommercial_ok)
                while len(self._enhancers) > MODELS_KEPT:
                    self._enhancers.popitem(last=False)
            self._enhancers.move_to_end(key)
            return self._enhancers[key]

    def job_folder(self, kind):
        return os.path.join(self.run_dir, f'{kind}_{next(self._job_numbers):04d}')

    def check_pixels(self, path, name, upscale=1):
        """InputProblem unless the image at `path` is readable and, enlarged `upscale` times, within max_pixels."""
        try:
            with Image.open(path) as img:
                width, height = img.size
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise InputProblem(f'{name}: not a readable image ({str(err).replace(path, name)})') from err
        self.check_size(name, width, height, upscale, 'photo')

    def check_size(self, name, width, height, upscale, what):
        """InputProblem when a `what` (photo, video) of `width`x`height`, enlarged `upscale` times, is over
        max_pixels."""
        pixels = width * height * upscale ** 2
        if pixels > self.max_pixels:
            enlarged = f' enlarged {upscale}x' if upscale > 1 else ''
            raise InputProblem(f'{name}: {width}x{height}{enlarged} is {pixels / 1e6:.1f} megapixels, more than '
                               f'the {self.max_pixels / 1e6:.1f} this server takes (app.py --max_pixels); '
                               f'use a smaller {what}{" or upscale" if upscale > 1 else ""}')

    def check_video(self, path, name, upscale):
        """JobError unless FFmpeg reads `path` as a video whose frames, enlarged `upscale` times, are within
        max_pixels: checked from its header, before any network loads."""
        try:
            with VideoSource(path) as source:
                width, height = source.size
            self.check_size(name, width, height, upscale, 'video')
        except (VideoReadError, InputProblem) as err:
            raise JobError(str(err).replace(path, name)) from err

    def read(self, read_image, path, name, upscale=1):
        """`read_image(path)` after the size check; InputProblem naming the file when it fails."""
        self.check_pixels(path, name, upscale)
        try:
            return read_image(path)
        except ImageReadError as err:
            raise InputProblem(str(err).replace(path, name)) from err

    def background_source(self, background, upscale):
        """The background upsampler of the choice (none at upscale 1); JobError when its scale cannot give
        `upscale`."""
        check_choice(background, self.backgrounds, 'background upsampler')
        if upscale == 1 or background == NONE:
            return NONE
        added = self.added.get(background)
        scale = added.scale if added is not None else OTHER_MODELS[background].scale
        if not serves(scale, upscale):
            served = ', '.join(str(factor) for factor in UPSCALES if factor > 1 and serves(scale, factor)) or 'none'
            raise JobError(f'the background upsampler {background} enlarges {scale}x, which cannot give an upscale '
                           f'of {upscale} (upscales it gives: {served}); choose another upscale or background '
                           'upsampler')
        return added.source if added is not None else background

    def photo_restorer(self, model, detector, upscale, precision, background):
        """The whole-photo pipeline of the choices of the Photos and Video tabs (checked first), its network the
        kept one of the model, stopping the job before each batch of faces once the server stops."""
        check_choice(model, self.photo_models, 'model for whole photos')
        check_choice(detector, DETECTORS, 'face detector')
        check_choice(upscale, UPSCALES, 'upscale factor')
        check_choice(precision, self.precisions, f'precision of this {self.device.type}')
        face_batch = 1 if self.device.type == 'cpu' else 4  # on a CPU a face takes seconds: progress per face
        source = self.background_source(background, upscale)
        enhancer = self._stoppable(self.enhancer(model, precision))
        return PhotoRestorer(enhancer=enhancer, detector=detector, upscale=upscale, bg_upsampler=source,
                             face_batch_size=face_batch, device=self.device, precision=precision,
                             weights_dir=self.weights_dir, max_pixels=self.max_pixels, progress=True)

    def enhance_photos(self, paths, model, detector='cnn', upscale=1, precision='fp32', ext='png', background=NONE):
        """Every face of each photo enhanced and pasted back (the pipeline of test_enhance_single_unalign.py), the
        photo enlarged by the `background` upsampler when `upscale` is over 1."""
        check_choice(ext, OUTPUT_FORMATS, 'output format')
        with self._job():
            return self._enhance_photos(paths, model, detector, upscale, precision, ext, background)

    def _enhance_photos(self, paths, model, detector, upscale, precision, ext, background):
        started = time.monotonic()
        restorer = self.photo_restorer(model, detector, upscale, precision, background)
        folder = self.job_folder('photos')
        items, problems = [], []
        with restorer:
            for path, name in zip(tqdm(paths, desc='photos', unit='photo'), unique_names(paths)):
                self._check_stopping()
                try:
                    restored = restorer.restore(self.read(read_rgb_array, path, name, upscale))
                except NoFaceFound:
                    problems.append(f'{name}: no face found of at least {restorer.detector.min_face_size} px '
                                    f'(detector {detector}); try the other detector, or a photo where the faces are '
                                    'larger')
                    continue
                except InputProblem as err:
                    problems.append(str(err))
                    continue
                except NonFiniteOutput as err:
                    problems.append(f'{name}: {err}; nothing written')
                    continue
                save = functools.partial(self._save_photo, restored, path, name, folder, ext)
                self._save(problems, items, name, save)
        faces = [face for item in items for pair in item.faces for face in pair]
        return self._finish(folder, items, problems, faces, started)

    def enhance_video(self, path, model, detector='cnn', upscale=1, precision='fp32', background=NONE, start=None,
                      end=None):
        """Every face of every frame of a video (from `start` to `end` seconds) enhanced by the command line's run
        (`api.PhotoRestorer.restore_video`), the frames enlarged as photos are. JobError when the video
        cannot be read, is too large or gives no frame; a damaged one gives the frames that decoded, and a problem.
        """
        name = unique_names([path])[0]
        check_span(start, end)
        self.check_video(path, name, upscale)
        with self._job():
            return self._enhance_video(path, name, model, detector, upscale, precision, background, start, end)

    def _enhance_video(self, path, name, model, detector, upscale, precision, background, start, end):
        started = time.monotonic()
        restorer = self.photo_restorer(model, detector, upscale, precision, background)
        folder = self.job_folder('videos')
        out_path = output_path(path, folder)
        totals, problems = None, []
        try:
            with restorer:
                totals = restorer.restore_video(path, out_path, start=start, end=end, stop=self._stopping)
        except (VideoFailed, VideoReadError) as err:
            message = str(err).replace(path, name).replace(out_path, os.path.basename(out_path))
            if not os.path.isfile(out_path):
                raise JobError(message) from err
            problems.append(message)
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only when nothing was written (or kept): no empty job folder, however it failed
        return VideoResult(folder, [Item(name, path, out_path)], problems, None, time.monotonic() - started, totals)

    def enhance_faces(self, paths, model, precision='fp32', ext='png'):
        """Aligned faces enhanced one by one, read and resized to the network's size as test.py does."""
        check_choice(model, self.face_models, 'model')
        self._check_output(precision, ext)
        with self._job():
            return self._enhance_faces(paths, model, precision, ext)

    def _enhance_faces(self, paths, model, precision, ext):
        started = time.monotonic()
        enhancer = self.enhancer(model, precision)
        folder = self.job_folder('faces')
        items, problems = [], []
        for path, name in zip(tqdm(paths, desc='faces', unit='face'), unique_names(paths)):
            self._check_stopping()
            try:
                face = self.read(lambda image_path: read_face(image_path, enhancer.load_size), path, name)
            except InputProblem as err:
                problems.append(str(err))
                continue
            try:
                enhanced = enhancer(face[None])[0]
            except NonFiniteOutput as err:
                problems.append(f'{name}: {err}; nothing written')
                continue
            self._save(problems, items, name, functools.partial(self._save_face, enhanced, path, name, folder, ext))
        return self._finish(folder, items, problems, [item.after for item in items], started)

    def _check_output(self, precision, ext):
        check_choice(precision, self.precisions, f'precision of this {self.device.type}')
        check_choice(ext, OUTPUT_FORMATS, 'output format')

    @staticmethod
    def _save(problems, items, name, save):
        """items += save(), or a problem line when the disk refuses."""
        try:
            items.append(save())
        except (OSError, ValueError) as err:
            problems.append(f'{name}: could not write the results ({err})')

    @staticmethod
    def _save_photo(restored, path, name, folder, ext):
        after = os.path.join(folder, f'{name}.{ext}')
        save_rgb(restored.final, after, JPEG_QUALITY)
        faces = []
        for index, pair in enumerate(zip(restored.lq_faces, restored.hq_faces)):
            paths = tuple(os.path.join(folder, name, kind, f'{index:03d}.{ext}') for kind in ('LQ_faces', 'HQ'))
            for face, face_path in zip(pair, paths):
                save_rgb(face, face_path, JPEG_QUALITY)
            faces.append(paths)
        return Item(name, path, after, faces)

    @staticmethod
    def _save_face(enhanced, path, name, folder, ext):
        after = os.path.join(folder, f'{name}.{ext}')
        save_rgb(enhanced, after, JPEG_QUALITY)
        return Item(name, path, after)

    @staticmethod
    def _finish(folder, items, problems, zipped, started):
        zip_path = None
        if zipped:
            try:
                zip_path = write_zip(os.path.join(folder, 'faces.zip'), folder, zipped)
            except OSError as err:
                problems.append(f'faces.zip: could not be written ({err})')
        return JobResult(folder, items, problems, zip_path, time.monotonic() - started)
