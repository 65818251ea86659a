"""Flags of train.py: the original project's names (train.sh runs unchanged) plus resume, logging and DDP ones."""
import argparse
from collections.abc import Sequence

from losses.gan import GAN_MODES
from metrics.psnr_ssim import add_y_quantization_argument
from models.lr_policy import LR_POLICIES
from options.base_options import BaseOptions
from utils.cli import (
    input_path,
    non_negative_int,
    number_type,
    output_folder,
    positive_float,
    positive_int,
    unquoted,
    unquoted_lower,
)
from utils.devices import PRECISIONS

DEBUG_EPOCHS = 7  # the published --debug loop stopped after its 7th epoch


class TrainOptions(BaseOptions):
    is_train = True

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        parser.add_argument('--total_epochs', type=positive_int, default=50,
                            help='epochs to train (exactly; see --published_epochs)')
        parser.add_argument('--published_epochs', action='store_true',
                            help='train --total_epochs + 1 epochs, as the published loop did '
                                 '(range(0, total_epochs + 1)); train.sh passes it to reproduce the released models')
        parser.add_argument('--resume_epoch', type=non_negative_int, default=0,
                            help='start at this epoch (0 = the first) and --resume_iter batches into it, as the '
                                 'published flags; with --continue_train the saved position is used instead')
        parser.add_argument('--resume_iter', type=non_negative_int, default=0, help='see --resume_epoch')
        parser.add_argument('--lr', type=positive_float, default=0.0002,
                            help='generator learning rate of sparnet (Adam)')
        parser.add_argument('--g_lr', type=positive_float, default=0.0001,
                            help='generator learning rate of sparnethd (Adam)')
        parser.add_argument('--d_lr', type=positive_float, default=0.0004,
                            help='discriminator learning rate of sparnethd (Adam)')
        parser.add_argument('--gan_mode', type=unquoted_lower, default='hinge', choices=GAN_MODES,
                            help='GAN loss of sparnethd')
        parser.add_argument('--beta1', type=number_type(float, low=0, below=1), default=0.9,
                            help='Adam beta1 (beta2 is 0.99)')
        parser.add_argument('--lr_policy', type=unquoted_lower, default='constant', choices=LR_POLICIES,
                            help='learning-rate schedule, stepped every iteration. constant: how the released '
                                 'models were trained (the published loop never stepped its scheduler); '
                                 'linear: constant, then down to 0 over the last --n_epochs_decay epochs; '
                                 'step: times --lr_decay_gamma every --lr_decay_iters iterations; '
                                 'cosine: cosine annealing to 0 over the whole run')
        parser.add_argument('--n_epochs_decay', type=non_negative_int, default=10,
                            help='linear policy: epochs, at the end of the run, over which lr goes to 0')
        parser.add_argument('--lr_decay_iters', type=positive_int, default=50000,
                            help='step policy: iterations between two decays')
        parser.add_argument('--lr_decay_gamma', type=positive_float, default=0.1, help='step policy: decay factor')
        parser.add_argument('--visual_freq', type=positive_int, default=400,
                            help='iterations between two image grids (LR | SR | EMA SR | HR) in TensorBoard')
        parser.add_argument('--print_freq', type=positive_int, default=100,
                            help='iterations between two console lines and TensorBoard scalars')
        parser.add_argument('--save_latest_freq', type=positive_int, default=5000,
                            help='iterations between two saves of the `latest` checkpoint (resumable)')
        parser.add_argument('--save_iter_freq', type=non_negative_int, default=10000,
                            help='iterations between two `iter_N` network snapshots (0: none)')
        parser.add_argument('--save_epoch_freq', type=non_negative_int, default=5,
                            help='epochs between two `epoch_N` network snapshots (the last epoch is always saved)')
        parser.add_argument('--continue_train', action='store_true',
                            help='resume from <checkpoints_dir>/<name>/latest exactly where it stopped')
        parser.add_argument('--overwrite', action='store_true',
                            help='start a new run although <checkpoints_dir>/<name> holds a resumable one '
                                 '(refused otherwise); its checkpoints are replaced as this run saves')
        parser.add_argument('--reset_optimizer', action='store_true',
                            help='with --continue_train: new optimizer and scheduler states, at the learning rates '
                                 'of the current flags (e.g. lower ones after a divergence); the networks and the '
                                 'position are the saved ones')
        parser.add_argument('--log_dir', type=output_folder, default='./train_log',
                            help='TensorBoard events and the text log go to <log_dir>/<name>/ '
                                 '(an older one of the same name is archived)')
        parser.add_argument('--val_dataroot', type=input_path, default='',
                            help='folder of HR faces: PSNR/SSIM of G (and EMA H) and of the bicubic baseline on '
                                 'it, and a face grid PNG, every --val_freq iterations')
        parser.add_argument('--val_freq', type=positive_int, default=5000, help='iterations between two validations')
        add_y_quantization_argument(parser)
        parser.add_argument('--fast_train', action='store_true',
                            help='one device only: run the upsampling convs as transposed convs, channels-last, '
                                 'with fused Adam (about 1.5x faster on CPU; same parameters, and losses equal '
                                 'up to float rounding)')
        parser.add_argument('--precision', type=unquoted_lower, default='fp32', choices=tuple(PRECISIONS),
                            help='precision of the forward passes (autocast; losses, weights, optimizer states and '
                                 'EMA stay fp32): bf16 on CPUs with AVX512-BF16 or AMX and on GPUs that have it, '
                                 'fp16 on GPUs only (with a loss scaler); combines with --fast_train')
        parser.add_argument('--accum_steps', type=positive_int, default=1,
                            help='gradient accumulation: an iteration (one optimizer step) takes this many batches '
                                 'of --batch_size, an effective batch of batch_size x accum_steps')
        parser.add_argument('--sync_bn', action='store_true',
                            help='with torchrun on GPUs: batch norm statistics over all processes')
        parser.add_argument('--deterministic', action='store_true',
                            help='deterministic algorithms only (slower on GPU): repeatable runs and resumes')
        self.original_flags.add_argument('--phase', type=unquoted, default='train')
        self.original_flags.add_argument('--save_by_iter', action='store_true')
        for flag, default in (('--epoch_count', 1), ('--n_epochs', 10), ('--niter_decay', 100)):
            self.original_flags.add_argument(flag, type=int, default=default)
        return parser

    ignored_flags = BaseOptions.ignored_flags + ('phase', 'save_by_iter', 'epoch_count', 'n_epochs', 'niter_decay')

    def parse(self, args: Sequence[str] | None = None) -> argparse.Namespace:
        """`total_epochs` becomes the epochs to train: one more with --published_epochs, at most 7 with --debug."""
        opt = super().parse(args)
        opt.total_epochs += int(opt.published_epochs)
        if opt.debug:
            opt.total_epochs = min(opt.total_epochs, DEBUG_EPOCHS)
        return opt
