"""SPARNet training pairs (CelebA face crops): flip, random resized crop, LR by PIL bicubic down and up.

The recipe of the released models: random horizontal flip; random resized crop to --load_size
(area 0.7-1.0, aspect 3/4-4/3, bicubic, torchvision's algorithm); LR = bicubic down by
--scale_factor (128 -> 16) then bicubic back up, since SPARNet takes the enlarged 16x16 face.
Validation images (augment=False) are only centre-cropped to a square and resized.
"""
import math

import numpy as np
from PIL import Image

from data.base_dataset import PairedDataset, resize_square
from utils.cli import UserError

CROP_AREA = (0.7, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)


def random_resized_crop_box(width, height, rng, area=CROP_AREA, aspect=CROP_ASPECT):
    """(left, top, right, bottom) as torchvision's RandomResizedCrop.get_params, drawn from `rng`.

    Ten tries at a box of random area fraction and log-uniform aspect ratio that fits the image,
    then the central crop closest to the allowed aspect ratios.
    """
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    for _ in range(10):
        target_area = width * height * rng.uniform(*area)
        ratio = math.exp(rng.uniform(*log_aspect))
        w = int(round(math.sqrt(target_area * ratio)))
        h = int(round(math.sqrt(target_area / ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < aspect[0]:
        w, h = width, int(round(width / aspect[0]))
    elif in_ratio > aspect[1]:
        w, h = int(round(height * aspect[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def bicubic_reduce(hr, scale_factor):
    """The LR face: PIL bicubic down by `scale_factor` (128 -> 16)."""
    width, height = hr.size
    return hr.resize((width // scale_factor, height // scale_factor), Image.BICUBIC)


def bicubic_lr(hr, scale_factor):
    """PIL bicubic down by `scale_factor`, then back up to the HR size."""
    return bicubic_reduce(hr, scale_factor).resize(hr.size, Image.BICUBIC)


class CelebADataset(PairedDataset):

    @staticmethod
    def modify_commandline_options(parser, is_train):
        if is_train:  # test.py accepts --scale_factor of its own
            parser.add_argument('--scale_factor', type=int, default=8,
                                help='LR faces are the HR ones PIL-bicubic reduced by this factor, then enlarged back')
        return parser

    def __init__(self, opt, root=None, augment=True):
        super().__init__(opt, root, augment)
        self.scale_factor = opt.scale_factor
        if opt.scale_factor < 1 or opt.load_size % opt.scale_factor:
            raise UserError(f"--scale_factor {opt.scale_factor} must divide --load_size {opt.load_size}")

    def hr_face(self, img, rng):
        img = Image.fromarray(img)
        if not self.augment:
            return np.asarray(resize_square(img, self.load_size))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = img.crop(random_resized_crop_box(*img.size, rng))
        return np.asarray(img.resize((self.load_size, self.load_size), Image.BICUBIC))

    def degrade(self, hr, rng):
        return np.asarray(bicubic_lr(Image.fromarray(hr), self.scale_factor)), hr

    def small_lr(self, hr):
        return np.asarray(bicubic_reduce(Image.fromarray(hr), self.scale_factor))


DATASET_CLASS = CelebADataset
