"""The images of a test folder (subfolders too), resized to `--load_size` as the released models expect."""
import os
import time

import numpy as np
import torch
from PIL import Image

from data.base_dataset import first
from utils.cli import UserError
from utils.image_io import ImageReadError, is_image_file, list_files, no_images_message, read_rgb
from utils.tensor_image import uint8_to_tensor


def read_face(path: str, load_size: int) -> np.ndarray:
    """The network input of one test image: RGB uint8, PIL-bicubic resized to load_size x load_size.

    ImageReadError when it cannot be read. test.py (through SingleDataset) and app.py read faces so.
    """
    img = read_rgb(path)
    if img.size != (load_size, load_size):
        img = img.resize((load_size, load_size), Image.BICUBIC)
    return np.asarray(img)


def resized(face: np.ndarray, size: int) -> np.ndarray:
    """An HxWx3 uint8 face at `size` x `size`, PIL-bicubic as `read_face` resizes test.py's inputs."""
    if face.shape[:2] == (size, size):
        return face
    return np.asarray(Image.fromarray(face).resize((size, size), Image.BICUBIC))


class SingleDataset(torch.utils.data.Dataset):
    """LR images only: RGB, PIL bicubic resize to load_size x load_size, scaled to [-1, 1]."""

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return parser

    def __init__(self, opt):
        if not opt.dataroot or not os.path.isdir(opt.dataroot):
            raise UserError(f"--dataroot {opt.dataroot!r}: no such folder; give the folder of input images")
        self.root = opt.dataroot
        self.load_size = opt.load_size
        files = list_files(self.root, skip_hidden=True)
        self.paths = [f for f in files if is_image_file(f)]
        self.non_images = [f for f in files if not is_image_file(f)]
        if not self.paths:
            raise UserError(no_images_message('--dataroot', self.root))
        self.paths = first(self.paths, min(opt.ntest, opt.max_dataset_size))

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        rel_path = self.paths[index]
        start = time.perf_counter()
        try:
            face = read_face(os.path.join(self.root, rel_path), self.load_size)
        except ImageReadError as err:
            return {'LR': None, 'LR_paths': rel_path, 'error': str(err)}
        return {'LR': uint8_to_tensor(face), 'LR_paths': rel_path, 'seconds': time.perf_counter() - start}

    @staticmethod
    def collate(samples):
        """Stack the readable samples (with the seconds each took to load); list the unreadable ones as
        (path, message)."""
        good = [s for s in samples if s['LR'] is not None]
        return {'LR': torch.stack([s['LR'] for s in good]) if good else None,
                'LR_paths': [s['LR_paths'] for s in good], 'seconds': [s['seconds'] for s in good],
                'errors': [(s['LR_paths'], s['error']) for s in samples if s['LR'] is None]}


DATASET_CLASS = SingleDataset
