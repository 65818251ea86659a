"""Helpers of the tests: small real-face folders, tiny training flags, test.py runs, small random SPARNets."""
import os
import shutil

import numpy as np
import pytest
import skimage.data
import torch
import torchvision
from PIL import Image
from torch.nn import functional as F

import train
from models.blocks import add_spectral_norm
from models.sparnet import SPARNet
from utils import atomic
from utils.scripts import load_script
from utils.tensor_image import tensor_to_uint8, uint8_to_tensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The real architectures at their smallest workable input (64 px), fast settings for the CPU.
TINY_FLAGS = {
    'sparnet': ['--model', 'sparnet', '--dataset_name', 'celeba', '--res_depth', '1', '--load_size', '64',
                '--scale_factor', '8', '--lr', '0.0005'],
    'sparnethd': ['--model', 'sparnethd', '--dataset_name', 'ffhq', '--res_depth', '1', '--load_size', '64',
                  '--num_D', '2', '--n_layers_D', '2', '--beta1', '0.5', '--g_lr', '0.0002'],
}


def face_images(count, seed=0, size=(88, 80)):
    """`count` different crops of the astronaut's face (a real photo), as (H, W, 3) uint8 arrays."""
    photo = skimage.data.astronaut()
    rng = np.random.default_rng(seed)
    faces = []
    for _ in range(count):
        top, left = rng.integers(20, 60), rng.integers(150, 200)
        crop = Image.fromarray(photo[top:top + 200, left:left + 180])
        faces.append(np.asarray(crop.resize((size[1], size[0]), Image.BICUBIC)))
    return faces


def face_folder(folder, count=6, seed=0):
    os.makedirs(folder, exist_ok=True)
    for index, face in enumerate(face_images(count, seed)):
        Image.fromarray(face).save(os.path.join(folder, f'face_{index:02d}.png'))
    return str(folder)


def vgg_weights(path):
    """Random VGG19 weights in torchvision's format (its `features.*` keys; the classifier is not needed)."""
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs['E'])  # vgg19().features
    torch.save({f'features.{k}': v for k, v in features.state_dict().items()}, path)
    return str(path)


def train_flags(root, model, name='run', *extra):
    """Flags of a tiny CPU run on the faces of `root/faces`, checkpoints and logs under `root`."""
    return ['--gpus', '0', '--name', name, *TINY_FLAGS[model], '--dataroot', os.path.join(root, 'faces'),
            '--batch_size', '2', '--num_threads', '0', '--checkpoints_dir', os.path.join(root, 'checkpoints'),
            '--log_dir', os.path.join(root, 'logs'), '--print_freq', '1', '--visual_freq', '1000',
            '--save_latest_freq', '1000', '--save_iter_freq', '0', '--save_epoch_freq', '0', *extra]


def run_training(flags):
    """train.py's main in this process; returns its exit code."""
    return train.main(flags)


def run_test_script(argv):
    """test.py's main in this process, with `argv` as its command line; returns its exit code."""
    return load_script('test.py').main(argv)


def check_test_script_output(checkpoint_flags, weights_path, spec, tmp_path, out_dir=None):
    """Run test.py on two LR faces with `checkpoint_flags`; its outputs must be those of `spec` with `weights_path`.

    Results go to --save_as_dir, or to `out_dir` when the flags place them there.
    """
    lr_dir = tmp_path / 'lr'
    save_flags = [] if out_dir else ['--save_as_dir', str(tmp_path / 'sr')]
    out_dir = out_dir or tmp_path / 'sr'
    lr_dir.mkdir()
    faces = [np.asarray(Image.fromarray(face).resize((64, 64), Image.BICUBIC)) for face in face_images(2, seed=9)]
    for index, face in enumerate(faces):
        Image.fromarray(face).save(lr_dir / f'{index}.png')
    code = run_test_script(['--gpus', '0', *checkpoint_flags, '--load_size', '64', '--dataset_name', 'single',
                            '--dataroot', str(lr_dir), *save_flags, '--num_threads', '0', '--reference_impl'])
    assert code == 0
    net = spec.build()
    net.load_state_dict(torch.load(weights_path, weights_only=True))
    with torch.no_grad():
        expected = tensor_to_uint8(net.eval()(uint8_to_tensor(np.stack(faces)).contiguous()).clamp(-1, 1))
    for index, image in enumerate(expected):
        np.testing.assert_array_equal(np.asarray(Image.open(out_dir / f'{index}.png')), image)


@pytest.fixture(autouse=True)
def no_checkpoints_left(request):
    """Delete the weights a test wrote in its tmp_path (gigabytes for SPARNetHD) once it is done."""
    yield
    tmp_path = request.node.funcargs.get('tmp_path')
    if tmp_path is not None:
        shutil.rmtree(tmp_path / 'checkpoints', ignore_errors=True)
        for path in tmp_path.glob('*.pth'):
            path.unlink()


def disk_full_for(monkeypatch, fails):
    """Temporary files of utils.atomic whose target's stem (`latest_train_state`, `latest_net_G`, ...) satisfies
    `fails(stem)` are opened on /dev/full: every write to them raises the real OSError ENOSPC, as on a full disk."""

    def open_full(tmp_path, mode='r', **kwargs):
        stem = os.path.basename(tmp_path).split('.')[0]
        return open('/dev/full' if fails(stem) else tmp_path, mode, **kwargs)
    monkeypatch.setattr(atomic, 'open', open_full, raising=False)


def assert_same_first_step(optimizers, reference, rtol=0.05):
    """`optimizers` ({name: optimizer state dict} after one Adam step) took the step of `reference`: Adam's first
    moment after one step is (1 - beta1) * gradient, so each parameter's must be within `rtol` (relative norm)."""
    assert optimizers.keys() == reference.keys()
    for name, optimizer_state in reference.items():
        for index, values in optimizer_state['state'].items():
            moment = optimizers[name]['state'][index]['exp_avg']
            assert int(values['step']) == int(optimizers[name]['state'][index]['step']) == 1, (name, index)
            assert (moment - values['exp_avg']).norm() <= rtol * values['exp_avg'].norm(), (name, index)


# Small SPARNets covering every norm, attention and activation (the fast-path and ONNX tests).
SMALL = dict(min_ch=8, max_ch=32, in_size=32, out_size=32, min_feat_size=8, res_depth=1, bottleneck_size=16)
CONFIGS = {
    'bn_2d': (dict(SMALL), False),
    'bn_3d_up': (dict(SMALL, out_size=64, att_name='spar3d'), False),
    'bn_2d_sn': (dict(SMALL, res_depth=2), True),
    'bn_3d_sn': (dict(SMALL, att_name='spar3d'), True),
    'in_2d_sn': (dict(SMALL, norm_type='in'), True),
    'in_3d_sn_hd_like': (dict(SMALL, max_ch=64, in_size=64, out_size=64, min_feat_size=16, norm_type='in',
                              att_name='spar3d', bottleneck_size=8), True),
    'in_3d': (dict(SMALL, norm_type='in', att_name='spar3d'), False),
    'gn_prelu': (dict(SMALL, min_ch=32, max_ch=64, norm_type='gn', relu_type='prelu'), False),
    'none_relu_3d': (dict(SMALL, norm_type='none', relu_type='relu', att_name='spar3d'), False),
    'bn_selu_sn': (dict(SMALL, relu_type='selu'), True),
    'bn_no_attention_level': (dict(SMALL, bottleneck_size=32), False),
    'in_identity_act': (dict(SMALL, norm_type='in', relu_type='none'), False),
}


def randomize(net, seed=0):
    """Random weights, norm affines, running statistics and PReLU slopes: nothing folds trivially."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
            if name.endswith('running_var'):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith('running_mean'):
                tensor.normal_(0, 0.3)
            elif '.norm.' in name and name.endswith('weight'):
                tensor.uniform_(0.5, 1.5)
            elif '.norm.' in name and name.endswith('bias'):
                tensor.normal_(0, 0.3)
            elif '.func.weight' in name:
                tensor.uniform_(0.05, 0.4)
            elif name.endswith('bias'):
                tensor.normal_(0, 0.1)
        for module in net.modules():
            if hasattr(module, 'weight_orig'):  # power iteration, so that sigma is near the spectral norm
                matrix = module.weight_orig.flatten(1)
                for _ in range(10):
                    module.weight_v.copy_(F.normalize(matrix.t() @ module.weight_u, dim=0))
                    module.weight_u.copy_(F.normalize(matrix @ module.weight_v, dim=0))
    return net


def build(name, seed=0):
    config, spectral = CONFIGS[name]
    net = SPARNet(**config)
    if spectral:
        add_spectral_norm(net)
    return randomize(net, seed)


def max_rel_diff(output, reference):
    return ((output - reference).abs().max() / reference.abs().max()).item()


def random_input(net_config, batch=3, seed=1):
    torch.manual_seed(seed)
    size = net_config['in_size']
    return torch.rand(batch, 3, size, size) * 2 - 1
