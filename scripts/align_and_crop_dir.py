"""Folder of photos -> FFHQ-aligned face crops (512x512), the input SPARNetHD expects.

    python -m scripts.align_and_crop_dir --input_dir photos --output_dir aligned [--detector hog]

Each face found becomes one crop, under the photo's relative path: `name.ext` for a photo with
one face, `name_K.ext` (K = 0, 1, ... left to right) for several. Photos without a face or
that cannot be read are listed at the end; exit code 1 when any photo failed or no crop was
written, 2 on bad input.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

from faces.align import FACE_SIZE, align_face
from faces.crop_folder import crop_folder
from options.crop_flags import add_folder_arguments
from utils.cli import ArgumentParser, number_type, run


def main(argv=None):
    parser = add_folder_arguments(ArgumentParser(description=__doc__.split('\n\n')[0]))
    parser.add_argument('--size', type=number_type(int, low=16), default=FACE_SIZE,
                        help='side of the aligned crops in pixels')
    args = parser.parse_args(argv)
    return crop_folder(args, lambda photo, face: align_face(photo, face.landmarks, args.size)[0], 'align')


if __name__ == '__main__':
    run(main)
