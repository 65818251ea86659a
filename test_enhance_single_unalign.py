"""Enhance every face of a whole photo (or of each photo in a folder) with SPARNetHD.

Without --pretrain_model_path (and no checkpoint of --name), the released `sparnethd_attn2d` is
used, downloaded into the weights cache on first use.

Faces are found with dlib, aligned to the FFHQ template at 512x512, enhanced in batches and
blended back. Per photo, in --results_dir (a sub-folder per photo for a folder):
`LQ_faces/NNN.<ext>`, `HQ/NNN.<ext>` and `hq_final.<ext>` (written last: a photo whose
`hq_final` exists is complete, which --skip_existing relies on). Under torchrun each process
takes its share of the photos of a folder (utils/sharding.py).
"""
import logging
import os
import time
from collections import Counter

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from models.inference import Enhancer, NonFiniteOutput
from models.released import DEFAULT_PHOTO_MODEL
from options.test_options import TestOptions
from utils import sharding
from utils.cli import UserError, print_path_lists, run
from utils.devices import set_inference_threads
from utils.face_detect import FaceDetector
from utils.face_restore import FaceRestorer, NoFaceFound
from utils.image_io import ImageReadError, find_images, read_rgb_array, save_rgb

log = logging.getLogger('test_enhance_single_unalign')


def photo_jobs(test_img_path, results_dir):
    """[(photo path, its results folder)]: a file -> results_dir; a folder -> one sub-folder per photo."""
    if os.path.isfile(test_img_path):
        return [(test_img_path, results_dir)]
    if not os.path.isdir(test_img_path):
        raise UserError(f'--test_img_path {test_img_path!r}: no such file or folder')
    photos = find_images(test_img_path, '--test_img_path')
    split = [os.path.splitext(rel_path) for rel_path in photos]
    stem_count = Counter(stem for stem, _ in split)
    jobs = []
    for rel_path, (stem, ext) in zip(photos, split):
        name = stem if stem_count[stem] == 1 else f'{stem}_{ext[1:]}'
        jobs.append((os.path.join(test_img_path, rel_path), os.path.join(results_dir, name)))
    return jobs


class PhotoError(UserError):
    """One photo could not be enhanced: no face in it (`no_face`), or it could not be read or saved."""

    def __init__(self, message, no_face=False):
        super().__init__(message)
        self.no_face = no_face


def final_path(out_dir, ext):
    return os.path.join(out_dir, f'hq_final.{ext}')


def save_results(restored, out_dir, ext, jpeg_quality):
    for folder, faces in (('LQ_faces', restored.lq_faces), ('HQ', restored.hq_faces)):
        for index, face in enumerate(faces):
            save_rgb(face, os.path.join(out_dir, folder, f'{index:03d}.{ext}'), jpeg_quality)
    save_rgb(restored.final, final_path(out_dir, ext), jpeg_quality)


def enhance_photo(restorer, photo_path, out_dir, opt):
    """Restore one photo and save its results; returns its number of faces or raises PhotoError."""
    try:
        restored = restorer(read_rgb_array(photo_path))
    except NoFaceFound as err:
        raise PhotoError(f'{photo_path}: no face found (--detector {opt.detector}); try the other detector, '
                         f'or a larger --detect_max_size for small faces in a large photo', no_face=True) from err
    except ImageReadError as err:
        raise PhotoError(str(err)) from err
    except NonFiniteOutput as err:
        raise PhotoError(f'{photo_path}: {err}; nothing written') from err
    try:
        save_results(restored, out_dir, opt.ext, opt.jpeg_quality)
    except (OSError, ValueError) as err:
        raise PhotoError(f'{out_dir}: could not write the results ({err})') from err
    return len(restored.faces)


def check_options(opt):
    if not opt.test_img_path:
        raise UserError('--test_img_path is required: a photo or a folder of photos')
    if opt.test_upscale < 1:
        raise UserError(f'--test_upscale must be 1 or more, got {opt.test_upscale}')
    if opt.detect_max_size < 1:
        raise UserError(f'--detect_max_size must be a positive number of pixels, got {opt.detect_max_size}')
    if opt.face_batch_size < 1:
        raise UserError(f'--face_batch_size must be 1 or more, got {opt.face_batch_size}')


def main(args=None):
    opt = TestOptions().parse(args, default_weights=DEFAULT_PHOTO_MODEL)
    check_options(opt)
    return sharding.run_sharded(opt, enhance_photos)


def enhance_photos(opt, shard):
    set_inference_threads(shard.cpu_threads())
    jobs = photo_jobs(opt.test_img_path, opt.results_dir)
    single = os.path.isfile(opt.test_img_path)
    detector = FaceDetector(opt.detector, opt.detect_max_size, opt.detect_min_score)
    enhancer = Enhancer.from_options(opt)  # before any output: wrong weights write nothing
    restorer = FaceRestorer(detector, enhancer, batch_size=opt.face_batch_size, upscale=opt.test_upscale)
    run = sharding.ShardedRun(shard, [photo_path for photo_path, _ in jobs], f'--test_img_path {opt.test_img_path}',
                              opt.report, opt.skip_existing)
    jobs = run.pending([(photo_path, final_path(out_dir, opt.ext), out_dir) for photo_path, out_dir in jobs])
    restored_faces = 0
    with logging_redirect_tqdm():
        for photo_path, _, out_dir in tqdm(jobs, desc='photos', unit='photo', disable=single or not shard.is_main):
            start = time.perf_counter()
            try:
                n_faces = enhance_photo(restorer, photo_path, out_dir, opt)
            except PhotoError as err:
                if single:
                    raise
                log.log(logging.WARNING if err.no_face else logging.ERROR, '%s (skipped)', err)
                run.log.record(photo_path, 'no_face' if err.no_face else 'failed', error=str(err),
                               seconds=time.perf_counter() - start)
                continue
            restored_faces += n_faces
            run.log.record(photo_path, 'done', final_path(out_dir, opt.ext), seconds=time.perf_counter() - start)
            log.info('%s: %d face(s) -> %s', photo_path, n_faces, out_dir)
    totals = run.finish(restored_faces, opt.dist_timeout)
    if totals is None:
        return 1
    counts, listed, faces = totals
    if shard.is_main:
        print(f'{counts["done"]} photo(s) enhanced ({sum(faces)} faces), '
              f'{counts["no_face"]} without a face, {counts["failed"]} failed'
              f'{run.summary_suffix(counts, "results exist")}; results in {opt.results_dir}')
        print_path_lists((('without a face', listed['no_face']), ('failed', listed['failed'])))
    return 1 if counts['failed'] or counts['done'] + counts['skipped'] == 0 else 0


if __name__ == '__main__':
    run(main)
