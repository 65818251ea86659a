"""A faster training step for the same network, parameters and state-dict keys.

- channels-last parameters and batches (oneDNN's native layout: no reorder around each conv);
- each `nearest x2 -> reflection pad -> 3x3 conv` runs as one stride-2 transposed 4x4 conv on the
  edge-padded input, its kernel derived from the 3x3 weight in the graph, so gradients still reach
  `conv2d.weight` (16 instead of 36 multiply-adds per input pixel, forward and backward);
- padding in the activations' own dtype: CPU autocast runs the reflection and replication pads in
  fp32 (they are on its fp32 list), so at bf16 each conv's input was copied up, padded in fp32 and
  copied back down (the values are the same either way: a pad only copies them);
- bf16/fp16 instance norms that keep channels-last maps channels-last (`RowsInstanceNorm2d`);
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


class RowsInstanceNorm2d(nn.InstanceNorm2d):
    """InstanceNorm2d that keeps bf16/fp16 channels-last maps channels-last (same parameters and keys).

    PyTorch's instance_norm copies such a map to NCHW and returns it NCHW, which the next conv copies
    back; batch norm's kernel over each sample's (pixels, channels) rows reads and writes
    channels-last, 4x faster forward and backward here. It sums the pixels in sequence (about 3e-4
    off at 512x512 in fp32, below bf16's rounding), so fp32 maps keep instance_norm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dtype == torch.float32 or self.track_running_stats or x.dim() != 4 or x.shape[2] * x.shape[3] < 2
                or not x.is_contiguous(memory_format=torch.channels_last)):
            return super().forward(x)
        n, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view
        normalized = torch.stack([F.batch_norm(rows[i], None, None, self.weight, self.bias, True, 0.0, self.eps)
                                  for i in range(n)])
        return normalized.view(n, h, w, c).permute(0, 3, 1, 2)


def prepare_training_net(net: Net) -> Net:
    """Make `net` (in place) train faster: channels-last, transposed upsampling convs, pads in the
    activations' dtype, channels-last bf16/fp16 instance norms. Returns `net`.

    Its outputs, gradients and state dict are those of the plain network (up to float rounding).
    Feed it channels-last batches (`channels_last`) for the full effect.
    """
    for module in net.modules():
        if type(module) is ConvLayer:
            module.__class__ = UpsamplingConvLayer if module.upsample else PaddingConvLayer
        elif type(module) is nn.InstanceNorm2d:
            module.__class__ = RowsInstanceNorm2d
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
