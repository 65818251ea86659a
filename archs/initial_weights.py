"""Initial weights of networks built for training, as the published recipe drew them.

The published code initialised every conv (and linear) weight with N(0, 0.02) and zeroed its
bias, and drew batch-norm scales from N(1, 0.02) with zero shifts; other layers (instance norm,
group norm) keep PyTorch's defaults. It ran after spectral norm was added, so under spectral
norm the drawn values are those of `weight_orig`. The spectral-norm vectors `weight_u` and
`weight_v` stay the random unit vectors drawn when spectral norm was added: they are independent
of any weight, so they are as good a start for the new `weight_orig` as fresh ones, and the
first training forward power-iterates them, as it did in the published code.
"""
from typing import TypeVar

import torch
from torch import nn

INIT_TYPES = ('normal', 'xavier', 'kaiming', 'orthogonal')

Net = TypeVar('Net', bound=nn.Module)


def _init_weight(weight: torch.Tensor, init_type: str, gain: float) -> None:
    if init_type == 'normal':
        nn.init.normal_(weight, 0.0, gain)
    elif init_type == 'xavier':
        nn.init.xavier_normal_(weight, gain=gain)
    elif init_type == 'kaiming':
        nn.init.kaiming_normal_(weight, a=0, mode='fan_in')  # the published call: gain not used
    elif init_type == 'orthogonal':
        nn.init.orthogonal_(weight, gain=gain)
    else:
        raise ValueError(f"init_type must be one of {INIT_TYPES}, got {init_type!r}")


@torch.no_grad()
def init_weights(net: Net, init_type: str = 'normal', gain: float = 0.02) -> Net:
    """Draw the weights of `net` in place (`--init_type`, `--init_gain`); returns `net`."""
    for module in net.modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            _init_weight(getattr(module, 'weight_orig', module.weight), init_type, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return net
