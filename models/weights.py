"""Reading generator weights safely and loading them strictly, with a diagnosis when they don't fit.

The published code loaded with `strict=False`, so a 3D-attention file given to a 2D model ran with
half its layers random. Here any missing, unexpected or mis-shaped key stops the run, and the
state dict's own shapes tell which flags would have fitted.
"""
import os
import pickle
import re
import zipfile

import torch

from utils.cli import UserError

from .networks import GeneratorSpec

RELEASE_PAGE = 'https://github.com/chaofengc/Face-SPARNet/releases/tag/v0.1.0'
WRAPPER_PREFIXES = ('module.', '_orig_mod.')


class WeightsError(UserError):
    """A weights file is missing, unsafe, unreadable or does not fit the network."""


def _strip_prefixes(state_dict):
    """Remove DataParallel (`module.`) and torch.compile (`_orig_mod.`) prefixes."""
    stripped = {}
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split('.', 1)[1]
        stripped[key] = value
    return stripped


def read_state_dict(path):
    """Tensors of a `.pth` file, loaded without running any code the file may carry."""
    if not os.path.isfile(path):
        folder, name = os.path.split(path)
        raise WeightsError(f"{path}: no such weights file. Download {name} (released weights: {RELEASE_PAGE}) "
                           f"into {os.path.join(folder or '.', '')}, or pass another path with --pretrain_model_path")
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(f"{path}: refused: the file holds more than tensors and would run code when "
                           f"loaded ({str(err).splitlines()[0]}); only plain state dicts are accepted") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise WeightsError(f"{path}: not a readable PyTorch weights file "
                           f"(truncated or another format): {str(err).splitlines()[0]}") from err
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        obj = obj['state_dict']
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict (parameter name -> tensor), "
                           f"found {type(obj).__name__}")
    return _strip_prefixes(obj)


def _indices(keys, pattern):
    return {int(m.group(1)) for m in map(re.compile(pattern).match, keys) if m}


def infer_spec(state_dict):
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
        fits = spec.res_depth >= 0 and spec.shapes() == {k: tuple(v.shape) for k, v in state_dict.items()}
    except (ValueError, RuntimeError, ZeroDivisionError):
        fits = False
    return spec if fits else None


def _describe(spec):
    attention = '2D' if spec.att_name == 'spar' else '3D'
    weights = 'spectral-normalised' if spec.spectral_norm else 'plain'
    return f'{attention} attention, {spec.norm_type} norm, res_depth {spec.res_depth}, {weights} convs'


def _first(items, limit=3):
    shown = ', '.join(items[:limit])
    return shown + (f' (+{len(items) - limit} more)' if len(items) > limit else '')


def mismatch_message(path, spec, state_dict, expected_shapes):
    """One line: what differs between file and network, and which flags the file fits."""
    found = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = [k for k in expected_shapes if k not in found]
    unexpected = [k for k in found if k not in expected_shapes]
    reshaped = [f'{k} file {list(found[k])} vs model {list(s)}'
                for k, s in expected_shapes.items() if k in found and found[k] != s]
    problems = [f'{len(items)} {what} ({_first(items)})' for what, items in
                (('missing keys', missing), ('unexpected keys', unexpected), ('shape mismatches', reshaped))
                if items]
    fitting = infer_spec(state_dict)
    if fitting is None:
        hint = 'the file fits none of the SPARNet/SPARNetHD flag combinations'
    else:
        hint = f'the file fits {fitting.flags()} ({_describe(fitting)})'
    return (f"{path}: weights do not fit the network of {spec.flags()} ({_describe(spec)}); {hint}. "
            f"Differences: {'; '.join(problems)}. Nothing was loaded.")


def load_generator_weights(net, path, spec):
    """Load `path` into `net` (built from `spec`) strictly; WeightsError on any difference."""
    state_dict = read_state_dict(path)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    if {k: tuple(v.shape) for k, v in state_dict.items()} != expected:
        raise WeightsError(mismatch_message(path, spec, state_dict, expected))
    net.load_state_dict(state_dict, strict=True)
    return net
