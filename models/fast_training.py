"""A faster training step for the same network, parameters and state-dict keys.

- channels-last parameters and batches (oneDNN's native layout: no reorder around each conv);
- each `nearest x2 -> reflection pad -> 3x3 conv` runs as one stride-2 transposed 4x4 conv on the
  edge-padded input, its kernel derived from the 3x3 weight in the graph, so gradients still reach
  `conv2d.weight` (16 instead of 36 multiply-adds per input pixel, forward and backward);
- padding in the activations' own dtype: CPU autocast runs the reflection and replication pads in
  fp32 (they are on its fp32 list), so at bf16 each conv's input was copied up, padded in fp32 and
  copied back down (the values are the same either way: a pad only copies them);
- Adam with its fused kernel.
"""
from collections.abc import Iterable
from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from archs.blocks import ConvLayer
from archs.folded_sparnet import upsampling_conv_weight

Net = TypeVar('Net', bound=nn.Module)


def pad_by_one(x: torch.Tensor, mode: str) -> torch.Tensor:
    """`F.pad(x, (1, 1, 1, 1), mode)` in x's dtype, whatever autocast would do."""
    with torch.autocast(x.device.type, enabled=False):
        return F.pad(x, (1, 1, 1, 1), mode=mode)


class PaddingConvLayer(ConvLayer):
    """ConvLayer padding its input in the input's dtype (same parameters and keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.norm(self.conv2d(pad_by_one(x, 'reflect'))))


class UpsamplingConvLayer(ConvLayer):
    """ConvLayer whose upsampling conv is computed as a transposed conv (same parameters and keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv2d
        for hook in conv._forward_pre_hooks.values():  # spectral norm sets conv.weight (with power iteration)
            hook(conv, (x,))
        weight = upsampling_conv_weight(conv.weight)
        x = F.conv_transpose2d(pad_by_one(x, 'replicate'), weight, conv.bias, stride=2, padding=3)
        return self.relu(self.norm(x))


def prepare_training_net(net: Net) -> Net:
    """Make `net` (in place) train faster: channels-last, transposed upsampling convs, pads in the
    activations' dtype. Returns `net`.

    Its outputs, gradients and state dict are those of the plain network (up to float rounding).
    Feed it channels-last batches (`channels_last`) for the full effect.
    """
    for module in net.modules():
        if type(module) is ConvLayer:
            module.__class__ = UpsamplingConvLayer if module.upsample else PaddingConvLayer
    return net.to(memory_format=torch.channels_last)


def channels_last(batch: torch.Tensor) -> torch.Tensor:
    """A 4-D tensor in channels-last memory format (same values)."""
    return batch.contiguous(memory_format=torch.channels_last)


def fused_adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused (single-kernel) update where this PyTorch has it, else the foreach one."""
    try:
        return torch.optim.Adam(params, lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr, betas=betas)
