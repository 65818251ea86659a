"""A program with packages of its own named as the project's, imported before it loads every torch.hub entry of the
project (issue 36: most programs have a `utils`). `write_caller` puts it and its packages into a folder, where
tests/test_hub.py runs it as a script, in a process of its own:

    python caller.py CHECKOUT HUB_DIR REPO PRETRAINED HD_WEIGHTS OUT_DIR

It lists the entries of REPO ('owner/name:branch', a copy of the checkout already in the torch.hub cache HUB_DIR),
loads each with source='local' from CHECKOUT, then from that copy (the networks: PRETRAINED with its weights, the
others without; the pipelines, `face_enhancer` and `photo_restorer`, with PRETRAINED's weights and the SPARNetHD
file HD_WEIGHTS), runs it, and writes what it saw to OUT_DIR/results.json and PRETRAINED's outputs to
OUT_DIR/outputs.pt.
"""
import importlib
import json
import os
import shutil
import sys

import numpy as np
import skimage.data
import torch

# The caller's own modules, named as modules of the project; each has a function whose() saying whose it is.
CALLER_MODULES = ('utils.cli', 'models.base_model', 'data.base_dataset', 'options.base_options')
SIZE = 64  # side of the faces run through every network: small, and a multiple of each one's downscaling


def write_caller(folder: str) -> str:
    """Write the caller's packages and this program into `folder`; the program's path."""
    for name in CALLER_MODULES:
        package, module = name.split('.')
        os.makedirs(os.path.join(folder, package), exist_ok=True)
        open(os.path.join(folder, package, '__init__.py'), 'a').close()
        with open(os.path.join(folder, package, f'{module}.py'), 'w') as f:
            f.write(f"def whose():\n    return 'caller {name}'\n")
    return shutil.copy(__file__, os.path.join(folder, 'caller.py'))


def top_level_packages(folder: str) -> set[str]:
    return {name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name, '__init__.py'))}


PIPELINES = ('face_enhancer', 'photo_restorer')


def run_pipeline(folder: str, entry: str, pretrained: str, hd_weights: str) -> list:
    """Load a pipeline entry from `folder` and run it: [shape of its output, dtype, faces found]."""
    if entry == 'face_enhancer':
        enhancer = torch.hub.load(folder, entry, source='local', weights=pretrained, device='cpu')
        enhanced = enhancer(np.zeros((2, SIZE, SIZE, 3), np.uint8))
        return [list(enhanced.shape), str(enhanced.dtype), None]
    with torch.hub.load(folder, entry, hd_weights, source='local', detector='hog', device='cpu') as restorer:
        restored = restorer.restore(skimage.data.astronaut())
    return [list(restored.final.shape), str(restored.final.dtype), len(restored.faces)]


def main(checkout: str, hub_dir: str, repo: str, pretrained: str, hd_weights: str, out_dir: str) -> None:
    callers = {name: importlib.import_module(name) for name in CALLER_MODULES}
    project = top_level_packages(checkout)
    before = {name: module for name, module in sys.modules.items() if name.split('.')[0] in project}
    torch.hub.set_dir(hub_dir)
    entries = torch.hub.list(repo, skip_validation=True, trust_repo=True, verbose=False)  # the cache: no network
    copy = os.path.join(hub_dir, repo.replace('/', '_').replace(':', '_'))  # torch.hub's owner_name_branch
    faces = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    runs, outputs, replaced, left = {}, {'faces': faces}, set(), set()
    for where, folder in (('checkout', checkout), ('hub cache', copy)):
        for entry in entries:
            if entry in PIPELINES:
                runs[f'{where}: {entry}'] = run_pipeline(folder, entry, pretrained, hd_weights)
                continue
            net = torch.hub.load(folder, entry, source='local', pretrained=entry == pretrained)
            with torch.no_grad():
                enhanced = net(faces)
            runs[f'{where}: {entry}'] = (list(enhanced.shape), bool(enhanced.isfinite().all()), net.training)
            if entry == pretrained:
                outputs[where] = enhanced
            replaced |= {name for name, module in before.items() if sys.modules.get(name) is not module}
            left |= {name for name in sys.modules if name.split('.')[0] in project and name not in before}
    import utils  # as the caller's code does after the load
    import utils.cli
    with open(os.path.join(out_dir, 'results.json'), 'w') as f:
        json.dump({'entries': entries, 'runs': runs, 'before': sorted(before), 'replaced': sorted(replaced),
                   'left': sorted(left), 'works': {name: module.whose() for name, module in callers.items()},
                   'utils': [utils.__file__, utils.cli.whose()]}, f)
    torch.save(outputs, os.path.join(out_dir, 'outputs.pt'))


if __name__ == '__main__':
    main(*sys.argv[1:])
