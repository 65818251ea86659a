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

from faces.restorer import RestoredPhoto
from utils.image_io import save_rgb
from utils.output_plan import OutputPlan

log = logging.getLogger('test_enhance_single_unalign')
FACE_FOLDERS = ('LQ_faces', 'HQ')
FACE_FILE = re.compile(r'(\d{3}|[1-9]\d{3,})\.(jpg|png)')  # the names f'{index:03d}.{ext}' gives
RESULT_EXTS = ('jpg', 'png')  # the --ext choices
FINAL_NAME, FINAL_EXT = 'hq_final.', re.compile('|'.join(RESULT_EXTS))  # hq_final.<ext>


def final_path(out_dir: str, ext: str) -> str:
    return os.path.join(out_dir, f'hq_final.{ext}')


def earlier_results(out_dir):
    """The files of `out_dir` this script writes (`hq_final.<ext>` first, `LQ_faces/NNN.<ext>`, `HQ/NNN.<ext>`);
    the temporary ones killed runs left of them, the output plan removes (`OutputPlan.claimed`)."""
    found = [path for ext in RESULT_EXTS if os.path.isfile(path := final_path(out_dir, ext))]
    for folder in (os.path.join(out_dir, name) for name in FACE_FOLDERS):
        if os.path.isdir(folder):
            found += [path for name in sorted(os.listdir(folder))
                      if FACE_FILE.fullmatch(name) and os.path.isfile(path := os.path.join(folder, name))]
    return found


def plan_results(plan: OutputPlan, photo_path: str, out_dir: str) -> None:
    """Declare the files a photo's results replace in `out_dir` (`earlier_results`): no other input's results and
    no input may be among them."""
    plan.writes_family(photo_path, out_dir, FINAL_NAME, FINAL_EXT)
    for name in FACE_FOLDERS:
        plan.writes_family(photo_path, os.path.join(out_dir, name), '', FACE_FILE)


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
