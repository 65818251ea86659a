"""Where the whole-photo script puts a photo's results, and the rules that keep them apart from the photos.

Per photo, in --results_dir (a sub-folder per photo for a folder): `LQ_faces/NNN.<ext>`,
`HQ/NNN.<ext>` and `hq_final.<ext>` (written last: a photo whose `hq_final` exists is complete,
which --skip_existing relies on). Those files of an earlier run in the photo's results folder are
removed before the new ones are written, and nothing else there: no old `HQ/007.jpg` stays beside
a new run's three faces.
"""
import logging
import os
import re
from collections import Counter

from faces.restorer import RestoredPhoto
from utils.atomic import part_target
from utils.cli import UserError
from utils.image_io import find_images, save_rgb
from utils.paths import check_output_folders, real_path

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


def final_path(out_dir: str, ext: str) -> str:
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


def save_results(restored: RestoredPhoto, out_dir: str, ext: str, jpeg_quality: int) -> None:
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
