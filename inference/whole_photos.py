"""Enhancing every face of whole photos (test_enhance_single_unalign.py): detect, align, enhance, paste back.

Without --pretrain_model_path (and no checkpoint of --name), the released `sparnethd_attn2d` is
used, downloaded into the weights cache on first use. Faces are found with dlib, aligned to the
FFHQ template at 512x512, enhanced in batches and blended back, by the Python API's `api.PhotoRestorer`
built from the flags (`options.pipelines`); `inference.photo_results` says where the results go. In a
folder, the next photo is read and searched for faces while the faces of the current one are enhanced. Under
torchrun each process takes its share of the photos of a folder (`inference.sharding`).
"""
import argparse
import logging
import os
import time
from collections import Counter

import numpy as np

from api import PhotoRestorer
from faces.detector import FaceSearch
from inference import sharding
from inference.photo_results import final_path, plan_results, save_results
from inference.report import check_report_file
from models.enhancer import NonFiniteOutput
from options.pipelines import photo_restorer
from utils.cli import UserError, print_path_lists
from utils.devices import set_inference_threads
from utils.image_io import (
    ImageReadError,
    find_images,
    is_image_file,
    list_files,
    list_images,
)
from utils.one_ahead import one_ahead
from utils.output_plan import OutputPlan
from utils.progress import logging_redirect, progress
from video.enhance import output_ext, output_path
from video.reader import is_video_file

log = logging.getLogger('test_enhance_single_unalign')


class PhotoError(UserError):
    """One photo could not be enhanced: no face in it (`no_face`), or it could not be read or saved."""

    def __init__(self, message: str, no_face: bool = False) -> None:
        super().__init__(message)
        self.no_face = no_face


def read_and_search(restorer: PhotoRestorer, photo_path: str) -> tuple[np.ndarray, FaceSearch]:
    """(photo, its `FaceSearch`): the part of a photo's work that runs ahead in folder runs; the photo is refused
    first when, enlarged --test_upscale times, it is over --max_pixels."""
    photo = restorer.read(photo_path)
    return photo, restorer.search(photo)


def enhance_photo(restorer, searched, photo_path, out_dir, opt):
    """Restore one photo from its `read_and_search` Future and save the results.

    Returns (number of faces, FaceSearch) or raises PhotoError.
    """
    try:
        photo, search = searched.result()
    except ImageReadError as err:
        raise PhotoError(str(err)) from err
    if not search.faces:
        raise PhotoError(f'{photo_path}: no face found of at least --min_face_size {opt.min_face_size} px '
                         f'(--detector {opt.detector}, {search.describe()}, {search.seconds:.1f} s); for smaller '
                         f'faces lower --min_face_size, or try the other detector', no_face=True)
    try:
        restored = restorer.restore(photo, search.faces)
    except NonFiniteOutput as err:
        raise PhotoError(f'{photo_path}: {err}; nothing written') from err
    try:
        save_results(restored, out_dir, opt.ext, opt.jpeg_quality)
    except (OSError, ValueError) as err:
        raise PhotoError(f'{out_dir}: could not write the results ({err})') from err
    return len(restored.faces), search


def check_options(opt: argparse.Namespace) -> None:
    if not opt.test_img_path:
        raise UserError('--test_img_path is required: a photo or a folder of photos')


def input_jobs(test_img_path: str, results_dir: str) -> tuple[list, list]:
    """([(photo, its results folder)], [(video, its output video)]) of --test_img_path: a photo, a video, or a
    folder holding either.

    In a folder, a photo's results go to `<results_dir>/<relative path without extension>/`, a video's to
    `<results_dir>/<relative path without extension>.mp4` (`.mkv`: `output_ext`); inputs whose outputs would meet
    (`a.jpg` and `a.png`, `a.mp4` and `a.avi`, `v.mp4.jpg` and `v.mp4`) keep their extension in the name
    (`a_jpg/`, `a_mp4.mp4`, `v.mp4_jpg/`, `v_mp4.mp4`).
    """
    if os.path.isfile(test_img_path):
        if is_video_file(test_img_path):
            return [], [(test_img_path, output_path(test_img_path, results_dir))]
        return [(test_img_path, results_dir)], []
    if not os.path.isdir(test_img_path):
        raise UserError(f'--test_img_path {test_img_path!r}: no such file or folder')
    videos = [rel_path for rel_path in list_files(test_img_path, skip_hidden=True) if is_video_file(rel_path)]
    photos = find_images(test_img_path, '--test_img_path') if list_images(test_img_path) or not videos else []
    names = {rel_path: (*os.path.splitext(rel_path), '') for rel_path in photos}
    names |= {rel_path: (*os.path.splitext(rel_path), output_ext(os.path.join(test_img_path, rel_path)))
              for rel_path in videos}
    taken = Counter(stem + out_ext for stem, _, out_ext in names.values())
    named = {rel_path: os.path.join(results_dir, (stem if taken[stem + out_ext] == 1 else f'{stem}_{ext[1:]}')
                                    + out_ext)
             for rel_path, (stem, ext, out_ext) in names.items()}
    return ([(os.path.join(test_img_path, rel_path), named[rel_path]) for rel_path in photos],
            [(os.path.join(test_img_path, rel_path), named[rel_path]) for rel_path in videos])


def output_plan(opt: argparse.Namespace, photos: list, videos: list) -> OutputPlan:
    """What a whole-photo run reads and writes: each photo's results and each video, apart from the inputs and
    from each other."""
    plan = OutputPlan()
    plan.reads('--test_img_path', opt.test_img_path, lambda path: is_image_file(path) or is_video_file(path))
    for flag in ('--pretrain_model_path', '--face_model', '--bg_upsampler', '--onnx_model'):
        plan.reads(flag, getattr(opt, flag[2:]))
    plan.writes_folder('--results_dir', opt.results_dir)
    for photo_path, out_dir in photos:
        plan_results(plan, photo_path, out_dir)
    plan.writes_files(videos)
    plan.writes_file('--report', opt.report)
    return plan


def enhance_photos(restorer, run, jobs, opt, single, show_progress):
    """Enhance this process's photos (the next one read and searched while the current one is enhanced);
    returns the number of faces restored."""
    restored_faces = 0
    searches = one_ahead(lambda job: read_and_search(restorer, job[0]), jobs)
    for (photo_path, _, out_dir), searched in progress(searches, total=len(jobs), desc='photos', unit='photo',
                                                       disable=single or not show_progress):
        start = time.perf_counter()
        try:
            n_faces, search = enhance_photo(restorer, searched, photo_path, out_dir, opt)
        except PhotoError as err:
            if single:
                raise
            log.log(logging.WARNING if err.no_face else logging.ERROR, '%s (skipped)', err)
            run.log.record(photo_path, 'no_face' if err.no_face else 'failed', error=str(err),
                           seconds=time.perf_counter() - start)
            continue
        restored_faces += n_faces
        run.log.record(photo_path, 'done', final_path(out_dir, opt.ext), seconds=time.perf_counter() - start)
        log.info('%s: %d face(s) -> %s (detection %.1f s, %s)', photo_path, n_faces, out_dir,
                 search.seconds, search.describe())
    return restored_faces


def enhance_videos(restorer, run, jobs, opt, single, show_progress):
    """Enhance this process's videos one after the other; returns the number of faces restored."""
    restored_faces = 0
    for video_path, out_path in jobs:
        start = time.perf_counter()
        try:
            totals = restorer.restore_video(video_path, out_path, start=opt.start, end=opt.end, crf=opt.crf,
                                            temporal_smoothing=not opt.no_temporal_smoothing)
        except UserError as err:
            if single:
                raise
            log.error('%s (skipped)', err)
            run.log.record(video_path, 'failed', error=str(err), seconds=time.perf_counter() - start)
            continue
        restored_faces += totals.faces
        run.log.record(video_path, 'done', out_path, seconds=time.perf_counter() - start)
        log.info('%s: %d frames, %d with faces (%d faces) -> %s', video_path, totals.frames,
                 totals.frames_with_faces, totals.faces, out_path)
    return restored_faces


def enhance_share(opt, shard):
    """Enhance the photos and videos of this process (all of them, but under torchrun); returns its exit code."""
    set_inference_threads(shard.cpu_threads())
    photos, videos = input_jobs(opt.test_img_path, opt.results_dir)
    plan = output_plan(opt, photos, videos)
    plan.check()
    check_report_file(opt.report)
    single = os.path.isfile(opt.test_img_path)
    with plan.claimed(lock=shard.is_main):
        restorer = photo_restorer(opt)  # before any output: wrong weights write nothing
        with restorer, logging_redirect():  # the detection threads stop whatever happens below
            run = sharding.ShardedRun(shard, [path for path, _ in photos + videos],
                                      f'--test_img_path {opt.test_img_path}', opt.report, opt.skip_existing)
            pending = run.pending([(photo_path, final_path(out_dir, opt.ext), out_dir)
                                   for photo_path, out_dir in photos]
                                  + [(video_path, out_path, None) for video_path, out_path in videos])
            restored_faces = enhance_photos(restorer, run, [job for job in pending if job[2] is not None], opt,
                                            single, shard.is_main)
            restored_faces += enhance_videos(restorer, run, [job[:2] for job in pending if job[2] is None], opt,
                                             single, shard.is_main)
    totals = run.finish(restored_faces, opt.dist_timeout)
    if totals is None:
        return 1
    counts, listed, faces = totals
    if shard.is_main:
        kinds = ' and '.join(kind for kind, jobs in (('photo(s)', photos), ('video(s)', videos)) if jobs)
        print(f'{counts["done"]} {kinds} enhanced ({sum(faces)} faces), '
              f'{counts["no_face"]} without a face, {counts["failed"]} failed'
              f'{run.summary_suffix(counts, "results exist")}; results in {opt.results_dir}')
        print_path_lists((('without a face', listed['no_face']), ('failed', listed['failed'])))
    return 1 if counts['failed'] or counts['done'] + counts['skipped'] == 0 else 0


def enhance_whole_photos(opt: argparse.Namespace) -> int:
    """Exit code of a whole-photo run of `opt` (test_enhance_single_unalign.py's options): folders checked
    before any work, then every photo (each process its share under torchrun)."""
    check_options(opt)
    return sharding.run_sharded(opt, enhance_share)
