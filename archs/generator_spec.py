"""Generator settings per `--model`, and building the generator from them."""
import argparse
from dataclasses import dataclass
from typing import Self

import torch
from torch import nn
from torch.nn import functional as F

from archs.blocks import add_spectral_norm
from archs.sparnet import SIZE_SETTINGS, SPARNet


@dataclass(frozen=True)
class GeneratorSpec:
    """What `--model --res_depth --att_name --Gnorm --bottleneck_size` make of the generator."""

    model: str = 'sparnet'
    res_depth: int = 10
    att_name: str = 'spar'
    norm_type: str = 'bn'
    bottleneck_size: int = 4

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> Self:
        return cls(opt.model, opt.res_depth, opt.att_name, opt.Gnorm, opt.bottleneck_size)

    @property
    def spectral_norm(self) -> bool:
        """SPARNetHD was trained as a GAN generator with spectral norm on every conv."""
        return self.model == 'sparnethd'

    def build(self) -> SPARNet:
        net = SPARNet(**SIZE_SETTINGS[self.model], res_depth=self.res_depth, norm_type=self.norm_type,
                      att_name=self.att_name, bottleneck_size=self.bottleneck_size)
        return add_spectral_norm(net) if self.spectral_norm else net

    def _meta_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict on the meta device. Spectral norm's keys are derived, not made: its vectors are drawn with
        normal_, which the meta device runs through Python references (6 s for SPARNetHD, against 0.1 s)."""
        with torch.device('meta'):
            net = SPARNet(**SIZE_SETTINGS[self.model], res_depth=self.res_depth, norm_type=self.norm_type,
                          att_name=self.att_name, bottleneck_size=self.bottleneck_size)
            state = {}
            for name, module in net.named_modules():
                own = module.state_dict(keep_vars=True) if not list(module.children()) else {}
                if self.spectral_norm and isinstance(module, nn.Conv2d):
                    own = spectral_norm_state(own)
                state.update({f'{name}.{key}' if name else key: value for key, value in own.items()})
        return state

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """State-dict key -> shape, computed on the meta device (no memory, no weights)."""
        return {key: tuple(value.shape) for key, value in self._meta_state_dict().items()}

    def state_bytes(self) -> int:
        """Bytes of the state dict's tensors in fp32: about the size of a weights file."""
        return sum(value.numel() * value.element_size() for value in self._meta_state_dict().values())

    def flags(self) -> str:
        return (f'--model {self.model} --res_depth {self.res_depth} --att_name {self.att_name} '
                f'--Gnorm {self.norm_type} --bottleneck_size {self.bottleneck_size}')


def spectral_norm_state(conv_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Conv2d's own state dict as torch.nn.utils.spectral_norm leaves it: `weight` becomes `weight_orig` (after
    the bias) and the vectors `weight_u` (out channels) and `weight_v` (the rest of the weight), empty."""
    weight = conv_state['weight']
    state = {key: value for key, value in conv_state.items() if key != 'weight'}
    state['weight_orig'] = weight
    state['weight_u'] = weight.new_empty(weight.shape[0])
    state['weight_v'] = weight.new_empty(weight[0].numel())
    return state


def define_G(opt: argparse.Namespace) -> SPARNet:
    """The generator of `opt` on the CPU, with fresh weights."""
    return GeneratorSpec.from_options(opt).build()


def random_generator(spec: GeneratorSpec, seed: int = 0) -> SPARNet:
    """A network of `spec` with random weights, for tests and benchmarks without the released files.

    Batch-norm statistics are made non-trivial and spectral-norm vectors converged, so the network
    behaves (and its checkpoint looks) like a trained one. Returned in eval mode.
    """
    torch.manual_seed(seed)
    net = spec.build()
    with torch.no_grad():
        for name, buffer in net.named_buffers():
            if name.endswith('running_mean'):
                buffer.normal_(0, 0.1)
            elif name.endswith('running_var'):
                buffer.uniform_(0.5, 1.5)
        for module in net.modules():
            if hasattr(module, 'weight_orig'):
                matrix = module.weight_orig.flatten(1)
                for _ in range(20):
                    module.weight_v.copy_(F.normalize(matrix.t() @ module.weight_u, dim=0))
                    module.weight_u.copy_(F.normalize(matrix @ module.weight_v, dim=0))
    return net.eval()
