"""Training in bf16 or fp16: autocast forward passes, everything else in fp32.

Only the forward passes of the networks run under `torch.autocast` (convolutions and matrix
products in bf16 / fp16); their outputs are cast to fp32 before any loss, and the weights, their
gradients, the optimizer states, the EMA generator and spectral norm's power iterations stay fp32,
so a checkpoint is the same whatever the precision. fp16 (CUDA only) scales the loss so that small
gradients do not underflow (`torch.amp.GradScaler`): a step whose gradients overflow is skipped and
the scale lowered.
"""
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from utils.cli import UserError
from utils.devices import PRECISIONS, check_precision

Outputs = torch.Tensor | Sequence['Outputs']


def check_training_precision(precision: str, device: torch.device | str) -> None:
    """UserError (one line) unless `device` runs `precision` natively: the checks of test.py's --precision."""
    try:
        check_precision(device, precision)
    except ValueError as err:
        raise UserError(f'--precision {precision}: {err}') from None


class FP32SpectralNorm(SpectralNorm):
    """Spectral norm whose power iteration and sigma stay fp32 under autocast (CUDA's would run them in half
    precision: `torch.mv` is on its list)."""

    def __call__(self, module: nn.Module, inputs: object) -> None:
        with torch.autocast(module.weight_orig.device.type, enabled=False):
            super().__call__(module, inputs)


def to_fp32(outputs: Outputs) -> Outputs:
    """The tensors of `outputs` (nested lists and tuples of them) in fp32; fp32 tensors as they are."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    return type(outputs)(to_fp32(output) for output in outputs)


class MixedPrecision:
    """The forward passes, backward passes and optimizer steps of one training run in `precision`.

    Check the precision first with `check_training_precision`. fp32 runs as plain PyTorch does.
    """

    def __init__(self, precision: str, device: torch.device | str) -> None:
        self.precision = precision
        self.device_type = torch.device(device).type
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=precision == 'fp16')

    def prepare(self, net: nn.Module) -> nn.Module:
        """`net` (in place) with its spectral norms in fp32 under autocast. Returns `net`."""
        for module in net.modules():
            for hook in module._forward_pre_hooks.values():
                if type(hook) is SpectralNorm:
                    hook.__class__ = FP32SpectralNorm
        return net

    def forward(self, net: nn.Module, *inputs: torch.Tensor) -> Outputs:
        """`net(*inputs)` under autocast, its outputs in fp32 (for the losses)."""
        with torch.autocast(self.device_type, PRECISIONS[self.precision], enabled=self.precision != 'fp32'):
            outputs = net(*inputs)
        return to_fp32(outputs)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer's step, unless fp16's scaled gradients overflowed."""
        self.scaler.step(optimizer)

    def update(self) -> bool:
        """Close the iteration's steps; returns whether fp16's scaler skipped one (the scale is then lowered)."""
        if not self.scaler.is_enabled():
            return False
        scale = self.scaler.get_scale()
        self.scaler.update()
        return self.scaler.get_scale() < scale

    def state_dict(self) -> dict:
        """fp16's scaler state ({} in the other precisions)."""
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """A saved `state_dict()`; one of another precision (none for fp16) leaves the scaler as it is."""
        if self.scaler.is_enabled() and state:
            self.scaler.load_state_dict(state)
