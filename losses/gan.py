"""SPARNetHD's adversarial losses: GAN (hinge, vanilla, lsgan) and discriminator feature matching."""
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

GAN_MODES = ('hinge', 'vanilla', 'lsgan')


class GANLoss(nn.Module):
    """Loss of one discriminator output map: for D (real / fake targets) or for G (fooling D)."""

    def __init__(self, gan_mode: str = 'hinge') -> None:
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {gan_mode!r}")
        self.gan_mode = gan_mode

    def forward(self, pred: torch.Tensor, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        if self.gan_mode == 'hinge':
            if not for_discriminator:
                return -pred.mean()
            return F.relu(1.0 - pred).mean() if target_is_real else F.relu(1.0 + pred).mean()
        target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
        if self.gan_mode == 'vanilla':
            return F.binary_cross_entropy_with_logits(pred, target)
        return F.mse_loss(pred, target)


def feature_matching_loss(fake_results: Sequence[tuple[torch.Tensor, Sequence[torch.Tensor]]],
                          real_results: Sequence[tuple[torch.Tensor, Sequence[torch.Tensor]]]) -> torch.Tensor:
    """L1 between D's features of fake and real, summed over layers and averaged over scales.

    Each result is `(score, [features])` of one scale; real features are targets (no gradient).
    """
    per_scale = [sum(F.l1_loss(fake, real.detach()) for fake, real in zip(fake_feats, real_feats))
                 for (_, fake_feats), (_, real_feats) in zip(fake_results, real_results)]
    return sum(per_scale) / len(per_scale)
