"""Loading other projects' models with spandrel, which recognises an architecture from its weights alone.

The file is read as SPARNet's are (`torch.load(weights_only=True)`: it cannot run code; or
safetensors), then handed to spandrel. A model is loaded for a role, and one that does not fit
it is refused in one line saying where it belongs: a super-resolution network for the background
of whole photos (`BACKGROUND`), a face restorer of 512x512 aligned faces (`FACE`). CodeFormer, of
spandrel-extra-arches, is recognised always but loaded only when its non-commercial licence is
accepted. spandrel is imported on first use: importing it takes seconds.
"""
import importlib
import os
import warnings
from typing import Any

import torch

from utils.cli import UserError
from utils.devices import PRECISIONS, check_precision
from weights.state_dict import WeightsError, check_finite, load_tensors

BACKGROUND = 'background'
FACE = 'face'
PURPOSES = {BACKGROUND: 'SR', FACE: 'FaceSR'}  # spandrel's purpose of a model fit for each role
ROLE_FLAGS = {BACKGROUND: '--bg_upsampler', FACE: '--face_model'}
ROLE_WHAT = {BACKGROUND: 'a super-resolution model', FACE: 'a face restorer'}
ANY_ROLE_WHAT = 'a face restorer or a super-resolution model'
ANY_MODEL = f'a checkpoint of train.py (SPARNet, SPARNetHD), or {ANY_ROLE_WHAT} spandrel supports'  # role None
CODEFORMER = 'CodeFormer'
LICENCE_FLAG = '--codeformer_noncommercial'


def _quiet_import(name):
    """Import `name` without the FutureWarning of torch.jit.script (deprecated in PyTorch 2.10+), which spandrel and
    spandrel-extra-arches call on import."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        return importlib.import_module(name)


def spandrel_module() -> Any:
    """The spandrel module, imported on first use."""
    return _quiet_import('spandrel')


def _codeformer_support():
    """spandrel-extra-arches' CodeFormer entry, or None when the package is not installed."""
    try:
        extra = _quiet_import('spandrel_extra_arches')
    except ImportError:
        return None
    return extra.EXTRA_REGISTRY.get(CODEFORMER)


def read_model_state(path: str, label: str) -> dict:
    """The state dict of a model file (.pth / .ckpt / .pt as plain tensors, or .safetensors), unwrapped by spandrel's
    rules (`params_ema`, `state_dict`, ... and `module.` prefixes)."""
    if path.lower().endswith('.safetensors') and os.path.isfile(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            state = load_file(path)
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f'{label}: not a readable safetensors file ({err})') from err
    else:
        state = load_tensors(path, label, 'model file')
    if not isinstance(state, dict):
        raise WeightsError(f'{label}: expected a state dict (parameter name -> tensor), found {type(state).__name__}')
    return spandrel_module().canonicalize_state_dict(state)


def _first_keys(state, limit=3):
    keys = list(state)
    return ', '.join(keys[:limit]) + (f' (+{len(keys) - limit} more)' if len(keys) > limit else '')


def load_spandrel(path: str, label: str, role: str | None, noncommercial_ok: bool = False) -> Any:
    """spandrel's ImageModelDescriptor of the model in `path`, on the CPU, in fp32, fit for `role` (None: either,
    `model_role` tells which).

    WeightsError in one line when spandrel knows no architecture with these keys, when they
    do not load strictly, when a tensor is not finite, when the model is not one of `role` (a face
    restorer given as background upsampler and the reverse), or when it is CodeFormer and
    `noncommercial_ok` is False.
    """
    spandrel = spandrel_module()
    state = read_model_state(path, label)
    codeformer = _codeformer_support()
    if codeformer is not None and codeformer.architecture.detect(state):
        if not noncommercial_ok:
            raise WeightsError(f'{label}: is CodeFormer, whose licence (S-Lab License 1.0) allows non-commercial '
                               f'use only; pass {LICENCE_FLAG} to accept it, or choose another model')
        registry = spandrel.ArchRegistry()
        registry.add(codeformer)
    else:
        registry = spandrel.MAIN_REGISTRY
    check_finite(state, label)
    try:
        descriptor = spandrel.ModelLoader(registry=registry).load_from_state_dict(state)
    except spandrel.UnsupportedModelError as err:
        wanted = f'{ROLE_FLAGS[role]} takes {ROLE_WHAT[role]} that spandrel supports' if role else f'give {ANY_MODEL}'
        raise WeightsError(f'{label}: spandrel {spandrel.__version__} recognises no architecture in this file '
                           f'(keys {_first_keys(state)}); {wanted}') from err
    except (RuntimeError, KeyError, ValueError, IndexError, AttributeError, TypeError) as err:
        first_line = (str(err).splitlines() or [type(err).__name__])[0]
        raise WeightsError(f'{label}: looks like a {_arch_guess(registry, state)} model, but its tensors do not '
                           f'load into one ({first_line})') from err
    if role is not None:
        _check_role(descriptor, role, label)
    return descriptor


def on_device(descriptor: Any, device: torch.device | str, precision: str, label: str) -> tuple[Any, torch.dtype]:
    """(the descriptor moved to `device` in `precision`'s dtype, in eval mode; that dtype). UserError in one line
    when the device or the architecture does not run that precision; `label` is the flag and value, e.g.
    '--bg_upsampler x4.pth'."""
    try:
        check_precision(device, precision)
    except ValueError as err:
        raise UserError(f'--precision {precision}: {err}') from err
    dtype = PRECISIONS[precision]
    if (dtype == torch.float16 and not descriptor.supports_half) or \
            (dtype == torch.bfloat16 and not descriptor.supports_bfloat16):
        raise UserError(f'{label}: {descriptor.architecture.id} does not run in {precision}; use --precision fp32')
    return descriptor.to(device).to(dtype).eval(), dtype


def _arch_guess(registry, state):
    return next((support.architecture.id for support in registry.architectures('detection')
                 if support.architecture.detect(state)), 'known')


def describe(descriptor: Any) -> str:
    """E.g. 'an ESRGAN model (x4 super-resolution)', 'a GFPGAN model (face restorer)'."""
    arch = descriptor.architecture.id
    what = {'FaceSR': 'face restorer', 'SR': f'x{descriptor.scale} super-resolution'}.get(
        descriptor.purpose, f'{descriptor.purpose.lower()}, x{descriptor.scale}')
    return f"{'an' if arch[0].lower() in 'aeiou' else 'a'} {arch} model ({what})"


def _is_rgb_image_model(descriptor):
    return isinstance(descriptor, spandrel_module().ImageModelDescriptor) and \
        (descriptor.input_channels, descriptor.output_channels) == (3, 3)


def model_role(descriptor: Any, label: str) -> str:
    """The role (BACKGROUND or FACE) of a model `load_spandrel` loaded for either; WeightsError in one line when it
    fits neither."""
    role = next((role for role, purpose in PURPOSES.items() if purpose == descriptor.purpose), None)
    if role is None or not _is_rgb_image_model(descriptor):
        raise WeightsError(f'{label}: is {describe(descriptor)}, which neither enlarges RGB photos nor restores RGB '
                           f'faces; give {ANY_MODEL}')
    return role


def _check_role(descriptor, role, label):
    if not _is_rgb_image_model(descriptor):
        raise WeightsError(f'{label}: {descriptor.architecture.id} is not a model of RGB images in and out; '
                           f'{ROLE_FLAGS[role]} takes {ROLE_WHAT[role]}')
    if descriptor.purpose == PURPOSES[role]:
        return
    if descriptor.purpose == PURPOSES[FACE]:
        place = f'give it to {ROLE_FLAGS[FACE]}'
    elif descriptor.purpose == PURPOSES[BACKGROUND]:
        place = f'give it to {ROLE_FLAGS[BACKGROUND]}'
    else:
        place = 'it does not enlarge photos nor restore faces'
    raise WeightsError(f'{label}: is {describe(descriptor)}, not {ROLE_WHAT[role]} ({place}); '
                       f'{ROLE_FLAGS[role]} takes {ROLE_WHAT[role]}')


def check_spandrel_file(path: str, label: str, role: str) -> None:
    """WeightsError unless spandrel loads `path` as a model of `role` (a download's check; CodeFormer accepted here,
    its licence is asked for when it is used)."""
    load_spandrel(path, label, role, noncommercial_ok=True)
