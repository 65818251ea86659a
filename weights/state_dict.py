"""Reading `.pth` files without running code, and comparing their tensors with what a network expects."""
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from utils.cli import UserError


class WeightsError(UserError):
    """A weights file is missing, unsafe, unreadable or does not fit the network."""


# torch's advice to load with weights_only=False (torch.serialization.UNSAFE_MESSAGE, in several of its errors): it
# would run whatever code the file holds, so it is never passed on.
TORCH_ADVICE = re.compile(r'weights_only`? (argument|set to)|trusted source|trust the source')
NEEDS_UNPICKLING = re.compile(r'Cannot use `*weights_only=True`* with (.+?)(?: passed to `*torch\.load`*)?\.$')


def _torch_reason(err: BaseException) -> str:
    """The first line of torch.load's error `err`, without torch's advice to retry with weights_only=False."""
    first_line = (str(err).splitlines() or [type(err).__name__])[0]
    sentences = [sentence for sentence in re.split(r'(?<=\.)\s+', first_line.strip())
                 if not TORCH_ADVICE.search(sentence)]
    sentences = [NEEDS_UNPICKLING.sub(r'\1 cannot be read without running the code they hold', sentence)
                 for sentence in sentences]
    return ' '.join(sentences) or type(err).__name__


def load_tensors(path: str, label: str | None = None, what: str = 'weights file', mmap: bool = False) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU; WeightsError in one line when it cannot.

    Tells a folder, a file that would run code when unpickled (refused) and a file that is not
    PyTorch's (random bytes, truncated, another format) apart. torch's warnings around a refused
    load are silenced: the error says it all. `label` names the file in messages (default: `path`);
    `mmap` maps the tensors instead of reading them (files of the zip format; others are read).
    """
    label = label or path
    if os.path.isdir(path):
        raise WeightsError(f"{label}: is a folder, not a {what}; give the .pth file inside it")
    if not os.path.isfile(path):
        raise WeightsError(f"{label}: no such {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        blocked = re.search(r'GLOBAL ([\w.]*\w)', str(err))
        if blocked:
            raise WeightsError(f"{label}: refused: the file holds objects that would run code when loaded "
                               f"({blocked.group(1)}); only plain tensors are accepted") from err
        raise WeightsError(f"{label}: not a readable PyTorch {what} (random bytes, truncated or another "
                           "format)") from err
    except Exception as err:  # torch.load fails in many ways (KeyError, RuntimeError, ...) on foreign bytes
        if mmap and 'mmap can only be used' in str(err):
            return load_tensors(path, label, what)
        raise WeightsError(f"{label}: not a readable PyTorch {what} (random bytes, truncated or another "
                           f"format: {_torch_reason(err)})") from err


def tensor_shapes(state_dict: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """{key: shape tuple} of the tensors of a state dict."""
    return {key: tuple(value.shape) for key, value in state_dict.items() if isinstance(value, torch.Tensor)}


def _first(items, limit=3):
    shown = ', '.join(items[:limit])
    return shown + (f' (+{len(items) - limit} more)' if len(items) > limit else '')


@dataclass
class ShapeDifferences:
    """What a state dict lacks, has in excess, or holds in another shape than a network expects."""

    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    reshaped: list = field(default_factory=list)  # 'key file [..] vs model [..]'

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.reshaped)

    def summary(self) -> str:
        """E.g. `2 missing keys (a, b); 1 shape mismatches (c file [3] vs model [4])`."""
        return '; '.join(f'{len(items)} {what} ({_first(items)})' for what, items in
                         (('missing keys', self.missing), ('unexpected keys', self.unexpected),
                          ('shape mismatches', self.reshaped)) if items)


def shape_differences(state_dict: dict[str, Any], expected_shapes: dict[str, tuple[int, ...]]) -> ShapeDifferences:
    """ShapeDifferences between a state dict and {key: shape} (e.g. `tensor_shapes(net.state_dict())`)."""
    found = tensor_shapes(state_dict)
    return ShapeDifferences(
        missing=[key for key in expected_shapes if key not in found],
        unexpected=[key for key in found if key not in expected_shapes],
        reshaped=[f'{key} file {list(found[key])} vs model {list(shape)}'
                  for key, shape in expected_shapes.items() if key in found and found[key] != tuple(shape)])


def _all_finite(tensor):
    """Through NumPy: one torch op per tensor costs milliseconds of OpenMP start-up on a busy CPU."""
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return bool(np.isfinite(tensor.detach().cpu().numpy()).all())


def first_non_finite(tensors: object, prefix: str = '') -> str | None:
    """Dotted name of the first floating-point tensor holding NaN or infinity in nested dicts / lists, or None."""
    if isinstance(tensors, torch.Tensor):
        return prefix if tensors.is_floating_point() and not _all_finite(tensors) else None
    if isinstance(tensors, dict):
        items = tensors.items()
    elif isinstance(tensors, (list, tuple)):
        items = enumerate(tensors)
    else:
        return None
    for key, value in items:
        found = first_non_finite(value, f'{prefix}.{key}' if prefix else str(key))
        if found is not None:
            return found
    return None


def check_finite(state_dict: dict[str, torch.Tensor], label: str) -> None:
    """WeightsError naming the first tensor holding NaN or infinity (a diverged or corrupted file)."""
    key = first_non_finite(state_dict)
    if key is not None:
        raise WeightsError(f"{label}: tensor {key} holds NaN or infinite values (a diverged training "
                           "run or a corrupted file); nothing was loaded")
