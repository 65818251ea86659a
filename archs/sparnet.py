"""The SPARNet generator (and SPARNetHD, the same network with HD settings and spectral norm)."""
import math

import torch
from torch import nn

from archs.blocks import ConvLayer, ResidualBlock

# Channel range and sizes per `--model`: SPARNet works on 128x128 faces down to 16x16 features,
# SPARNetHD on 512x512 faces down to 32x32, with up to 512 channels.
SIZE_SETTINGS = {
    'sparnet': dict(min_ch=32, max_ch=128, in_size=128, out_size=128, min_feat_size=16),
    'sparnethd': dict(min_ch=32, max_ch=512, in_size=512, out_size=512, min_feat_size=32),
}


class SPARNet(nn.Module):
    """Encoder of down-scaling FAUs, residual FAUs at `min_feat_size`, decoder of up-scaling FAUs.

    The hourglass of each block gets shallower as the feature map shrinks, so the attention
    bottleneck stays near `bottleneck_size` pixels. The output is not squashed: callers clamp.
    """

    def __init__(self, min_ch: int = 32, max_ch: int = 128, in_size: int = 128, out_size: int = 128,
                 min_feat_size: int = 16, res_depth: int = 10, relu_type: str = 'leakyrelu', norm_type: str = 'bn',
                 att_name: str = 'spar', bottleneck_size: int = 4) -> None:
        super().__init__()
        kwargs = {'norm_type': norm_type, 'relu_type': relu_type, 'att_name': att_name}

        def clip(c: int) -> int:
            return max(min_ch, min(c, max_ch))

        down_steps = int(math.log2(in_size // min_feat_size))
        up_steps = int(math.log2(out_size // min_feat_size))
        n_ch = clip(max_ch // (down_steps + 1))
        hg_depth = int(math.log2(64 / bottleneck_size))

        encoder = [ConvLayer(3, n_ch)]
        for _ in range(down_steps):
            encoder.append(ResidualBlock(clip(n_ch), clip(n_ch * 2), 'down', hg_depth, **kwargs))
            n_ch *= 2
            hg_depth -= 1
        self.encoder = nn.Sequential(*encoder)

        hg_depth += 1
        self.res_layers = nn.Sequential(*[
            ResidualBlock(clip(n_ch), clip(n_ch), 'none', hg_depth, **kwargs)
            for _ in range(res_depth + 3 - down_steps)])

        decoder = []
        for _ in range(up_steps):
            hg_depth += 1
            decoder.append(ResidualBlock(clip(n_ch), clip(n_ch // 2), 'up', hg_depth, **kwargs))
            n_ch //= 2
        self.decoder = nn.Sequential(*decoder)
        self.out_conv = ConvLayer(clip(n_ch), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.decoder(self.res_layers(self.encoder(x))))

