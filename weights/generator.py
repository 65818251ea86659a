"""Reading generator weights safely and loading them strictly, with a diagnosis when they don't fit.

The published code loaded with `strict=False`, so a 3D-attention file given to a 2D model ran with
half its layers random. Here any missing, unexpected or mis-shaped key stops the run, and the
state dict's own shapes tell which flags would have fitted.
"""
import re
from typing import TypeVar

import torch
from torch import nn

from archs.generator_spec import GeneratorSpec
from weights.state_dict import WeightsError, check_finite, load_tensors, shape_differences, tensor_shapes

WRAPPER_PREFIXES = ('module.', '_orig_mod.')
Net = TypeVar('Net', bound=nn.Module)


def strip_prefixes(state_dict: dict) -> dict:
    """Remove DataParallel (`module.`) and torch.compile (`_orig_mod.`) prefixes."""
    stripped = {}
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split('.', 1)[1]
        stripped[key] = value
    return stripped


def read_state_dict(path: str, label: str | None = None, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a `.pth` file, loaded without running any code the file may carry.

    `label` names the file in messages (default: `path`); `mmap` maps instead of reading the
    tensors, for a quick look at their shapes.
    """
    label = label or path
    obj = load_tensors(path, label, mmap=mmap)
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        obj = obj['state_dict']
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{label}: expected a state dict (parameter name -> tensor), "
                           f"found {type(obj).__name__}")
    return strip_prefixes(obj)


def _indices(keys, pattern):
    return {int(m.group(1)) for m in map(re.compile(pattern).match, keys) if m}


def infer_spec(state_dict: dict[str, torch.Tensor]) -> GeneratorSpec | None:
    """The GeneratorSpec whose network has exactly these keys and shapes, or None."""
    keys = list(state_dict)
    n_down = len(_indices(keys, r'encoder\.(\d+)\.')) - 1
    n_res = len(_indices(keys, r'res_layers\.(\d+)\.'))
    hg_depth = max(_indices(keys, r'encoder\.1\.att_func\.b1_(\d+)\.'), default=0)
    spectral = any(k.endswith('.weight_orig') for k in keys)
    if any(k.endswith('running_mean') for k in keys):
        norm_type = 'bn'
    elif any(k.endswith('preact_func.0.norm.weight') for k in keys):
        norm_type = 'in'
    else:
        norm_type = 'none'
    mask = state_dict.get('encoder.1.att_func.out_block.0.conv2d.weight' + ('_orig' if spectral else ''))
    att_name = 'spar3d' if mask is not None and mask.shape[0] > 1 else 'spar'
    spec = GeneratorSpec(model='sparnethd' if spectral else 'sparnet', res_depth=n_res + n_down - 3,
                         att_name=att_name, norm_type=norm_type, bottleneck_size=max(1, 64 >> hg_depth))
    try:
        fits = spec.res_depth >= 0 and spec.shapes() == tensor_shapes(state_dict)
    except (ValueError, RuntimeError, ZeroDivisionError):
        fits = False
    return spec if fits else None


def file_spec(path: str) -> GeneratorSpec | None:
    """The GeneratorSpec the state dict in `path` fits exactly; None when it is no SPARNet / SPARNetHD state dict
    (another project's layout, for spandrel)."""
    try:
        return infer_spec(read_state_dict(path, mmap=True))
    except WeightsError:
        return None


def _describe(spec):
    attention = '2D' if spec.att_name == 'spar' else '3D'
    weights = 'spectral-normalised' if spec.spectral_norm else 'plain'
    return f'{attention} attention, {spec.norm_type} norm, res_depth {spec.res_depth}, {weights} convs'


def mismatch_message(path: str, spec: GeneratorSpec, state_dict: dict[str, torch.Tensor],
                     expected_shapes: dict[str, tuple[int, ...]]) -> str:
    """One line: what differs between file and network, and which flags the file fits."""
    fitting = infer_spec(state_dict)
    if fitting is None:
        hint = 'the file fits none of the SPARNet/SPARNetHD flag combinations'
    else:
        hint = f'the file fits {fitting.flags()} ({_describe(fitting)})'
    return (f"{path}: weights do not fit the network of {spec.flags()} ({_describe(spec)}); {hint}. "
            f"Differences: {shape_differences(state_dict, expected_shapes).summary()}. Nothing was loaded.")


def check_generator_state(state_dict: dict[str, torch.Tensor], spec: GeneratorSpec, label: str,
                          expected_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
    """WeightsError unless `state_dict` has exactly the tensors of `spec`'s network, all finite."""
    expected_shapes = expected_shapes or spec.shapes()
    if shape_differences(state_dict, expected_shapes):
        raise WeightsError(mismatch_message(label, spec, state_dict, expected_shapes))
    check_finite(state_dict, label)


def check_generator_file(path: str, label: str, spec: GeneratorSpec | None = None) -> None:
    """WeightsError unless `path` holds finite weights of `spec`'s network (of any SPARNet network if None)."""
    state_dict = read_state_dict(path, label)
    if spec is None:
        spec = infer_spec(state_dict)
        if spec is None:
            raise WeightsError(f"{label}: not SPARNet/SPARNetHD generator weights (its tensors fit none of the "
                               "flag combinations)")
    check_generator_state(state_dict, spec, label)


def load_generator_weights(net: Net, path: str, spec: GeneratorSpec, label: str | None = None) -> Net:
    """Load `path` into `net` (built from `spec`) strictly; WeightsError on any difference or non-finite value."""
    state_dict = read_state_dict(path, label)
    check_generator_state(state_dict, spec, label or path, tensor_shapes(net.state_dict()))
    net.load_state_dict(state_dict, strict=True)
    return net
