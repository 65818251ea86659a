"""A train.py run: what it reads and writes planned and checked before any work, its folders held while it
trains (a second run into the same checkpoints or logs is refused), then the Trainer."""
import argparse
import os

from training.logger import archive_old_logs
from training.trainer import Trainer, check_new_run
from utils.image_io import is_image_file
from utils.output_plan import OutputPlan


def output_plan(opt: argparse.Namespace) -> OutputPlan:
    """Reads the training and validation faces, the weights given; writes `<checkpoints_dir>/<name>` and
    `<log_dir>/<name>` (earlier logs of a new run set aside, as `archive_old_logs` names them)."""
    plan = OutputPlan()
    plan.reads_folder('--dataroot', opt.dataroot, is_image_file)
    plan.reads_folder('--val_dataroot', opt.val_dataroot, is_image_file)
    for flag in ('pretrain_model_path', 'vgg_weights'):
        plan.reads(f'--{flag}', getattr(opt, flag, None))
    plan.writes_folder('--checkpoints_dir', os.path.join(opt.checkpoints_dir, opt.name))
    plan.writes_folder('--log_dir', os.path.join(opt.log_dir, opt.name),
                       set_aside=None if opt.continue_train else archive_old_logs)
    return plan


def train(opt: argparse.Namespace) -> int:
    """Exit code of a train.py run of `opt`. Under torchrun the first process holds the folders for all (the
    others write none of them)."""
    plan = output_plan(opt)
    plan.check()
    if not opt.continue_train:
        check_new_run(opt)
    if int(os.environ.get('RANK', '0')) != 0:
        return Trainer(opt).run()
    with plan.claimed():
        return Trainer(opt).run()
