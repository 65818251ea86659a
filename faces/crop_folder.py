"""Folder of photos -> FFHQ-aligned face crops (512x512), the input SPARNetHD expects.

    python scripts/align_and_crop_dir.py --input_dir photos --output_dir aligned [--detector hog]

Each face found becomes one crop, under the photo's relative path: `name.ext` for a photo with
one face, `name_K.ext` (K = 0, 1, ... left to right) for several. Photos without a face or
that cannot be read are listed at the end; exit code 1 when any photo failed or no crop was
written, 2 on bad input.
"""
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils.cli import ArgumentParser, jpeg_quality, number_type, print_path_lists, run  # noqa: E402
from utils.face_align import FACE_SIZE, align_face  # noqa: E402
from utils.detection_flags import add_detection_flags, detector_from_flags  # noqa: E402
from utils.image_io import ImageReadError, find_images, output_name, read_rgb_array, save_rgb  # noqa: E402
from utils.paths import check_output_folders  # noqa: E402
from utils.progress import logging_redirect, progress  # noqa: E402

log = logging.getLogger('face_crops')


def add_folder_arguments(parser):
    """Flags shared by the scripts that crop faces out of a folder of photos."""
    parser.add_argument('--input_dir', required=True, help='folder of photos (subfolders too)')
    parser.add_argument('--output_dir', required=True, help='crops are written here, keeping relative paths')
    add_detection_flags(parser)
    parser.add_argument('--ext', default='', choices=('', 'png', 'jpg'),
                        help='format of the crops (default: that of each photo, PNG for GIF)')
    parser.add_argument('--jpeg_quality', type=jpeg_quality, default=95, help='quality of JPEG crops')
    return parser


def face_file_names(rel_path, count, ext=''):
    """Output names of `count` crops of a photo: `name.ext` for one, `name_K.ext` for several."""
    stem, suffix = os.path.splitext(output_name(rel_path, ext))
    if count == 1:
        return [stem + suffix]
    return [f'{stem}_{index}{suffix}' for index in range(count)]


def crop_folder(args, crop_face, desc):
    """Write `crop_face(photo, face)` (an array, or None to drop the face) for every face of every photo.

    Returns the exit code: 1 when a photo failed or no crop was written at all.
    """
    check_output_folders([('--input_dir', args.input_dir)], [('--output_dir', args.output_dir)])
    photos = find_images(args.input_dir, '--input_dir')
    detector = detector_from_flags(args)
    written, dropped, without_face, failed = 0, 0, [], []
    with detector, logging_redirect():
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


def main(argv=None):
    parser = add_folder_arguments(ArgumentParser(description=__doc__.split('\n\n')[0]))
    parser.add_argument('--size', type=number_type(int, low=16), default=FACE_SIZE,
                        help='side of the aligned crops in pixels')
    args = parser.parse_args(argv)
    return crop_folder(args, lambda photo, face: align_face(photo, face.landmarks, args.size)[0], 'align')


if __name__ == '__main__':
    run(main)
