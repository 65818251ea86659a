"""The exponential moving average generator `netH` of SPARNetHD (the released weights are H's).

The published code, at every iteration before G's step, averaged H towards G (every state-dict
entry) and then ran H forward in train mode. That forward changed H in two ways: spectral norm
power-iterated H's own `weight_u`/`weight_v` on H's own `weight_orig` (so the saved u, v are
H's singular vectors and give H's sigma), and batch norm, if any, updated H's running
statistics. `ema_step` makes the same changes; it skips the forward itself (20-25 % of a
SPARNetHD step on the CPU), when H holds no batch-norm statistics (as with the released `--Gnorm
in`), since the power iteration alone then gives the same H.
"""
import copy

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm


def ema_copy(net):
    """A copy of `net` without gradients, kept as its moving average (in `net`'s mode: train, as published)."""
    return copy.deepcopy(net).requires_grad_(False)


@torch.no_grad()
def ema_update(ema_net: nn.Module, net: nn.Module, decay: float) -> None:
    """`H = decay * H + (1 - decay) * G` over the whole state dict (buffers too; integer ones copied)."""
    current = net.state_dict()
    for name, average in ema_net.state_dict().items():
        if average.is_floating_point():
            average.mul_(decay).add_(current[name], alpha=1.0 - decay)
        else:
            average.copy_(current[name])


@torch.no_grad()
def power_iterate(net):
    """What a train-mode forward does to the spectral-norm vectors of `net`: one power iteration on its own weights."""
    for module in net.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm):
                hook(module, None)


def has_batch_norm_statistics(net):
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in net.modules())


@torch.no_grad()
def ema_step(ema_net, net, decay, inputs):
    """The published EMA step: average H towards G, then what H's train-mode forward on `inputs` changed in H."""
    ema_update(ema_net, net, decay)
    if has_batch_norm_statistics(ema_net):
        ema_net(inputs)
    else:
        power_iterate(ema_net)
