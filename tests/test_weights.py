"""Strict, safe loading of generator weights, and the diagnosis when a file doesn't fit."""
import io
import json
import os
import tarfile
import warnings

import numpy as np
import pytest
import torch

from archs.generator_spec import GeneratorSpec, random_generator
from metrics.fid import read_inception_weights
from utils.cli import UserError
from weights.checkpoint import load_train_state
from weights.generator import WeightsError, infer_spec, load_generator_weights, mismatch_message, read_state_dict
from weights.released import RELEASED_MODELS
from weights.spandrel_file import read_model_state

HERE = os.path.dirname(__file__)
SMALL_2D = GeneratorSpec('sparnet', 1, 'spar', 'bn')
SMALL_3D = GeneratorSpec('sparnet', 1, 'spar3d', 'bn')


def manifest_state_dict(name):
    with open(os.path.join(HERE, 'manifests', f'{name}.json')) as f:
        keys = json.load(f)['keys']
    return {k: torch.empty(shape, device='meta') for k, shape in keys.items()}


@pytest.mark.parametrize('spec', [GeneratorSpec('sparnethd', 1, 'spar', 'in'), GeneratorSpec('sparnethd', 0, 'spar3d',
                                                                                                'bn', 16),
                                  SMALL_3D, GeneratorSpec('sparnet', 2, 'spar', 'none', 8)])
def test_shapes_and_bytes_without_building_equal_the_built_network_s(spec):
    """GeneratorSpec derives spectral norm's keys on the meta device: the same keys, in the same order, as the
    network built on the CPU with torch's spectral_norm."""
    built = spec.build().state_dict()
    assert list(spec.shapes().items()) == [(key, tuple(value.shape)) for key, value in built.items()]
    assert spec.state_bytes() == sum(value.numel() * value.element_size() for value in built.values())


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(RELEASED_MODELS))
def test_infer_spec_from_released_shapes(name):
    assert infer_spec(manifest_state_dict(name)) == RELEASED_MODELS[name].spec


@pytest.mark.slow
def test_loads_exactly(tmp_path):
    source = random_generator(SMALL_3D, seed=1)
    path = tmp_path / 'w.pth'
    torch.save(source.state_dict(), path)
    target = load_generator_weights(SMALL_3D.build(), str(path), SMALL_3D)
    for key, value in source.state_dict().items():
        assert torch.equal(value, target.state_dict()[key]), key


@pytest.mark.parametrize('wrap', ['module', 'compiled', 'state_dict'])
def test_accepts_wrapped_files(tmp_path, wrap):
    state = random_generator(SMALL_2D, seed=2).state_dict()
    if wrap == 'module':
        saved = {f'module.{k}': v for k, v in state.items()}
    elif wrap == 'compiled':
        saved = {f'_orig_mod.{k}': v for k, v in state.items()}
    else:
        saved = {'state_dict': state, 'epoch': 3}
    torch.save(saved, tmp_path / 'w.pth')
    net = load_generator_weights(SMALL_2D.build(), str(tmp_path / 'w.pth'), SMALL_2D)
    assert torch.equal(net.state_dict()['out_conv.conv2d.weight'], state['out_conv.conv2d.weight'])


@pytest.mark.parametrize('given, wanted, hint', [
    (SMALL_3D, SMALL_2D, '--att_name spar3d'),
    (SMALL_2D, SMALL_3D, '--att_name spar '),
    (GeneratorSpec('sparnet', 3, 'spar', 'bn'), SMALL_2D, '--res_depth 3'),
    (GeneratorSpec('sparnet', 1, 'spar', 'in'), SMALL_2D, '--Gnorm in'),
])
def test_mismatch_names_fitting_flags_and_loads_nothing(tmp_path, given, wanted, hint):
    path = tmp_path / 'w.pth'
    torch.save(random_generator(given).state_dict(), path)
    net = wanted.build()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(WeightsError) as err:
        load_generator_weights(net, str(path), wanted)
    message = str(err.value)
    assert str(path) in message and wanted.flags() in message
    assert f'the file fits {given.flags()}' in message and hint in message
    assert '\n' not in message and 'Nothing was loaded' in message
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_spectral_norm_file_given_to_sparnet_points_to_sparnethd():
    state = manifest_state_dict('sparnethd_attn3d')
    spec = RELEASED_MODELS['sparnet'].spec
    message = mismatch_message('hd.pth', spec, state, spec.shapes())
    assert f"the file fits {RELEASED_MODELS['sparnethd_attn3d'].spec.flags()}" in message
    assert 'spectral-normalised convs' in message and 'plain convs' in message


@pytest.mark.slow
def test_half_spectral_norm_file_fits_nothing():
    state = manifest_state_dict('sparnethd_attn2d')
    state['encoder.0.conv2d.weight'] = state.pop('encoder.0.conv2d.weight_orig')
    assert infer_spec(state) is None
    spec = RELEASED_MODELS['sparnethd_attn2d'].spec
    message = mismatch_message('odd.pth', spec, state, spec.shapes())
    assert 'fits none of the' in message and '1 missing keys (encoder.0.conv2d.weight_orig)' in message


def test_refuses_files_that_run_code_without_torch_warnings(tmp_path, recwarn):
    class Payload:
        def __reduce__(self):
            return (os.system, ('echo pwned',))
    path = tmp_path / 'evil.pth'
    torch.save({'w': torch.zeros(1), 'x': Payload()}, path)
    with pytest.raises(WeightsError, match=r'refused: the file holds objects that would run code .*posix.system'):
        read_state_dict(str(path))
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize('make, message', [
    (lambda path: None, 'no such weights file'),
    (lambda path: path.mkdir(), 'is a folder, not a weights file'),
    (lambda path: path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8))),
     r'not a readable PyTorch weights file \(random bytes'),
    (lambda path: path.write_text('hello'), 'not a readable PyTorch weights file'),
    (lambda path: torch.save([torch.zeros(1)], path), 'expected a state dict'),
], ids=['missing', 'folder', 'random_bytes', 'text', 'list'])
def test_unusable_files_get_one_line(tmp_path, make, message):
    path = tmp_path / 'w.pth'
    make(path)
    with pytest.raises(WeightsError, match=message) as err:
        read_state_dict(str(path))
    assert str(path) in str(err.value) and '\n' not in str(err.value)


def test_files_torch_will_not_load_safely_are_one_line_without_its_advice_to_run_their_code(tmp_path):
    """torch's refusals of PyTorch's legacy .tar format and of TorchScript archives end with its advice to retry with
    weights_only=False (which would run the file's code): every reader of .pth files drops it."""
    legacy = tmp_path / 'legacy.pth'
    with tarfile.open(legacy, 'w') as tar:
        info = tarfile.TarInfo('storages')
        info.size = 1
        tar.addfile(info, io.BytesIO(b'0'))
    script = tmp_path / 'script.pt'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # torch.jit is deprecated in PyTorch 2.10+
        torch.jit.save(torch.jit.trace(torch.nn.Linear(1, 1), torch.zeros(1, 1)), script)
    for path, reason in [(legacy, 'files saved in the legacy .tar format'), (script, 'TorchScript archives')]:
        for read in (read_state_dict, lambda path: read_model_state(path, path), load_train_state,
                     lambda path: read_inception_weights(path, path)):
            with pytest.raises(UserError) as err:
                read(str(path))
            message = str(err.value)
            assert message.startswith(f'{path}: not a readable PyTorch ') and message.endswith(
                f'(random bytes, truncated or another format: {reason} cannot be read without running the code '
                'they hold)'), message
            assert 'weights_only' not in message and 'trusted source' not in message


def test_truncated_file(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save(random_generator(SMALL_2D).state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match='not a readable PyTorch weights file'):
        read_state_dict(str(path))


def test_non_finite_weights_refused_naming_the_tensor(tmp_path):
    state = random_generator(SMALL_2D).state_dict()
    state['res_layers.0.conv1.conv2d.weight'][0, 0, 0, 0] = float('nan')
    path = tmp_path / 'nan.pth'
    torch.save(state, path)
    net = SMALL_2D.build()
    with pytest.raises(WeightsError, match=r'tensor res_layers\.0\.conv1\.conv2d\.weight holds NaN or infinite'):
        load_generator_weights(net, str(path), SMALL_2D)
