"""SPARNetHD losses and discriminator: hand-computed values and the published formulations."""
import argparse
import dataclasses
import hashlib
import os
import shutil

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from archs.discriminator import MultiScaleDiscriminator, define_D, upgrade_discriminator_keys
from helpers.training import vgg_weights
from losses import perceptual
from losses.gan import GANLoss, feature_matching_loss
from losses.perceptual import VGG19_FILE, VGG19_LEGACY_PATH, VGGPerceptualLoss
from utils.cli import UserError
from weights.download import DownloadError
from weights.generator import WeightsError

pytestmark = pytest.mark.usefixtures('one_torch_thread')

PRED = torch.tensor([[-2.0, -0.5, 0.3, 1.5]])


@pytest.mark.parametrize('mode, real_d, fake_d, g', [
    ('hinge', (3 + 1.5 + 0.7 + 0) / 4, (0 + 0.5 + 1.3 + 2.5) / 4, 0.7 / 4),
    ('lsgan', (9 + 2.25 + 0.49 + 0.25) / 4, (4 + 0.25 + 0.09 + 2.25) / 4, (9 + 2.25 + 0.49 + 0.25) / 4),
])
def test_gan_losses_hand_computed(mode, real_d, fake_d, g):
    loss = GANLoss(mode)
    assert loss(PRED, True).item() == pytest.approx(real_d)
    assert loss(PRED, False).item() == pytest.approx(fake_d)
    assert loss(PRED, True, for_discriminator=False).item() == pytest.approx(g)


def test_vanilla_gan_loss_is_binary_cross_entropy():
    softplus = torch.log1p(torch.exp(-PRED)).mean().item(), torch.log1p(torch.exp(PRED)).mean().item()
    assert GANLoss('vanilla')(PRED, True).item() == pytest.approx(softplus[0])
    assert GANLoss('vanilla')(PRED, False).item() == pytest.approx(softplus[1])
    assert GANLoss('vanilla')(PRED, True, for_discriminator=False).item() == pytest.approx(softplus[0])


def test_feature_matching_sums_layers_averages_scales_and_stops_real_gradient():
    fake = [(None, [torch.zeros(1, 2, 2, 2, requires_grad=True), torch.zeros(1, 1, 4, 4, requires_grad=True)]),
            (None, [torch.zeros(1, 3, 1, 1, requires_grad=True)])]
    real = [(None, [torch.full((1, 2, 2, 2), 1.0, requires_grad=True), torch.full((1, 1, 4, 4), -3.0)]),
            (None, [torch.full((1, 3, 1, 1), 2.0)])]
    loss = feature_matching_loss(fake, real)
    assert loss.item() == pytest.approx(((1.0 + 3.0) + 2.0) / 2)
    loss.backward()
    assert real[0][1][0].grad is None and fake[0][1][0].grad is not None


@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory):
    return vgg_weights(tmp_path_factory.mktemp('vgg') / 'vgg19-dcbb9e9d.pth')


def published_perceptual_loss(weights_path, output, target):
    """The published formulation: torchvision vgg19 (in-place ReLUs) cut at [0:3] [3:8] [8:17] [17:26] [26:35],
    features collected over the whole pass, L1 summed; inputs normalised and enlarged to 224 by hand."""
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs['E'])
    features.load_state_dict({k[len('features.'):]: v for k, v in torch.load(weights_path).items()})
    slices = [features[a:b] for a, b in ((0, 3), (3, 8), (8, 17), (17, 26), (26, 35))]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def run(x):
        x = F.interpolate(((x + 1) / 2 - mean) / std, size=(224, 224), mode='bilinear', align_corners=False)
        outputs = []
        for vgg_slice in slices:
            x = vgg_slice(x)
            outputs.append(x)
        return outputs
    return sum(F.l1_loss(o, t) for o, t in zip(run(output), run(target)))


@pytest.mark.slow
def test_perceptual_loss_equals_published_formulation(vgg_file):
    torch.manual_seed(0)
    output, target = torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 3, 64, 64) * 2 - 1
    output.requires_grad_(True)
    criterion = VGGPerceptualLoss(vgg_file)
    loss = criterion(output, target)
    with torch.no_grad():
        expected = published_perceptual_loss(vgg_file, output, target)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert output.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in criterion.parameters())
    assert not criterion.train().training


def test_missing_vgg_weights_name_the_file_and_where_it_comes_from(tmp_path):
    with pytest.raises(UserError) as err:
        VGGPerceptualLoss(str(tmp_path / 'vgg19-dcbb9e9d.pth'))
    message = str(err.value)
    assert 'vgg19-dcbb9e9d.pth: no such file' in message and 'download.pytorch.org/models/vgg19' in message
    assert '--lambda_pcp 0' in message and '\n' not in message


def test_other_weights_refused_as_vgg(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'features.0.weight': torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match='not torchvision VGG19 weights'):
        VGGPerceptualLoss(str(path))


def test_vgg19_weights_come_from_the_original_place_or_the_cache(vgg_file, weights_server, tmp_path,
                                                                 monkeypatch):
    """Without --vgg_weights: ./pretrain_models/ if the file is there, else the cache, downloaded once.
    torchvision's hash prefix in the file name (dcbb9e9d) is checked: the random stand-in is refused."""
    monkeypatch.chdir(tmp_path)
    weights_server.add(vgg_file, VGG19_FILE)
    with pytest.raises(DownloadError, match=r'vgg19: the file downloaded from .* has SHA-256 [0-9a-f]+, expected '
                                            r'dcbb9e9d: a changed or corrupted file; it was deleted'):
        perceptual.VGG19_WEIGHTS.fetch()
    assert not os.path.exists(weights_server.cache) or os.listdir(weights_server.cache) == []
    with open(vgg_file, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    stand_in = dataclasses.replace(perceptual.VGG19_WEIGHTS, sha256=digest[:8])
    cached = os.path.join(weights_server.cache, VGG19_FILE)
    assert stand_in.fetch() == cached and stand_in.fetch() == cached
    assert len(weights_server.requests) == 2  # the refused download and the accepted one
    os.makedirs('pretrain_models')
    shutil.copyfile(vgg_file, VGG19_LEGACY_PATH)
    assert stand_in.fetch() == VGG19_LEGACY_PATH and len(weights_server.requests) == 2


def test_vgg19_download_of_other_weights_is_refused(weights_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({'features.0.weight': torch.zeros(8, 3, 3, 3)}, tmp_path / 'other.pth')
    weights_server.add(str(tmp_path / 'other.pth'), VGG19_FILE)
    with pytest.raises(DownloadError, match='was refused and deleted: .*not torchvision VGG19 weights'):
        dataclasses.replace(perceptual.VGG19_WEIGHTS, sha256=None).fetch()
    assert not os.path.exists(weights_server.cache) or os.listdir(weights_server.cache) == []


def d_options(**values):
    base = {'num_D': 3, 'n_layers_D': 4, 'Dnorm': 'in', 'load_size': 512, 'init_type': 'normal', 'init_gain': 0.02}
    return argparse.Namespace(**{**base, **values})


def test_discriminator_layout_and_spectral_norm_on_every_conv():
    net = define_D(d_options())
    assert len(net.D_pool) == 3
    channels = [layer.conv2d.out_channels for layer in net.D_pool[0].model]
    assert channels == [64, 128, 256, 512, 512]
    assert [layer.conv2d.stride[0] for layer in net.D_pool[0].model] == [1, 2, 2, 2, 2]
    score = net.D_pool[0].score_out.conv2d
    assert score.padding == (0, 0) and score.out_channels == 1 and score.bias is not None
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 * 6 and all(hasattr(m, 'weight_orig') and hasattr(m, 'weight_u') for m in convs)
    assert isinstance(net.D_pool[0].model[1].norm.norm, nn.InstanceNorm2d)


def test_discriminator_keys_are_the_published_ones_and_our_earlier_files_still_load():
    state = define_D(d_options(num_D=2, n_layers_D=2, load_size=64)).state_dict()
    score_keys = sorted(k for k in state if 'score_out' in k)
    assert score_keys == [f'D_pool.{i}.score_out.conv2d.{name}' for i in range(2)
                          for name in ('bias', 'weight_orig', 'weight_u', 'weight_v')]
    earlier = {k.replace('score_out.conv2d.', 'score_out.'): v for k, v in state.items()}
    assert earlier.keys() != state.keys()
    upgraded = upgrade_discriminator_keys(earlier)
    assert list(upgraded) == list(state) and all(upgraded[k] is v for k, v in earlier.items() if k in state)
    fresh = define_D(d_options(num_D=2, n_layers_D=2, load_size=64))
    fresh.load_state_dict(upgraded)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize('size, num_D, n_layers', [(64, 2, 2), (72, 1, 3), (96, 3, 2)])
def test_scales_are_bicubic_halvings_and_size_check_matches_forward(size, num_D, n_layers):
    torch.manual_seed(0)
    net = MultiScaleDiscriminator(num_D, n_layers, 'in')
    seen = []
    for d in net.D_pool:
        d.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    x = torch.randn(1, 3, size, size)
    results = net(x)
    expected = x
    for scale in range(num_D):
        assert torch.equal(seen[scale], expected)
        expected = F.interpolate(expected, scale_factor=0.5, mode='bicubic', align_corners=False)
    assert len(results) == num_D and all(len(feats) == n_layers + 1 for _, feats in results)
    assert results[-1][1][-1].shape[-1] == net.coarsest_feature_size(size)
    assert results[-1][0].shape[-1] == net.coarsest_feature_size(size) - 2


def test_too_small_load_size_refused_in_one_line():
    with pytest.raises(UserError, match='--load_size 64 is too small for --num_D 3 --n_layers_D 4'):
        define_D(d_options(load_size=64))
