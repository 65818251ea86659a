"""What the training datasets share: HR images of a folder turned into (LR, HR) pairs, repeatably.

Each sample draws its randomness from its own generator seeded with (--seed, epoch, index), so a
run gives the same pairs whatever the number of loader processes or GPUs, and a resumed run
gives the pairs the interrupted one would have seen. An unreadable file is replaced by the next
readable one and reported in the batch (`errors`), so the main process can log it once.
"""
import os

import numpy as np
import torch
from PIL import Image

from utils.cli import UserError
from utils.image_io import ImageReadError, find_images, read_rgb, read_rgb_array
from utils.tensor_image import uint8_image_to_tensor


def first(paths: list[str], count: float) -> list[str]:
    """The first `count` paths (count may be inf)."""
    return paths[:int(count)] if count < len(paths) else paths


def center_square(img: Image.Image) -> Image.Image:
    """The largest centred square of a PIL image."""
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return img.crop((left, top, left + side, top + side))


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """Centre square of `img`, PIL-bicubic resized to size x size (untouched when already so)."""
    img = center_square(img)
    return img if img.size == (size, size) else img.resize((size, size), Image.BICUBIC)


class PairedDataset(torch.utils.data.Dataset):
    """HR images below `root` -> {'LR', 'HR', 'HR_paths', 'errors'}; subclasses implement `hr_face` and `degrade`.

    A sample goes through four stages, each a method so that `scripts/benchmark_loader.py` can time
    them: `decode` (file -> RGB array), `hr_face` (crop, resize), `degrade` (-> LR, HR) and
    `to_sample` (tensors).
    """

    def __init__(self, opt, root=None, augment=True):
        self.root = root or opt.dataroot
        self.load_size = opt.load_size
        self.seed = opt.seed
        self.augment = augment
        self.epoch = 0
        self.paths = find_images(self.root, '--val_dataroot' if root else '--dataroot')
        if root is None:  # --max_dataset_size limits the training folder, not --val_dataroot
            self.paths = first(self.paths, opt.max_dataset_size)

    def decode(self, rel_path: str) -> np.ndarray:
        """The image file as an HxWx3 uint8 RGB array; ImageReadError when it cannot be read."""
        return read_rgb_array(os.path.join(self.root, rel_path))

    def hr_face(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The HR face, load_size x load_size uint8, from the decoded image."""
        raise NotImplementedError

    def degrade(self, hr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(LR, HR) HxWx3 uint8 arrays from the HR face (the HR one may change too: SPARNetHD's gray pairs)."""
        raise NotImplementedError

    @staticmethod
    def to_sample(lr: np.ndarray, hr: np.ndarray, rel_path: str, errors: list) -> dict:
        return {'LR': uint8_image_to_tensor(lr), 'HR': uint8_image_to_tensor(hr), 'HR_paths': rel_path,
                'errors': errors}

    def small_lr(self, hr):
        """The LR face at its own size for an HR uint8 array, when the network input is an enlargement
        of it (SPARNet's 16x16 face); None when the input is the LR face itself."""
        return None

    def set_epoch(self, epoch):
        self.epoch = epoch

    def rng(self, index):
        return np.random.default_rng([self.seed, self.epoch, index])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        errors = []
        for offset in range(len(self.paths)):
            rel_path = self.paths[(index + offset) % len(self.paths)]
            try:
                img = self.decode(rel_path)
            except ImageReadError as err:
                errors.append((rel_path, str(err)))
                continue
            rng = self.rng(index)
            lr, hr = self.degrade(self.hr_face(img, rng), rng)
            return self.to_sample(lr, hr, rel_path, errors)
        raise UserError(f"{self.root}: none of the {len(self.paths)} images is readable")

    def check_readable(self):
        """Fail early, with one line, when no image of the folder can be read (reads until one can)."""
        for rel_path in self.paths:
            try:
                read_rgb(os.path.join(self.root, rel_path))
                return
            except ImageReadError:
                continue
        raise UserError(f"{self.root}: none of the {len(self.paths)} images is readable")

    @staticmethod
    def collate(samples):
        return {'LR': torch.stack([s['LR'] for s in samples]),
                'HR': torch.stack([s['HR'] for s in samples]),
                'HR_paths': [s['HR_paths'] for s in samples],
                'errors': [error for s in samples for error in s['errors']]}
