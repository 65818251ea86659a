"""Learning-rate factor per iteration for `--lr_policy`, as a LambdaLR stepped every iteration."""
import math

import torch

LR_POLICIES = ('constant', 'linear', 'step', 'cosine')


def lr_factor(policy, iteration, total_iters, iters_per_epoch, opt):
    """Multiplier of the initial lr after `iteration` completed iterations."""
    if policy == 'constant':
        return 1.0
    if policy == 'linear':
        decay_iters = max(1, opt.n_epochs_decay * iters_per_epoch)
        return 1.0 - max(0, iteration - (total_iters - decay_iters)) / decay_iters
    if policy == 'step':
        return opt.lr_decay_gamma ** (iteration // opt.lr_decay_iters)
    if policy == 'cosine':
        return 0.5 * (1.0 + math.cos(math.pi * min(iteration, total_iters) / total_iters))
    raise ValueError(f"unknown --lr_policy {policy!r}")


def create_scheduler(optimizer, opt, iters_per_epoch, start=0):
    """The scheduler of `--lr_policy`, at the lr of iteration `start` (a run started or resumed part-way)."""
    total_iters = max(1, opt.total_epochs * iters_per_epoch)
    for group in optimizer.param_groups:
        group.setdefault('initial_lr', group['lr'])
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda iteration: lr_factor(opt.lr_policy, iteration, total_iters, iters_per_epoch, opt),
        last_epoch=start - 1)
