"""Generator settings per `--model`, and building the generator from them."""
from dataclasses import dataclass

import torch

from .sparnet import HD_SETTINGS, SPARNet, add_spectral_norm

SPARNET_SETTINGS = dict(min_ch=32, max_ch=128, in_size=128, out_size=128, min_feat_size=16)
SIZE_SETTINGS = {'sparnet': SPARNET_SETTINGS, 'sparnethd': HD_SETTINGS}


@dataclass(frozen=True)
class GeneratorSpec:
    """What `--model --res_depth --att_name --Gnorm --bottleneck_size` make of the generator."""

    model: str = 'sparnet'
    res_depth: int = 10
    att_name: str = 'spar'
    norm_type: str = 'bn'
    bottleneck_size: int = 4

    @classmethod
    def from_options(cls, opt):
        return cls(opt.model, opt.res_depth, opt.att_name, opt.Gnorm, opt.bottleneck_size)

    @property
    def spectral_norm(self):
        """SPARNetHD was trained as a GAN generator with spectral norm on every conv."""
        return self.model == 'sparnethd'

    def build(self):
        net = SPARNet(**SIZE_SETTINGS[self.model], res_depth=self.res_depth, norm_type=self.norm_type,
                      att_name=self.att_name, bottleneck_size=self.bottleneck_size)
        return add_spectral_norm(net) if self.spectral_norm else net

    def shapes(self):
        """State-dict key -> shape, computed on the meta device (no memory, no weights)."""
        with torch.device('meta'):
            return {key: tuple(value.shape) for key, value in self.build().state_dict().items()}

    def flags(self):
        return (f'--model {self.model} --res_depth {self.res_depth} --att_name {self.att_name} '
                f'--Gnorm {self.norm_type} --bottleneck_size {self.bottleneck_size}')


def define_G(opt):
    """The generator of `opt` on the CPU, with fresh weights."""
    return GeneratorSpec.from_options(opt).build()
