"""torch.hub from this checkout (source='local'): one entry per released model, the network in eval mode with its
weights from the cache, downloaded from the local server on first use; loaded beside the caller's own packages named
as the project's."""
import importlib.util
import json
import os
import shutil

import pytest
import torch

from archs.generator_spec import random_generator
from helpers.commands import ROOT, run_script
from helpers.hub_caller import CALLER_MODULES, PIPELINES, SIZE, top_level_packages, write_caller
from weights.released import RELEASED_MODELS


def hubconf():
    """hubconf.py read as torch.hub reads it (torch.hub.list and help take GitHub repositories only)."""
    spec = importlib.util.spec_from_file_location('hubconf', os.path.join(ROOT, 'hubconf.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_entry_per_released_model_and_per_pipeline_with_what_they_take_and_give_documented():
    module = hubconf()
    entries = [name for name in dir(module) if callable(getattr(module, name)) and not name.startswith('_')]
    assert sorted(entries) == sorted([*RELEASED_MODELS, *PIPELINES])  # torch.hub.list's rule
    assert "The Python API's `PhotoRestorer`" in module.photo_restorer.__doc__
    doc = module.sparnethd_attn2d.__doc__
    assert '(N, 3, 512, 512)' in doc and 'RGB in [-1, 1]' in doc and 'Output:' in doc
    assert '(N, 3, 128, 128)' in module.sparnet.__doc__


@pytest.mark.slow
def test_load_downloads_once_then_uses_the_cache(weights_server, released_checkpoint):
    weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    net = torch.hub.load(ROOT, 'sparnet_light_attn3d', source='local', pretrained=True)
    again = torch.hub.load(ROOT, 'sparnet_light_attn3d', source='local')
    assert weights_server.requests == [f"/{RELEASED_MODELS['sparnet_light_attn3d'].file_name}"]
    assert not net.training and not again.training
    expected = random_generator(RELEASED_MODELS['sparnet_light_attn3d'].spec)  # what the served file holds
    faces = torch.rand(2, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(faces), expected(faces))
    random = torch.hub.load(ROOT, 'sparnet_light_attn3d', source='local', pretrained=False)
    assert len(weights_server.requests) == 1
    assert not torch.equal(random.state_dict()['encoder.0.conv2d.weight'], net.state_dict()['encoder.0.conv2d.weight'])


@pytest.mark.slow
def test_every_entry_loads_beside_the_callers_own_utils_models_data_and_options(tmp_path, weights_server,
                                                                                 released_checkpoint):
    """Issue 36: a program that imported its own `utils` (and `models`, ...) got "No module named 'utils.cli'"."""
    pretrained = 'sparnet_light_attn3d'
    weights_server.add_released(pretrained, released_checkpoint(pretrained))
    hub_dir, repo = tmp_path / 'hub', 'owner/sparnet:main'
    for name in [*top_level_packages(ROOT), 'hubconf.py']:  # what a GitHub download holds, less .git, tests, docs
        copy = shutil.copytree if name != 'hubconf.py' else shutil.copyfile
        copy(os.path.join(ROOT, name), hub_dir / 'owner_sparnet_main' / name)
    caller = write_caller(str(tmp_path / 'caller'))
    hd_weights = released_checkpoint('sparnethd_attn2d')
    done = run_script(caller, ROOT, str(hub_dir), repo, pretrained, hd_weights, str(tmp_path), cwd=tmp_path / 'caller',
                      timeout=300)
    assert done.returncode == 0, done.stderr
    with open(tmp_path / 'results.json') as f:
        results = json.load(f)
    assert results['entries'] == sorted([*RELEASED_MODELS, *PIPELINES])
    assert results['runs'] == {
        **{f'{where}: {name}': [[1, 3, SIZE, SIZE], True, False]
           for where in ('checkout', 'hub cache') for name in RELEASED_MODELS},
        **{f'{where}: face_enhancer': [[2, 128, 128, 3], 'uint8', None] for where in ('checkout', 'hub cache')},
        **{f'{where}: photo_restorer': [[512, 512, 3], 'uint8', 1] for where in ('checkout', 'hub cache')}}
    assert set(results['before']) == {*CALLER_MODULES, *(name.split('.')[0] for name in CALLER_MODULES)}
    assert results['replaced'] == [] and results['left'] == []  # the caller's modules back, the project's gone
    assert results['works'] == {name: f'caller {name}' for name in CALLER_MODULES}
    assert results['utils'] == [str(tmp_path / 'caller' / 'utils' / '__init__.py'), 'caller utils.cli']
    assert weights_server.requests == [f"/{RELEASED_MODELS[pretrained].file_name}"]  # then from the cache
    outputs = torch.load(tmp_path / 'outputs.pt', weights_only=True)
    expected = random_generator(RELEASED_MODELS[pretrained].spec)  # what the served file holds
    with torch.no_grad():
        for where in ('checkout', 'hub cache'):
            torch.testing.assert_close(outputs[where], expected(outputs['faces']))
