"""SPARNetHD's multi-scale patch discriminator, spectral-normalised, returning scores and features."""
import argparse
import re
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from archs.blocks import ConvLayer, add_spectral_norm
from archs.initial_weights import init_weights
from utils.cli import UserError

# Our net_D files before the published key names: `...score_out.weight_orig` for `...score_out.conv2d.weight_orig`.
OLD_SCORE_KEY = re.compile(r'^((?:.*\.)?score_out)\.(weight_orig|weight_u|weight_v|weight|bias)$')


class ScoreConv(nn.Module):
    """The unpadded 3x3 score conv (with bias), as `.conv2d` like the published ConvLayer: keys `score_out.conv2d.*`."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(in_channels, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(x)


def upgrade_discriminator_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A net_D state dict with the published key names, whether saved with them or with our earlier ones."""
    return {OLD_SCORE_KEY.sub(r'\1.conv2d.\2', key): value for key, value in state_dict.items()}


class NLayerDiscriminator(nn.Module):
    """Conv unit 3 -> base_ch (leaky ReLU), `n_layers` stride-2 units doubling up to max_ch, 3x3 score conv.

    The score conv has no padding; the features of every unit feed the feature-matching loss.
    """

    def __init__(self, n_layers: int = 4, base_ch: int = 64, max_ch: int = 512, norm_type: str = 'in') -> None:
        super().__init__()
        layers = [ConvLayer(3, base_ch, relu_type='leakyrelu')]
        channels = base_ch
        for _ in range(n_layers):
            out_channels = min(channels * 2, max_ch)
            layers.append(ConvLayer(channels, out_channels, 'down', norm_type, 'leakyrelu'))
            channels = out_channels
        self.model = nn.Sequential(*layers)
        self.score_out = ScoreConv(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for layer in self.model:
            x = layer(x)
            features.append(x)
        return self.score_out(x), features


class MultiScaleDiscriminator(nn.Module):
    """`num_D` discriminators, on the image and on copies bicubically halved scale after scale.

    Returns one `(score map, [features])` per scale, finest first.
    """

    def __init__(self, num_D: int = 3, n_layers: int = 4, norm_type: str = 'in') -> None:
        super().__init__()
        self.n_layers = n_layers
        self.D_pool = nn.ModuleList(NLayerDiscriminator(n_layers, norm_type=norm_type) for _ in range(num_D))

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        results = []
        for scale, net in enumerate(self.D_pool):
            if scale:
                x = F.interpolate(x, scale_factor=0.5, mode='bicubic', align_corners=False)
            results.append(net(x))
        return results

    def coarsest_feature_size(self, size: int) -> int:
        """Side of the last feature map of the coarsest scale for a size x size input."""
        for _ in range(len(self.D_pool) - 1):
            size //= 2
        for _ in range(self.n_layers):
            size = (size + 1) // 2
        return size


def define_D(opt: argparse.Namespace) -> MultiScaleDiscriminator:
    """The discriminator of `--num_D --n_layers_D --Dnorm`, spectral norm on every conv, `--init_type` weights.

    Checks that `--load_size` suits it.
    """
    if opt.num_D < 1 or opt.n_layers_D < 0:
        raise UserError(f"--num_D {opt.num_D} --n_layers_D {opt.n_layers_D}: need at least one scale "
                        "and no negative layer count")
    net = add_spectral_norm(MultiScaleDiscriminator(opt.num_D, opt.n_layers_D, opt.Dnorm))
    if net.coarsest_feature_size(opt.load_size) < 3:
        raise UserError(f"--load_size {opt.load_size} is too small for --num_D {opt.num_D} --n_layers_D "
                        f"{opt.n_layers_D}: the coarsest discriminator's features would be smaller than its "
                        "3x3 score conv; use a larger --load_size or a smaller --num_D / --n_layers_D")
    return init_weights(net, opt.init_type, opt.init_gain)
