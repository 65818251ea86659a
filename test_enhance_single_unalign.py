"""Enhance every face of a whole photo (or of each photo in a folder) with SPARNetHD.

Faces are found with dlib, aligned to the FFHQ template at 512x512, enhanced in batches and
blended back. Per photo, in --results_dir (a sub-folder per photo for a folder):
`LQ_faces/NNN.<ext>`, `HQ/NNN.<ext>` and `hq_final.<ext>`. In a folder, the next photo is read
and searched for faces while the faces of the current one are enhanced.
"""
import logging
import os
from collections import Counter

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from models.fast_inference import set_inference_threads
from models.inference import Enhancer
from options.test_options import TestOptions
from utils.cli import UserError, print_path_lists, run
from utils.detection_flags import detector_from_flags
from utils.face_restore import FaceRestorer
from utils.image_io import IMG_EXTENSIONS, ImageReadError, list_images, read_rgb_array, save_rgb
from utils.one_ahead import one_ahead

log = logging.getLogger('test_enhance_single_unalign')


def photo_jobs(test_img_path, results_dir):
    """[(photo path, its results folder)]: a file -> results_dir; a folder -> one sub-folder per photo."""
    if os.path.isfile(test_img_path):
        return [(test_img_path, results_dir)]
    if not os.path.isdir(test_img_path):
        raise UserError(f'--test_img_path {test_img_path!r}: no such file or folder')
    photos = list_images(test_img_path)
    if not photos:
        raise UserError(f"--test_img_path {test_img_path}: no images found "
                        f"(looked for {' '.join(IMG_EXTENSIONS)}, subfolders too)")
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


def save_results(restored, out_dir, ext, jpeg_quality):
    for folder, faces in (('LQ_faces', restored.lq_faces), ('HQ', restored.hq_faces)):
        for index, face in enumerate(faces):
            save_rgb(face, os.path.join(out_dir, folder, f'{index:03d}.{ext}'), jpeg_quality)
    save_rgb(restored.final, os.path.join(out_dir, f'hq_final.{ext}'), jpeg_quality)


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
    restored = restorer.restore(photo, search.faces)
    try:
        save_results(restored, out_dir, opt.ext, opt.jpeg_quality)
    except (OSError, ValueError) as err:
        raise PhotoError(f'{out_dir}: could not write the results ({err})') from err
    return len(restored.faces), search


def check_options(opt):
    if not opt.test_img_path:
        raise UserError('--test_img_path is required: a photo or a folder of photos')
    if opt.test_upscale < 1:
        raise UserError(f'--test_upscale must be 1 or more, got {opt.test_upscale}')
    if opt.face_batch_size < 1:
        raise UserError(f'--face_batch_size must be 1 or more, got {opt.face_batch_size}')


def main(args=None):
    opt = TestOptions().parse(args)
    set_inference_threads()
    check_options(opt)
    jobs = photo_jobs(opt.test_img_path, opt.results_dir)
    single = os.path.isfile(opt.test_img_path)
    detector = detector_from_flags(opt)
    enhancer = Enhancer.from_options(opt)  # before any output: wrong weights write nothing
    restorer = FaceRestorer(detector, enhancer, batch_size=opt.face_batch_size, upscale=opt.test_upscale)
    restored_faces, without_face, failed = 0, [], []
    with detector, logging_redirect_tqdm():
        searches = one_ahead(lambda job: read_and_search(detector, job[0]), jobs)
        for (photo_path, out_dir), searched in tqdm(searches, total=len(jobs), desc='photos', unit='photo',
                                                    disable=single):
            try:
                n_faces, search = enhance_photo(restorer, searched, photo_path, out_dir, opt)
            except PhotoError as err:
                if single:
                    raise
                log.log(logging.WARNING if err.no_face else logging.ERROR, '%s (skipped)', err)
                (without_face if err.no_face else failed).append(photo_path)
                continue
            restored_faces += n_faces
            log.info('%s: %d face(s) -> %s (detection %.1f s, %s)', photo_path, n_faces, out_dir,
                     search.seconds, search.describe())
    done = len(jobs) - len(without_face) - len(failed)
    print(f'{done} photo(s) enhanced ({restored_faces} faces), {len(without_face)} without a face, '
          f'{len(failed)} failed; results in {opt.results_dir}')
    print_path_lists((('without a face', without_face), ('failed', failed)))
    return 1 if failed or done == 0 else 0


if __name__ == '__main__':
    run(main)
