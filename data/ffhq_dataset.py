"""SPARNetHD training pairs (FFHQ): the HR face at --load_size and its blindly degraded LR version.

The degradation (gray, blur, downscale, noise, JPEG, upscale back) is `data.degradations`, with
its probabilities and ranges as `--deg_*` flags defaulting to the released recipe. Images that are
not square are centre-cropped first; FFHQ's 1024x1024 faces are PIL-bicubic reduced to 512.
"""
import numpy as np
from PIL import Image

from data.base_dataset import PairedDataset, resize_square
from data.degradations import add_degradation_options, config_from_options, degrade_pair


class FFHQDataset(PairedDataset):

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return add_degradation_options(parser) if is_train else parser

    def __init__(self, opt, root=None, augment=True):
        super().__init__(opt, root, augment)
        self.degradation = config_from_options(opt)

    def hr_face(self, img, rng):
        return np.asarray(resize_square(Image.fromarray(img), self.load_size))

    def degrade(self, hr, rng):
        hr, lr = degrade_pair(hr, rng, self.degradation)
        return lr, hr


DATASET_CLASS = FFHQDataset
