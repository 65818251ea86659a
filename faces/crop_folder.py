"""Crops of every face of a folder of photos (the dataset scripts): found, cropped, written under the photo's name.

Each face found becomes one crop, under the photo's relative path: `name.ext` for a photo with
one face, `name_K.ext` (K = 0, 1, ... left to right) for several. Photos without a face or
that cannot be read are listed at the end.
"""
import argparse
import logging
import os
import re
from collections.abc import Callable

import numpy as np

from faces.detector import Face, detector_from_flags
from utils.cli import print_path_lists
from utils.image_io import ImageReadError, find_images, is_image_file, output_name, read_rgb_array, save_rgb
from utils.output_plan import OutputPlan
from utils.progress import logging_redirect, progress

log = logging.getLogger('face_crops')


def face_file_names(rel_path: str, count: int, ext: str = '') -> list[str]:
    """Output names of `count` crops of a photo: `name.ext` for one, `name_K.ext` for several."""
    stem, suffix = os.path.splitext(output_name(rel_path, ext))
    if count == 1:
        return [stem + suffix]
    return [f'{stem}_{index}{suffix}' for index in range(count)]


def crop_folder(args: argparse.Namespace, crop_face: Callable[[np.ndarray, Face], np.ndarray | None],
                desc: str) -> int:
    """Write `crop_face(photo, face)` (an array, or None to drop the face) for every face of every photo.

    Returns the exit code: 1 when a photo failed or no crop was written at all.
    """
    photos = find_images(args.input_dir, '--input_dir')
    plan = output_plan(args, photos)
    plan.check()
    with plan.claimed():
        detector = detector_from_flags(args)
        with detector, logging_redirect():
            return crop_photos(args, photos, detector, crop_face, desc)


def output_plan(args: argparse.Namespace, photos: list[str]) -> OutputPlan:
    """The crops of each photo (`name.ext`, or `name_K.ext` when it has several faces) apart from the photos and
    from each other's."""
    plan = OutputPlan()
    plan.reads_folder('--input_dir', args.input_dir, is_image_file)
    plan.writes_folder('--output_dir', args.output_dir)
    for rel_path in photos:
        photo = os.path.join(args.input_dir, rel_path)
        single = os.path.join(args.output_dir, face_file_names(rel_path, 1, args.ext)[0])
        stem, suffix = os.path.splitext(single)
        plan.writes_files([(photo, single)])
        plan.writes_family(photo, os.path.dirname(stem), os.path.basename(stem) + '_',
                           re.compile(r'\d+' + re.escape(suffix)))
    return plan


def crop_photos(args, photos, detector, crop_face, desc):
    """The crops of every photo; returns the exit code."""
    written, dropped, without_face, failed = 0, 0, [], []
    for rel_path in progress(photos, desc=desc, unit='photo'):
        try:
            photo = read_rgb_array(os.path.join(args.input_dir, rel_path))
        except ImageReadError as err:
            log.error('%s (skipped)', err)
            failed.append(rel_path)
            continue
        faces = detector(photo)
        if not faces:
            log.warning('%s: no face found of at least --min_face_size %d px (skipped)',
                        os.path.join(args.input_dir, rel_path), args.min_face_size)
            without_face.append(rel_path)
            continue
        crops = [crop for crop in (crop_face(photo, face) for face in faces) if crop is not None]
        dropped += len(faces) - len(crops)
        try:
            for name, crop in zip(face_file_names(rel_path, len(crops), args.ext), crops):
                save_rgb(crop, os.path.join(args.output_dir, name), args.jpeg_quality)
                written += 1
        except (OSError, ValueError) as err:
            log.error('%s: could not write its crops (%s)', os.path.join(args.input_dir, rel_path), err)
            failed.append(rel_path)
    print(f'{len(photos)} photos: {written} crops written, {dropped} faces dropped, '
          f'{len(without_face)} photos without a face, {len(failed)} failed; results in {args.output_dir}')
    print_path_lists((('without a face', without_face), ('failed', failed)))
    return 1 if failed or written == 0 else 0
