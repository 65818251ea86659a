"""torch.hub entries: one per released model of `weights/released.py`, named as there, and the Python API's
pipelines (`face_enhancer`, `photo_restorer`).

    net = torch.hub.load('path/to/this/checkout', 'sparnethd_attn2d', source='local', pretrained=True)
    net = torch.hub.load('OWNER/REPO:BRANCH', 'sparnethd_attn2d')   # from GitHub, once this file is pushed there
    restorer = torch.hub.load('path/to/this/checkout', 'photo_restorer', source='local', upscale=2)

A network entry returns the plain network (a torch.nn.Module in eval mode) with its released weights, taken
from the weights cache ($SPARNET_HOME, else ~/.cache/sparnet; downloaded and checked on first use)
and loaded strictly; the pipeline entries return `api.FaceEnhancer` and `api.PhotoRestorer`.
`torch.hub.help(repo, name)` prints what each takes and gives.

Loading works beside the caller's own packages named as this project's (`utils`, `models`, `data`, `options`, ...):
the project's are imported apart from them (`_isolated_imports`), and nothing of the project imports a module by name
once loaded (tests/test_layers.py checks it), so the returned networks keep using the project's modules.
"""
# Underscored, or modules: torch.hub.list takes every public callable of this module for an entry.
import collections.abc
import contextlib
import os
import sys
import typing

import torch


def _project_packages() -> set[str]:
    """The top-level packages of this checkout: the folders beside this file holding an __init__.py."""
    here = os.path.dirname(os.path.abspath(__file__))
    return {name for name in os.listdir(here) if os.path.isfile(os.path.join(here, name, '__init__.py'))}


@contextlib.contextmanager
def _isolated_imports(packages: set[str]) -> collections.abc.Iterator[None]:
    """Imports of `packages` (and their submodules) in the block get this checkout's modules (torch.hub puts it first
    on sys.path while it loads this file) whatever the caller imported under those names; afterwards sys.modules
    holds the caller's modules again, the same objects, and none of the checkout's, so that the caller's later
    `import utils` gives its own. What the block imported keeps its references to the checkout's modules.
    It lives here, not in a package of the project: it must run before any of them is imported."""
    def ours(name: str) -> bool:
        return name.partition('.')[0] in packages

    callers = {name: module for name, module in list(sys.modules.items()) if ours(name)}
    for name in callers:
        del sys.modules[name]
    try:
        yield
    finally:
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(callers)


with _isolated_imports(_project_packages()):
    from api import FaceEnhancer as _FaceEnhancer
    from api import PhotoRestorer as _PhotoRestorer
    from weights.generator import load_generator_weights as _load_weights
    from weights.released import RELEASED_MODELS as _RELEASED_MODELS
    from weights.released import ReleasedModel as _ReleasedModel

dependencies = ['torch', 'numpy']

INPUTS = {
    'sparnet': '(N, 3, 128, 128): a 16x16 face enlarged to 128x128 with bicubic interpolation, as test.py does',
    'sparnethd': '(N, 3, 512, 512): a face aligned to the FFHQ template (python -m scripts.align_and_crop_dir)',
}


def _entry(model: _ReleasedModel) -> collections.abc.Callable[..., torch.nn.Module]:
    def load(pretrained: bool = True, weights_dir: str | None = None) -> torch.nn.Module:
        net = model.spec.build()
        if pretrained:
            path = model.remote.fetch(weights_dir)
            _load_weights(net, path, model.spec, label=path)
        return net.eval()
    load.__name__ = load.__qualname__ = model.name
    load.__doc__ = f"""{model.description}.

    Input: float tensor {INPUTS[model.spec.model]}, RGB in [-1, 1] (x / 127.5 - 1 of 8-bit pixels).
    Output: the enhanced faces, same shape and range (clamp to [-1, 1], then (y + 1) * 127.5 gives 8-bit pixels).

    pretrained: load the released weights ({model.file_name}, downloaded into the weights cache on first use and
    checked), else leave the network's initial random weights. weights_dir: another folder than the cache.
    Flags of the network, as the scripts spell them: {model.flags()}.
    """
    return load


globals().update({name: _entry(model) for name, model in _RELEASED_MODELS.items()})


def face_enhancer(weights: str = 'sparnethd_attn2d', **choices: typing.Any) -> _FaceEnhancer:
    """The Python API's `FaceEnhancer` (docs/python-api.md): uint8 aligned faces in, enhanced faces out.

    weights: the API's `model` (torch.hub.load's own `model` is the entry's name): a released name, a .pth file or
    URL, or another project's face restorer (gfpgan_v1.4, restoreformer, codeformer...); choices: its keyword
    arguments (device, precision, batch_size, weights_dir, ...), test.py's flags.
    """
    return _FaceEnhancer(weights, **choices)


def photo_restorer(weights: str = 'sparnethd_attn2d', **choices: typing.Any) -> _PhotoRestorer:
    """The Python API's `PhotoRestorer` (docs/python-api.md): whole photos (`restore`) and videos (`restore_video`)
    with every face found, enhanced and pasted back.

    weights: as `face_enhancer`'s; choices: its keyword arguments (detector, upscale, bg_upsampler, device,
    precision, ...), test_enhance_single_unalign.py's flags.
    """
    return _PhotoRestorer(weights, **choices)
