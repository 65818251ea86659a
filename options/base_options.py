"""Flags shared by training and testing, with the original project's names and defaults."""
import argparse
import os

import torch

import data
import models
from utils.devices import select_device
from utils.distributed import launched_by_torchrun

NORM_CHOICES = ('bn', 'in', 'gn', 'none')


def unquoted(value):
    """Strip one pair of surrounding quotes: Windows shells pass `--Gnorm 'in'` with the quotes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in '\'"':
        value = value[1:-1].strip()
    return value


def unquoted_lower(value):
    return unquoted(value).lower()


class BaseOptions:
    """Builds the parser in two passes: the chosen model and dataset may add their own flags."""

    is_train = False

    def initialize(self, parser):
        parser.add_argument('--dataroot', type=unquoted, default=None, help='folder of input images')
        parser.add_argument('--name', type=unquoted, default='experiment_name',
                            help='experiment name: checkpoints and results are stored under it')
        parser.add_argument('--gpus', type=int, default=1,
                            help='number of GPUs (the ones with most free memory); 0 runs on the CPU')
        parser.add_argument('--seed', type=int, default=123, help='random seed')
        parser.add_argument('--checkpoints_dir', type=unquoted, default='./check_points',
                            help='checkpoints are saved in <checkpoints_dir>/<name>/')
        parser.add_argument('--model', type=unquoted_lower, default='sparnet', choices=models.MODEL_NAMES,
                            help='sparnet (128x128, x8 from a 16x16 face) or sparnethd (512x512 blind restoration)')
        parser.add_argument('--res_depth', type=int, default=10, help='residual FAU blocks in the generator')
        parser.add_argument('--att_name', type=unquoted_lower, default='spar', choices=('spar', 'spar3d'),
                            help='spatial attention: spar (2D mask) or spar3d (3D mask)')
        parser.add_argument('--bottleneck_size', type=int, default=4, help='hourglass bottleneck size in pixels')
        parser.add_argument('--Gnorm', type=unquoted_lower, default=None, choices=NORM_CHOICES,
                            help='generator norm (default: bn for sparnet, in for sparnethd)')
        parser.add_argument('--Dnorm', type=unquoted_lower, default='in', choices=NORM_CHOICES,
                            help='discriminator norm')
        parser.add_argument('--num_D', type=int, default=3, help='scales of the multi-scale discriminator')
        parser.add_argument('--n_layers_D', type=int, default=4, help='stride-2 layers per discriminator')
        parser.add_argument('--dataset_name', type=unquoted_lower, default='single', choices=data.DATASET_NAMES,
                            help='dataset loader (default: single for testing; for training celeba with '
                                 'sparnet, ffhq with sparnethd)')
        parser.add_argument('--batch_size', type=int, default=16, help='images per batch')
        parser.add_argument('--load_size', type=int, default=None,
                            help='images are resized to this size (default: 128 sparnet, 512 sparnethd)')
        parser.add_argument('--num_threads', type=int, default=8,
                            help='data loading processes (capped at the number of CPU cores)')
        parser.add_argument('--epoch', type=unquoted, default='latest',
                            help='checkpoint to load from checkpoints_dir: latest or an epoch number')
        parser.add_argument('--load_iter', type=int, default=0,
                            help='if > 0, load the checkpoint of that iteration instead of --epoch')
        parser.add_argument('--pretrain_model_path', type=unquoted, default='',
                            help='generator weights (.pth) to load, e.g. a released checkpoint')
        return parser

    def gather_options(self, args=None):
        parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        parser = self.initialize(parser)
        known, _ = parser.parse_known_args(args)
        model_class = models.get_model_class(known.model)
        parser = model_class.modify_commandline_options(parser, self.is_train)
        if self.is_train:
            parser.set_defaults(dataset_name=model_class.default_train_dataset)
        known, _ = parser.parse_known_args(args)
        parser = data.get_dataset_class(known.dataset_name).modify_commandline_options(parser, self.is_train)
        self.parser = parser
        return parser.parse_args(args)

    def parse(self, args=None):
        opt = self.gather_options(args)
        opt.is_train = self.is_train
        model_class = models.get_model_class(opt.model)
        if opt.Gnorm is None:
            opt.Gnorm = model_class.default_gnorm
        if opt.load_size is None:
            opt.load_size = model_class.default_load_size
        if opt.num_threads is not None:  # None: test options choose by device
            opt.num_threads = max(0, min(opt.num_threads, os.cpu_count() or 1))
        if launched_by_torchrun():  # utils.distributed.setup gives each process its own device
            opt.device, opt.gpu_ids = torch.device('cpu'), []
        else:
            opt.device, opt.gpu_ids = select_device(opt.gpus)
        torch.manual_seed(opt.seed)
        self.opt = opt
        return opt
