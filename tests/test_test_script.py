"""test.py end to end with the original flags and released-format checkpoints (random weights)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.commands import run_in_process, run_script, run_test_py
from scripts import export_onnx
from utils.image_io import read_rgb
from utils.tensor_image import tensor_to_uint8, uint8_to_tensor
from weights.generator import read_state_dict
from weights.released import RELEASED_MODELS

ORIGINAL_FLAGS = {
    'sparnet': ['--model', 'sparnet', '--name', 'SPARNet_S16_V4_Attn2D', '--load_size', '128'],
    'sparnet_light_attn3d': ['--model', 'sparnet', '--name', 'SPARNet_S16_V4_Attn3D', '--res_depth', '1',
                             '--att_name', 'spar3d', '--load_size', '128'],
    'sparnethd_attn2d': ['--model', 'sparnethd', '--name', 'SPARNetHD_V4_Attn2D', '--res_depth', '10',
                         '--att_name', 'spar', '--Gnorm', "'in'", '--load_size', '512'],
    'sparnethd_attn3d': ['--model', 'sparnethd', '--name', 'SPARNetHD_V4_Attn3D', '--res_depth', '10',
                         '--att_name', 'spar3d', '--Gnorm', "'in'", '--load_size', '512'],
}


def rgb(size, seed):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def expected_output(name, checkpoint, lr_path, load_size):
    """The reference module on the PIL-bicubic-resized input, truncated as the published code saves."""
    net = RELEASED_MODELS[name].spec.build()
    net.load_state_dict(read_state_dict(checkpoint))
    img = read_rgb(lr_path).resize((load_size, load_size), Image.BICUBIC)
    with torch.no_grad():
        out = net.eval()(uint8_to_tensor(np.asarray(img))[None]).clamp(-1, 1)
    return tensor_to_uint8(out)[0]


def flags_of(checkpoint, dataroot, out, *extra, flags=ORIGINAL_FLAGS['sparnet']):
    """test.py's command line; `checkpoint` None gives no --pretrain_model_path (for --onnx_model)."""
    weights = ['--pretrain_model_path', str(checkpoint)] if checkpoint else []
    return ['--gpus', '1', *flags, '--dataset_name', 'single', '--dataroot', str(dataroot), *weights,
            '--save_as_dir', str(out), *extra]


def run_test(*args, **kwargs):
    """test.py run in this process on `flags_of(*args, **kwargs)`: exit code, stdout, stderr."""
    return run_in_process(run_test_py, flags_of(*args, **kwargs), 'test.py')


@pytest.fixture
def lr_folder(tmp_path):
    """16x16 LR faces in all the image modes users bring, a subfolder, a broken file and a text file."""
    root = tmp_path / 'LR'
    (root / 'sub').mkdir(parents=True)
    Image.fromarray(rgb(16, 0)).save(root / 'rgb.png')
    Image.fromarray(rgb(16, 1)).save(root / 'sub' / 'photo.jpg', quality=95)
    Image.fromarray(rgb(16, 2)[..., 0]).save(root / 'gray.png')
    Image.fromarray(np.dstack([rgb(16, 3), np.full((16, 16), 128, np.uint8)])).save(root / 'rgba.png')
    Image.fromarray(rgb(16, 4)).convert('P').save(root / 'palette.png')
    Image.fromarray((rgb(16, 5)[..., 0].astype(np.uint16) * 257)).save(root / 'deep16.png')
    Image.fromarray(rgb(16, 6)).save(root / 'anim.gif', save_all=True, append_images=[Image.fromarray(rgb(16, 7))])
    (root / 'broken.png').write_bytes(b'\x89PNG not really')
    (root / 'notes.txt').write_text('not an image')
    return root


@pytest.mark.slow
def test_folder_with_every_mode_broken_and_non_image_files(released_checkpoint, lr_folder, tmp_path):
    checkpoint = released_checkpoint('sparnet')
    out = tmp_path / 'out'
    result = run_test(checkpoint, lr_folder, out, '--batch_size', '4', '--reference_impl')
    assert result.returncode == 1, result.stderr
    assert '7 done, 1 skipped (not images), 1 failed' in result.stdout
    assert 'broken.png: not a readable image' in result.stderr and 'notes.txt: not an image file' in result.stderr
    assert 'test: 8/8 images (100%)' in result.stderr and '\r' not in result.stderr  # stderr is a pipe: plain lines
    written = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    assert written == ['anim.png', 'deep16.png', 'gray.png', 'palette.png', 'rgb.png', 'rgba.png', 'sub/photo.jpg']
    saved = np.asarray(Image.open(out / 'rgb.png'))
    assert saved.shape == (128, 128, 3)
    # a batch of 4 against one image: the conv kernels may sum in another order at another batch size (seen on
    # AVX2 CPUs), so a value on a level's edge may be saved one level off, and rarely
    assert_within_one_level(saved, expected_output('sparnet', checkpoint, lr_folder / 'rgb.png', 128), 0.001)
    gray = np.asarray(Image.open(out / 'gray.png'))
    assert gray.shape == (128, 128, 3)
    assert_within_one_level(np.asarray(Image.open(out / 'anim.png')),  # its first frame, written as PNG
                            expected_output('sparnet', checkpoint, lr_folder / 'anim.gif', 128), 0.001)



@pytest.mark.slow
@pytest.mark.parametrize('name', ['sparnet_light_attn3d', 'sparnethd_attn2d', 'sparnethd_attn3d'])
def test_released_formats_run_with_original_flags(released_checkpoint, tmp_path, name):
    """Each released format under its original command line. The light model through `python test.py` itself,
    on the reference path: the published code's outputs exactly. SPARNetHD in this process, on the default fast
    path, at --load_size 64 (the original flags, then a smaller size, as a user may give): within one level."""
    checkpoint = released_checkpoint(name)
    hd = 'hd' in name
    load_size = 64 if hd else 128
    root = tmp_path / 'LR'
    root.mkdir()
    Image.fromarray(rgb(load_size // 4, 7)).save(root / 'face.png')
    extra = ['--load_size', '64'] if hd else ['--reference_impl']
    argv = flags_of(checkpoint, root, tmp_path / 'out', *extra, flags=ORIGINAL_FLAGS[name])
    result = run_in_process(run_test_py, argv, 'test.py') if hd else run_script('test.py', *argv)
    assert result.returncode == 0, result.stderr
    assert '1 done, 0 skipped (not images), 0 failed' in result.stdout
    saved = np.asarray(Image.open(tmp_path / 'out' / 'face.png'))
    expected = expected_output(name, checkpoint, root / 'face.png', load_size)
    if hd:
        assert_within_one_level(saved, expected)
    else:
        np.testing.assert_array_equal(saved, expected)


@pytest.mark.parametrize('given, flags, hint', [
    ('sparnet_light_attn3d', [*ORIGINAL_FLAGS['sparnet'], '--att_name', 'spar'], '--att_name spar3d'),
    ('sparnet', ORIGINAL_FLAGS['sparnet_light_attn3d'], '--res_depth 10 --att_name spar '),
])
@pytest.mark.slow
def test_wrong_attention_fails_clearly_and_writes_nothing(released_checkpoint, lr_folder, tmp_path,
                                                          given, flags, hint):
    out = tmp_path / 'out'
    result = run_test(released_checkpoint(given), lr_folder, out, flags=flags)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(error_lines) == 1 and hint in error_lines[0] and 'Nothing was loaded' in error_lines[0]
    assert not out.exists()


def test_missing_dataroot_and_empty_folder(released_checkpoint, tmp_path):
    checkpoint = released_checkpoint('sparnet')
    result = run_test(checkpoint, tmp_path / 'nowhere', tmp_path / 'out')
    assert result.returncode == 2 and 'no such folder' in result.stderr
    (tmp_path / 'empty').mkdir()
    result = run_test(checkpoint, tmp_path / 'empty', tmp_path / 'out')
    assert result.returncode == 2 and 'no images found' in result.stderr


def assert_within_one_level(saved, expected, differing=0.01):
    """Paths that compute the same function to ~1e-5 may flip a truncated level, nothing more, on fewer than the
    `differing` share of the values."""
    diff = np.abs(saved.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff != 0).mean() < differing


@pytest.mark.slow
def test_default_fast_path_matches_reference(released_checkpoint, lr_folder, tmp_path):
    checkpoint = released_checkpoint('sparnet')
    result = run_test(checkpoint, lr_folder, tmp_path / 'out', '--batch_size', '3')
    assert result.returncode == 1 and '7 done' in result.stdout  # broken.png fails, as above
    for name in ('rgb.png', 'rgba.png', 'deep16.png'):
        assert_within_one_level(np.asarray(Image.open(tmp_path / 'out' / name)),
                                expected_output('sparnet', checkpoint, lr_folder / name, 128))


@pytest.mark.slow
def test_fp16_on_cpu_refused_before_any_output(released_checkpoint, lr_folder, tmp_path):
    result = run_test(released_checkpoint('sparnet'), lr_folder, tmp_path / 'out', '--precision', 'fp16')
    assert result.returncode == 2 and 'error: --precision fp16: fp16 runs only on a GPU' in result.stderr
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_onnx_model_path(released_checkpoint, lr_folder, tmp_path):
    checkpoint = released_checkpoint('sparnet_light_attn3d')
    onnx_path = tmp_path / 'light.onnx'
    exported = run_in_process(export_onnx.main, ['--res_depth', '1', '--att_name', 'spar3d', '--pretrain_model_path',
                                                 checkpoint, '--output', str(onnx_path)], 'export_onnx.py')
    assert exported.returncode == 0, exported.stderr
    flags = ORIGINAL_FLAGS['sparnet_light_attn3d']
    result = run_test(None, lr_folder, tmp_path / 'out', '--onnx_model', str(onnx_path), flags=flags)
    assert result.returncode == 1 and '7 done' in result.stdout
    assert_within_one_level(np.asarray(Image.open(tmp_path / 'out' / 'rgb.png')),
                            expected_output('sparnet_light_attn3d', checkpoint, lr_folder / 'rgb.png', 128))
    result = run_test(None, lr_folder, tmp_path / 'out2', '--onnx_model', str(onnx_path),
                      '--load_size', '64', flags=flags)
    assert result.returncode == 2 and 'exported for 128x128 inputs, but --load_size is 64' in result.stderr
    result = run_test(checkpoint, lr_folder, tmp_path / 'out3', '--onnx_model', str(onnx_path), flags=flags)
    assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith(
        f'error: --onnx_model runs {onnx_path} with ONNX Runtime; drop --pretrain_model_path')
    assert not (tmp_path / 'out2').exists() and not (tmp_path / 'out3').exists()


def test_bad_number_is_one_line_and_exit_2(released_checkpoint, lr_folder, tmp_path):
    result = run_test(released_checkpoint('sparnet'), lr_folder, tmp_path / 'out', '--ntest', '0')
    assert result.returncode == 2 and not (tmp_path / 'out').exists()
    assert result.stderr.splitlines() == ["error: argument --ntest: must be an integer 1 or more (or inf), got '0' "
                                          "(test.py -h lists the flags)"]


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['nan', 'overflow'])
def test_non_finite_weights_refused_and_non_finite_outputs_not_written(broken_checkpoint, tmp_path, kind):
    """NaN weights: refused at load (exit 2). Finite weights whose outputs overflow: each image fails (exit 1).
    Either way no black image is written."""
    root = tmp_path / 'LR'
    root.mkdir()
    for seed in range(2):
        Image.fromarray(rgb(16, seed)).save(root / f'{seed}.png')
    checkpoint = broken_checkpoint('sparnet_light_attn3d', kind)
    result = run_test(checkpoint, root, tmp_path / 'out', flags=ORIGINAL_FLAGS['sparnet_light_attn3d'])
    if kind == 'nan':
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == (
            f'error: {checkpoint}: tensor encoder.0.conv2d.weight holds NaN or infinite values (a diverged training '
            'run or a corrupted file); nothing was loaded')
    else:
        assert result.returncode == 1 and '0 done, 0 skipped (not images), 2 failed' in result.stdout
        assert result.stderr.count("the network's output holds NaN or infinite values") == 2
    assert not any(names for _, _, names in os.walk(tmp_path / 'out'))
