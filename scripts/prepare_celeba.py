"""CelebA (or any) photos -> SPARNet training crops: square face crops resized to 128x128.

    python -m scripts.prepare_celeba --input_dir img_celeba --output_dir celeba_crops

As the released SPARNet was trained: each face box found by dlib is enlarged (--enlarge),
made square, kept when at least --min_size pixels wide in the photo, and resized to --size
with PIL's bicubic filter. No alignment. Use CelebA's in-the-wild photos (`img_celeba`): faces
in the 178x218 aligned release are too small for the 128 px minimum. Names follow
align_and_crop_dir.py (`name.ext`, `name_K.ext` for several faces).
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import math

import numpy as np
from PIL import Image

from faces.crop_folder import crop_folder
from options.crop_flags import add_folder_arguments
from utils.cli import ArgumentParser, positive_float, positive_int, run


def square_box(box, enlarge, height, width):
    """Integer (left, top, side) of a square around `box` enlarged `enlarge` times, moved inside the photo.

    The side is cut to the photo's shorter side when the square cannot fit.
    """
    left, top, right, bottom = box
    side = min(math.floor(enlarge * max(right - left + 1, bottom - top + 1) + 0.5), height, width)
    left = min(max(math.floor((left + right - side + 1) / 2.0), 0), width - side)
    top = min(max(math.floor((top + bottom - side + 1) / 2.0), 0), height - side)
    return left, top, side


def face_crop(photo, box, enlarge, min_size, size):
    """size x size crop of the enlarged square face box, or None when that square is under min_size."""
    left, top, side = square_box(box, enlarge, *photo.shape[:2])
    if side < min_size:
        return None
    square = Image.fromarray(photo[top:top + side, left:left + side])
    return np.asarray(square.resize((size, size), Image.BICUBIC))


def main(argv=None):
    parser = add_folder_arguments(ArgumentParser(description=__doc__.split('\n\n')[0]))
    parser.add_argument('--enlarge', type=positive_float, default=1.3,
                        help='side of the square crop over the longer side of the detected face box')
    parser.add_argument('--min_size', type=positive_int, default=128, help='faces whose square is smaller are dropped')
    parser.add_argument('--size', type=positive_int, default=128, help='side of the output crops in pixels')
    args = parser.parse_args(argv)
    return crop_folder(args, lambda photo, face: face_crop(photo, face.box, args.enlarge, args.min_size, args.size),
                       'crop')


if __name__ == '__main__':
    run(main)
