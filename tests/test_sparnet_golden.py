"""The networks against outputs computed by the published code, and against the released checkpoints' keys."""
import json
import os

import pytest
import torch

from archs.blocks import add_spectral_norm
from archs.sparnet import SPARNet
from weights.released import RELEASED_MODELS

HERE = os.path.dirname(__file__)
GOLDEN = sorted(f for f in os.listdir(os.path.join(HERE, 'golden')) if f.endswith('.pt'))


@pytest.mark.parametrize('name', GOLDEN)
def test_golden_output_reproduced(name):
    golden = torch.load(os.path.join(HERE, 'golden', name), weights_only=True)
    net = SPARNet(**golden['config'])
    if golden['spectral_norm']:
        add_spectral_norm(net)
    net.load_state_dict(golden['state_dict'], strict=True)
    with torch.no_grad():
        output = net.eval()(golden['input'])
    rel_err = (output - golden['output']).abs().max() / golden['output'].abs().max()
    assert output.shape == golden['output'].shape
    assert rel_err <= 1e-5


def test_golden_spectral_norm_uses_stored_vectors():
    """Eval mode must not run power iteration: u and v are the same before and after a forward."""
    golden = torch.load(os.path.join(HERE, 'golden', 'small_in_spar3d_sn.pt'), weights_only=True)
    net = add_spectral_norm(SPARNet(**golden['config']))
    net.load_state_dict(golden['state_dict'])
    with torch.no_grad():
        net.eval()(golden['input'])
    for key, value in net.state_dict().items():
        if key.endswith(('weight_u', 'weight_v')):
            assert torch.equal(value, golden['state_dict'][key]), key


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(RELEASED_MODELS))
def test_released_manifest_matched(name):
    """The table's networks have the released files' keys and shapes, and its parameter counts are theirs."""
    with open(os.path.join(HERE, 'manifests', f'{name}.json')) as f:
        manifest = json.load(f)
    spec = RELEASED_MODELS[name].spec
    assert spec.spectral_norm == manifest['spectral_norm']
    with torch.device('meta'):
        net = spec.build()
    assert RELEASED_MODELS[name].params == manifest['params'] == sum(p.numel() for p in net.parameters())
    state = net.state_dict()
    assert list(state) == list(manifest['keys'])
    assert {k: list(v.shape) for k, v in state.items()} == manifest['keys']
    assert sum(p.numel() for p in net.parameters()) == manifest['params']
