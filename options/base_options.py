"""Flags shared by training and testing, with the original project's names and defaults."""
import argparse
import logging
import os
from collections.abc import Sequence

import torch

import data
import models
from archs.blocks import NORM_TYPES
from archs.initial_weights import INIT_TYPES
from options.generator_flags import add_generator_arguments, resolve_generator_options
from utils.cli import (
    ArgumentParser,
    UserError,
    input_path,
    non_negative_int,
    number_type,
    output_folder,
    positive_float,
    positive_int,
    unquoted,
    unquoted_lower,
)
from utils.devices import select_device
from utils.distributed import launched_by_torchrun

log = logging.getLogger('options')
NOT_GIVEN = object()


class BaseOptions:
    """Builds the parser in two passes: the chosen model and dataset may add their own flags.

    The generator flags left out are taken from the weights between the passes (options/generator_flags.py):
    they decide the model, hence its flags.
    """

    is_train = False

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument('--dataroot', type=input_path, default=None, help='folder of input images')
        parser.add_argument('--name', type=unquoted, default='experiment_name',
                            help='experiment name: checkpoints and results are stored under it')
        parser.add_argument('--gpus', type=int, default=1,
                            help='number of GPUs (the ones with most free memory); 0 runs on the CPU')
        parser.add_argument('--seed', type=int, default=123, help='random seed')
        parser.add_argument('--checkpoints_dir', type=output_folder if self.is_train else input_path,
                            default='./check_points', help='checkpoints are saved in <checkpoints_dir>/<name>/')
        parser.add_argument('--Dnorm', type=unquoted_lower, default='in', choices=NORM_TYPES,
                            help='discriminator norm')
        parser.add_argument('--num_D', type=positive_int, default=3, help='scales of the multi-scale discriminator')
        parser.add_argument('--n_layers_D', type=positive_int, default=4, help='stride-2 layers per discriminator')
        parser.add_argument('--init_type', type=unquoted_lower, default='normal', choices=INIT_TYPES,
                            help='training: initial conv weights, N(0, --init_gain) for normal (the published '
                                 'recipe); batch-norm scales are N(1, --init_gain)')
        parser.add_argument('--init_gain', type=positive_float, default=0.02,
                            help='training: std of normal, gain of xavier and orthogonal initial weights')
        parser.add_argument('--dataset_name', type=unquoted_lower, default='single', choices=data.DATASET_NAMES,
                            help='dataset loader (default: single for testing; for training celeba with '
                                 'sparnet, ffhq with sparnethd)')
        parser.add_argument('--batch_size', type=positive_int, default=16, help='images per batch')
        parser.add_argument('--load_size', type=positive_int, default=None,
                            help='images are resized to this size (default: that of the released model, else '
                                 '128 sparnet, 512 sparnethd)')
        parser.add_argument('--num_threads', type=non_negative_int, default=8,
                            help='data loading processes (capped at the number of CPU cores)')
        parser.add_argument('--epoch', type=unquoted, default='latest',
                            help='checkpoint to load from checkpoints_dir: latest or an epoch number')
        parser.add_argument('--load_iter', type=non_negative_int, default=0,
                            help='if > 0, load the checkpoint of that iteration instead of --epoch')
        parser.add_argument('--max_dataset_size', type=number_type(int, low=1, infinite=True), default=float('inf'),
                            help='use at most this many images of --dataroot (the first ones in sorted order)')
        parser.add_argument('--suffix', type=unquoted, default='',
                            help='--name becomes <name>_<suffix>, {flag} in the suffix replaced by its value, '
                                 'e.g. {model}_size{load_size}')
        parser.add_argument('--verbose', action='store_true', help='print the networks and their parameter counts')
        parser.add_argument('--debug', action='store_true',
                            help='training smoke test: one batch per epoch, at most 7 epochs (as published)')
        parser.add_argument('--serial_batches', action='store_true',
                            help='training: batches take the images in sorted order instead of shuffled')
        self.original_flags = parser.add_argument_group('accepted for the original commands, without effect')
        for flag, default in (('--input_nc', 3), ('--output_nc', 3), ('--ngf', 64), ('--ndf', 64)):
            self.original_flags.add_argument(flag, type=int, default=default)
        self.original_flags.add_argument('--preprocess', type=unquoted, default='none')
        return add_generator_arguments(parser)

    # Flags that parse but change nothing here (the published code ignored most of them too).
    ignored_flags = ('input_nc', 'output_nc', 'ngf', 'ndf', 'preprocess')

    def gather_options(self, args: Sequence[str] | None = None, default_weights: str = '') -> argparse.Namespace:
        parser = ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        parser = self.initialize(parser)
        known, _ = parser.parse_known_args(args)
        self.check_given(known)
        if not self.needs_default_weights(known):
            default_weights = ''
        self.generator = resolve_generator_options(known, self.is_train, default_weights)
        model_class = models.get_model_class(self.generator['model'])
        parser = model_class.modify_commandline_options(parser, self.is_train)
        if self.is_train:
            parser.set_defaults(dataset_name=model_class.default_train_dataset)
        known, _ = parser.parse_known_args(args)
        parser = data.get_dataset_class(known.dataset_name).modify_commandline_options(parser, self.is_train)
        self.parser = parser
        return parser.parse_args(args)

    def check_given(self, known: argparse.Namespace) -> None:
        """UserError for contradictory flags as given, before any weights are fetched."""
        smallest = min(models.get_model_class(name).min_load_size for name in models.MODEL_NAMES)
        if known.load_size is not None and known.load_size < smallest:
            raise UserError(f'--load_size {known.load_size}: the networks run on images of at least '
                            f'{smallest}x{smallest}; give a larger --load_size')

    def needs_default_weights(self, known: argparse.Namespace) -> bool:
        """Whether the flags as given leave the generator to the default weights of a test run (not when another
        file is the network)."""
        return True

    def parse(self, args: Sequence[str] | None = None, default_weights: str = '') -> argparse.Namespace:
        """The options of `args` (default: sys.argv). `default_weights` serves a test run that has no
        --pretrain_model_path and no checkpoint in --checkpoints_dir."""
        opt = self.gather_options(args, default_weights)
        opt.is_train = self.is_train
        vars(opt).update(self.generator)
        model_class = models.get_model_class(opt.model)
        if opt.load_size < model_class.min_load_size:
            raise UserError(f'--load_size {opt.load_size}: {opt.model} runs on images of at least '
                            f'{model_class.min_load_size}x{model_class.min_load_size}; give a larger --load_size')
        if opt.num_threads is not None:  # None: test options choose by device
            opt.num_threads = max(0, min(opt.num_threads, os.cpu_count() or 1))
        if launched_by_torchrun():  # utils.distributed.setup gives each process its own device
            opt.device, opt.gpu_ids = torch.device('cpu'), []
        else:
            opt.device, opt.gpu_ids = select_device(opt.gpus)
        if opt.suffix:
            opt.name = f'{opt.name}_{name_suffix(opt)}'
        self.warn_ignored(args, models.get_model_class(opt.model))
        torch.manual_seed(opt.seed)
        self.opt = opt
        return opt

    def warn_ignored(self, args: Sequence[str] | None, model_class: type) -> None:
        """One warning line naming the flags given that have no effect here."""
        names = self.ignored_flags + (model_class.ignored_train_flags if self.is_train else ())
        given = given_flags(self.parser, args, names)
        if given:
            log.warning('ignored (accepted for the published commands, no effect here): %s',
                        ' '.join(f'--{name}' for name in given))


def name_suffix(opt: argparse.Namespace) -> str:
    """`--suffix` with each {flag} replaced by its value, as the published code built it."""
    try:
        return opt.suffix.format(**vars(opt))
    except (KeyError, IndexError, ValueError) as err:
        raise UserError(f"--suffix {opt.suffix!r}: {err!r} is not a flag name or not a valid format "
                        "(write flags as {load_size})") from None


def given_flags(parser: argparse.ArgumentParser, args: Sequence[str] | None, names: Sequence[str]) -> list[str]:
    """Which of the options `names` the command line `args` sets, whatever their values."""
    saved = {name: parser.get_default(name) for name in names}
    parser.set_defaults(**dict.fromkeys(names, NOT_GIVEN))
    try:
        parsed, _ = parser.parse_known_args(args)
    finally:
        parser.set_defaults(**saved)
    return [name for name in names if getattr(parsed, name) is not NOT_GIVEN]
