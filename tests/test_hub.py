"""torch.hub from this checkout (source='local'): one entry per released model, the network in eval mode with its
weights from the cache, downloaded from the local server on first use."""
import importlib.util
import os

import pytest
import torch

from archs.generator_spec import random_generator
from helpers.commands import ROOT
from weights.released import RELEASED_MODELS


def hubconf():
    """hubconf.py read as torch.hub reads it (torch.hub.list and help take GitHub repositories only)."""
    spec = importlib.util.spec_from_file_location('hubconf', os.path.join(ROOT, 'hubconf.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_entry_per_released_model_with_its_input_and_output_documented():
    module = hubconf()
    entries = [name for name in dir(module) if callable(getattr(module, name)) and not name.startswith('_')]
    assert sorted(entries) == sorted(RELEASED_MODELS)  # torch.hub.list's rule
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
