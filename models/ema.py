"""The exponential moving average generator `netH` of SPARNetHD (the released weights are H's)."""
import copy

import torch


def ema_copy(net):
    """A frozen copy of `net` in eval mode, to be kept as its moving average."""
    return copy.deepcopy(net).eval().requires_grad_(False)


@torch.no_grad()
def ema_update(ema_net, net, decay):
    """`H = decay * H + (1 - decay) * G` over the whole state dict (buffers too; integer ones copied)."""
    current = net.state_dict()
    for name, average in ema_net.state_dict().items():
        if average.is_floating_point():
            average.mul_(decay).add_(current[name], alpha=1.0 - decay)
        else:
            average.copy_(current[name])
