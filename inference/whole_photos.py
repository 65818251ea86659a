"""Enhance every face of a whole photo (or of each photo in a folder) with SPARNetHD.

Without --pretrain_model_path (and no checkpoint of --name), the released `sparnethd_attn2d` is
used, downloaded into the weights cache on first use.

Faces are found with dlib, aligned to the FFHQ template at 512x512, enhanced in batches and
blended back. Per photo, in --results_dir (a sub-folder per photo for a folder):
`LQ_faces/NNN.<ext>`, `HQ/NNN.<ext>` and `hq_final.<ext>` (written last: a photo whose
`hq_final` exists is complete, which --skip_existing relies on). Those files of an earlier run
in the photo's results folder are removed before the new ones are written, and nothing else
there: no old `HQ/007.jpg` stays beside a new run's three faces. In a folder, the next photo is
read and searched for faces while the faces of the current one are enhanced. Under torchrun each
process takes its share of the photos of a folder (utils/sharding.py).
"""
import logging
import os
import re
import time
from collections import Counter

from models.inference import NonFiniteOutput, photo_restorer
from models.released import DEFAULT_PHOTO_MODEL
from options.test_options import TestOptions
from utils import sharding
from utils.atomic import part_target
from utils.cli import UserError, print_path_lists, run
from utils.devices import set_inference_threads
from utils.image_io import ImageReadError, find_images, read_rgb_array, save_rgb
from utils.one_ahead import one_ahead
from utils.paths import check_output_folders, real_path
from utils.progress import logging_redirect, progress

log = logging.getLogger('test_enhance_single_unalign')
FACE_FOLDERS = ('LQ_faces', 'HQ')
RESULT_EXTS = ('jpg', 'png')  # the --ext choices
FACE_FILE = re.compile(r'(\d{3}|[1-9]\d{3,})\.(jpg|png)')  # the names f'{index:03d}.{ext}' gives


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


def earlier_results(out_dir):
    """The files of `out_dir` this script writes (`hq_final.<ext>` first, `LQ_faces/NNN.<ext>`, `HQ/NNN.<ext>`),
    and the temporary ones a killed run left of them."""
    final_names = {final_path('', ext) for ext in RESULT_EXTS}
    found = []
    for folder, is_ours in ((out_dir, final_names.__contains__),
                            *((os.path.join(out_dir, name), FACE_FILE.fullmatch) for name in FACE_FOLDERS)):
        if os.path.isdir(folder):
            found += [os.path.join(folder, name) for name in sorted(os.listdir(folder))
                      if (is_ours(name) or is_ours(part_target(name))) and os.path.isfile(os.path.join(folder, name))]
    return found


def is_result_file(path, out_dir):
    """Whether `path` is (or would be) one of the files this script writes into `out_dir`."""
    path, out_dir = real_path(path), real_path(out_dir)
    folder, name = os.path.split(path)
    return (path in {real_path(final_path(out_dir, ext)) for ext in RESULT_EXTS} or
            (folder in {os.path.join(out_dir, face_folder) for face_folder in FACE_FOLDERS}
             and FACE_FILE.fullmatch(name) is not None))


def check_folders(test_img_path, results_dir):
    """Before any work: the results folder writable and apart from the photos (UserError in one line)."""
    if os.path.isfile(test_img_path) and is_result_file(test_img_path, results_dir):
        raise UserError(f'--test_img_path {test_img_path} is one of the files this run writes into --results_dir '
                        f'{results_dir}; copy the photo elsewhere or choose another --results_dir')
    inputs = [('--test_img_path', test_img_path)] if os.path.isdir(test_img_path) else []
    check_output_folders(inputs, [('--results_dir', results_dir)])


def save_results(restored, out_dir, ext, jpeg_quality):
    """Replace the results of an earlier run in `out_dir` (and only them) with those of `restored`."""
    earlier = earlier_results(out_dir)
    for path in earlier:  # hq_final first: a photo without it is incomplete, whatever else is there
        os.remove(path)
    if earlier:
        log.info('%s: removed the %d result files of an earlier run', out_dir, len(earlier))
    for folder, faces in (('LQ_faces', restored.lq_faces), ('HQ', restored.hq_faces)):
        for index, face in enumerate(faces):
            save_rgb(face, os.path.join(out_dir, folder, f'{index:03d}.{ext}'), jpeg_quality)
    save_rgb(restored.final, final_path(out_dir, ext), jpeg_quality)


def read_and_search(detector, photo_path):
    """(photo, its `FaceSearch`): the part of a photo's work that runs ahead in folder runs."""
    photo = read_rgb_array(photo_path)
    return photo, detector.search(photo)


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


def check_options(opt):
    if not opt.test_img_path:
        raise UserError('--test_img_path is required: a photo or a folder of photos')


def main(args=None):
    opt = TestOptions().parse(args, default_weights=DEFAULT_PHOTO_MODEL)
    check_options(opt)
    check_folders(opt.test_img_path, opt.results_dir)
    return sharding.run_sharded(opt, enhance_photos)


def enhance_photos(opt, shard):
    set_inference_threads(shard.cpu_threads())
    jobs = photo_jobs(opt.test_img_path, opt.results_dir)
    single = os.path.isfile(opt.test_img_path)
    restorer = photo_restorer(opt)  # before any output: wrong weights write nothing
    detector = restorer.find_faces
    with detector, logging_redirect():  # the detection threads stop whatever happens below
        run = sharding.ShardedRun(shard, [photo_path for photo_path, _ in jobs],
                                  f'--test_img_path {opt.test_img_path}', opt.report, opt.skip_existing)
        jobs = run.pending([(photo_path, final_path(out_dir, opt.ext), out_dir) for photo_path, out_dir in jobs])
        restored_faces = 0
        searches = one_ahead(lambda job: read_and_search(detector, job[0]), jobs)
        for (photo_path, _, out_dir), searched in progress(searches, total=len(jobs), desc='photos', unit='photo',
                                                           disable=single or not shard.is_main):
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
