"""Building blocks of SPARNet, named so that state-dict keys match the released checkpoints.

Every module keeps the attribute names of the published code (`conv2d`, `norm.norm`,
`relu.func`, `preact_func`, `att_func.b1_L`, ...): the released `.pth` files address
parameters by those names.
"""
from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as F

NORM_TYPES = ('bn', 'in', 'gn', 'none')
RELU_TYPES = ('leakyrelu', 'relu', 'prelu', 'selu', 'none')
ATT_NAMES = ('spar', 'spar3d')

Net = TypeVar('Net', bound=nn.Module)


class NormLayer(nn.Module):
    """Normalisation wrapped as `.norm`, giving the released keys `*.norm.norm.*`."""

    def __init__(self, channels: int, norm_type: str = 'bn') -> None:
        super().__init__()
        if norm_type == 'bn':
            self.norm = nn.BatchNorm2d(channels)
        elif norm_type == 'in':
            self.norm = nn.InstanceNorm2d(channels, affine=True)
        elif norm_type == 'gn':
            self.norm = nn.GroupNorm(32, channels)
        elif norm_type == 'none':
            self.norm = nn.Identity()
        else:
            raise ValueError(f"norm_type must be one of {NORM_TYPES}, got {norm_type!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ReluLayer(nn.Module):
    """Activation wrapped as `.func` (a PReLU's slopes are saved as `*.func.weight`)."""

    def __init__(self, channels: int, relu_type: str = 'leakyrelu') -> None:
        super().__init__()
        if relu_type == 'leakyrelu':
            self.func = nn.LeakyReLU(0.2)
        elif relu_type == 'relu':
            self.func = nn.ReLU()
        elif relu_type == 'prelu':
            self.func = nn.PReLU(channels)
        elif relu_type == 'selu':
            self.func = nn.SELU()
        elif relu_type == 'none':
            self.func = nn.Identity()
        else:
            raise ValueError(f"relu_type must be one of {RELU_TYPES}, got {relu_type!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.func(x)


class ConvLayer(nn.Module):
    """[nearest x2 up] -> reflection pad -> 3x3 conv [stride 2 when 'down'] -> norm -> activation.

    The conv has a bias only without normalisation (a norm's shift makes it redundant).
    """

    def __init__(self, in_channels: int, out_channels: int, scale: str = 'none', norm_type: str = 'none',
                 relu_type: str = 'none') -> None:
        super().__init__()
        self.upsample = scale == 'up'
        self.reflection_pad = nn.ReflectionPad2d(1)
        stride = 2 if scale == 'down' else 1
        self.conv2d = nn.Conv2d(in_channels, out_channels, 3, stride, bias=norm_type == 'none')
        self.relu = ReluLayer(out_channels, relu_type)
        self.norm = NormLayer(out_channels, norm_type)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode='nearest')
        x = self.conv2d(self.reflection_pad(x))
        return self.relu(self.norm(x))


class HourGlassBlock(nn.Module):
    """Hourglass that turns a feature map into a spatial attention mask in (0, 1).

    Level L: `b1_L` keeps the resolution, `b2_L` halves it and feeds level L-1 (or
    `b2_plus_1` at the bottom), `b3_L` doubles it back; the two branches are summed.
    """

    def __init__(self, depth: int, c_in: int, c_out: int, c_mid: int = 64, norm_type: str = 'bn',
                 relu_type: str = 'leakyrelu') -> None:
        super().__init__()
        self.depth = depth
        if depth == 0:
            return
        kwargs = {'norm_type': norm_type, 'relu_type': relu_type}
        self._add_level(depth, c_in, c_mid, kwargs)
        self.out_block = nn.Sequential(ConvLayer(c_mid, c_out), nn.Sigmoid())

    def _add_level(self, level, c_in, c_mid, kwargs):
        c1 = c_in if level == self.depth else c_mid
        self.add_module(f'b1_{level}', ConvLayer(c1, c_mid, **kwargs))
        self.add_module(f'b2_{level}', ConvLayer(c1, c_mid, scale='down', **kwargs))
        if level > 1:
            self._add_level(level - 1, c_in, c_mid, kwargs)
        else:
            self.add_module('b2_plus_1', ConvLayer(c_mid, c_mid, **kwargs))
        self.add_module(f'b3_{level}', ConvLayer(c_mid, c_mid, scale='up', **kwargs))

    def _level(self, level, x):
        up1 = getattr(self, f'b1_{level}')(x)
        low = getattr(self, f'b2_{level}')(x)
        low = self._level(level - 1, low) if level > 1 else self.b2_plus_1(low)
        up2 = getattr(self, f'b3_{level}')(low)
        if up1.shape[2:] != up2.shape[2:]:
            up2 = F.interpolate(up2, size=up1.shape[2:], mode='nearest')
        return up1 + up2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the attention mask for `x` (all ones when depth is 0)."""
        if self.depth == 0:
            return torch.ones_like(x[:, :1])
        return self.out_block(self._level(self.depth, x))


class ResidualBlock(nn.Module):
    """Face Attention Unit: pre-activated residual block whose branch is gated by the mask."""

    def __init__(self, c_in: int, c_out: int, scale: str = 'none', hg_depth: int = 2, att_name: str = 'spar',
                 norm_type: str = 'bn', relu_type: str = 'leakyrelu') -> None:
        super().__init__()
        if att_name not in ATT_NAMES:
            raise ValueError(f"att_name must be one of {ATT_NAMES}, got {att_name!r}")
        kwargs = {'norm_type': norm_type, 'relu_type': relu_type}
        if scale == 'none' and c_in == c_out:
            self.shortcut_func = nn.Identity()
        else:
            self.shortcut_func = ConvLayer(c_in, c_out, scale)
        self.preact_func = nn.Sequential(NormLayer(c_in, norm_type), ReluLayer(c_in, relu_type))
        scale1, scale2 = {'down': ('none', 'down'), 'up': ('up', 'none'), 'none': ('none', 'none')}[scale]
        self.conv1 = ConvLayer(c_in, c_out, scale1, **kwargs)
        self.conv2 = ConvLayer(c_out, c_out, scale2, norm_type=norm_type)
        c_att = 1 if att_name == 'spar' else c_out
        self.att_func = HourGlassBlock(hg_depth, c_out, c_att, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(self.preact_func(x)))
        return self.shortcut_func(x) + out * self.att_func(out)


def add_spectral_norm(net: Net) -> Net:
    """Spectral-normalise every Conv2d, giving the released `weight_orig/_u/_v` keys."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.utils.spectral_norm(module)
    return net
