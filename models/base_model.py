"""What every model shares: building the generator, checkpoint paths, loading weights, inference."""
import os

import torch

from .networks import GeneratorSpec
from .weights import load_generator_weights


class BaseModel:
    default_gnorm = 'bn'
    default_load_size = 128
    inference_net_name = 'G'  # whose weights test.py uses when loading from checkpoints_dir

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return parser

    def __init__(self, opt):
        self.opt = opt
        self.device = opt.device
        self.spec = GeneratorSpec.from_options(opt)
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.netG = self.spec.build()
        self.inference_net = None

    def checkpoint_path(self, tag, net_name):
        """`<checkpoints_dir>/<name>/<tag>_net_<net_name>.pth`, tag being `latest`, `iter_N` or `epoch_N`."""
        return os.path.join(self.save_dir, f'{tag}_net_{net_name}.pth')

    def load_tag(self):
        if self.opt.load_iter > 0:
            return f'iter_{self.opt.load_iter}'
        epoch = str(self.opt.epoch)
        return f'epoch_{epoch}' if epoch.isdigit() else epoch

    def inference_weights_path(self):
        return self.opt.pretrain_model_path or self.checkpoint_path(self.load_tag(), self.inference_net_name)

    def setup_inference(self):
        """Load the weights strictly and prepare the network that `test()` runs."""
        load_generator_weights(self.netG, self.inference_weights_path(), self.spec)
        self.netG.to(self.device).eval()
        self.inference_net = self.netG
        return self

    def set_input(self, batch):
        self.LR = batch['LR'].to(self.device)
        self.image_paths = batch['LR_paths']

    def test(self):
        """Super-resolve `self.LR` into `self.SR`, clamped to [-1, 1] like the published code."""
        with torch.inference_mode():
            self.SR = self.inference_net(self.LR).float().clamp_(-1, 1)
        return self.SR
