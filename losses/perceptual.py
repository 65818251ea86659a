"""SPARNetHD's perceptual loss: L1 between VGG19 features of output and target, with torchvision's
ImageNet VGG19 weights (downloaded into the weights cache on first use)."""
import os
from typing import Self

import torch
from torch import nn
from torch.nn import functional as F

from utils.cli import UserError
from weights.download import RemoteFile
from weights.generator import read_state_dict
from weights.state_dict import WeightsError, check_finite, shape_differences, tensor_shapes

VGG19_FILE = 'vgg19-dcbb9e9d.pth'
VGG19_URL = f'https://download.pytorch.org/models/{VGG19_FILE}'
VGG19_LEGACY_PATH = os.path.join('.', 'pretrain_models', VGG19_FILE)  # where the original project kept it
# relu1_2, relu2_2, relu3_4, relu4_4, conv5_4: the published slices [0:3] [3:8] [8:17] [17:26] [26:35],
# whose outputs the in-place ReLU opening each next slice rectified, cut here after those ReLUs.
VGG_SLICES = ((0, 4), (4, 9), (9, 18), (18, 27), (27, 35))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG_MIN_SIZE = 224


def load_vgg19_features(path: str, label: str | None = None) -> nn.Sequential:
    """torchvision's `vgg19().features[:35]` with the ImageNet weights of `path` (torchvision format)."""
    import torchvision  # here: every command imports this module (models/ does), torchvision takes a second more
    label = label or f'--vgg_weights {path}'
    if not os.path.isfile(path):
        raise UserError(f"{label}: no such file. It is torchvision's ImageNet VGG19 "
                        f"({VGG19_URL}, the file vgg19(weights='IMAGENET1K_V1') downloads): put it there, "
                        "leave --vgg_weights out to have it downloaded into the weights cache, or train "
                        "without perceptual loss with --lambda_pcp 0")
    state_dict = {k[len('features.'):]: v for k, v in read_state_dict(path, label).items()
                  if k.startswith('features.')}
    with torch.device('meta'):
        features = torchvision.models.vgg19(weights=None).features[:VGG_SLICES[-1][1]]
    if shape_differences(state_dict, tensor_shapes(features.state_dict())):
        raise WeightsError(f"{label}: not torchvision VGG19 weights (its `features.*` tensors "
                           f"do not match vgg19); expected the file of {VGG19_URL}")
    check_finite(state_dict, label)
    features = features.to_empty(device='cpu')
    features.load_state_dict(state_dict)
    return features


VGG19_WEIGHTS = RemoteFile(
    'vgg19', VGG19_FILE, VGG19_URL, "torchvision's ImageNet VGG19, for SPARNetHD's perceptual loss",
    lambda path, label: load_vgg19_features(path, label),
    sha256='dcbb9e9d',  # torchvision checks its download against this prefix of the file name
    other_places=lambda: (VGG19_LEGACY_PATH,))


class VGGPerceptualLoss(nn.Module):
    """Sum over five VGG19 stages of the L1 between the features of output and target (no weights).

    Images in [-1, 1] are mapped to ImageNet normalisation and bilinearly enlarged to 224 when smaller.
    """

    def __init__(self, weights_path: str) -> None:
        super().__init__()
        features = load_vgg19_features(weights_path)
        self.slices = nn.ModuleList(nn.Sequential(*features[start:end]) for start, end in VGG_SLICES)
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> Self:
        """Always in eval mode: the loss network is fixed."""
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        height, width = x.shape[2:]
        if height < VGG_MIN_SIZE or width < VGG_MIN_SIZE:
            x = F.interpolate(x, size=(max(height, VGG_MIN_SIZE), max(width, VGG_MIN_SIZE)),
                              mode='bilinear', align_corners=False)
        outputs = []
        for vgg_slice in self.slices:
            x = vgg_slice(x)
            outputs.append(x)
        return outputs

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss in fp32, also when the features are computed under autocast (bf16 / fp16 training)."""
        with torch.no_grad():
            target_feats = self.features(target)
        return sum(F.l1_loss(o.float(), t.float()) for o, t in zip(self.features(output), target_feats))
