"""Initial training weights as the published recipe: N(0, 0.02) convs, zero biases, N(1, 0.02) batch-norm scales."""
import math

import pytest
import torch
from torch import nn

from archs.initial_weights import init_weights
from helpers.training import training_model


def conv_weights(net):
    """(conv module, the tensor its weight is drawn into) of every conv: `weight_orig` under spectral norm."""
    return [(module, getattr(module, 'weight_orig', module.weight)) for module in net.modules()
            if isinstance(module, nn.Conv2d)]


@pytest.mark.slow
@pytest.mark.parametrize('model, spectral', [('sparnet', False), ('sparnethd', True)])
def test_fresh_generator_and_discriminator_have_the_published_initial_statistics(model, spectral):
    trained = training_model(model)
    networks = {'G': trained.netG, 'D': trained.netD} if model == 'sparnethd' else {'G': trained.netG}
    for name, net in networks.items():
        convs = conv_weights(net)
        assert convs and all(hasattr(module, 'weight_orig') == spectral for module, _ in convs)
        for module, weight in convs:
            count = weight.numel()
            assert abs(weight.mean().item()) < 5 * 0.02 / math.sqrt(count), (name, weight.shape)
            assert weight.std().item() == pytest.approx(0.02, rel=max(0.05, 5 / math.sqrt(2 * count)))
            if module.bias is not None:
                assert torch.count_nonzero(module.bias) == 0
        pooled = torch.cat([weight.flatten() for _, weight in convs])
        assert pooled.std().item() == pytest.approx(0.02, rel=0.01) and abs(pooled.mean().item()) < 1e-4
        norms = [module for module in net.modules() if isinstance(module, nn.BatchNorm2d)]
        if norms:
            scales = torch.cat([module.weight.flatten() for module in norms])
            assert scales.mean().item() == pytest.approx(1.0, abs=0.005)
            assert scales.std().item() == pytest.approx(0.02, rel=0.1)
            assert all(torch.count_nonzero(module.bias) == 0 for module in norms)
    if model == 'sparnethd':
        assert trained.netG.state_dict().keys() == trained.netH.state_dict().keys()
        ema_state = trained.netH.state_dict()
        assert all(torch.equal(value, ema_state[key]) for key, value in trained.netG.state_dict().items())


def test_init_flags_reach_the_generator():
    weight = conv_weights(training_model('sparnet', '--init_type', 'orthogonal', '--init_gain', '0.5').netG)[1][1]
    rows = weight.flatten(1)
    torch.testing.assert_close(rows @ rows.T, 0.25 * torch.eye(rows.shape[0]), atol=1e-5, rtol=0)


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(64, 128, 3), nn.BatchNorm2d(128),
                         nn.utils.spectral_norm(nn.Conv2d(128, 64, 3)), nn.Linear(256, 512))


@pytest.mark.parametrize('init_type, gain, expected_std', [
    ('normal', 0.1, lambda fan_in, fan_out: 0.1),
    ('xavier', 0.5, lambda fan_in, fan_out: 0.5 * math.sqrt(2 / (fan_in + fan_out))),
    ('kaiming', 0.5, lambda fan_in, fan_out: math.sqrt(2 / fan_in)),  # published: gain not used
])
def test_init_types_draw_the_published_distributions(init_type, gain, expected_std):
    net = init_weights(small_net(), init_type, gain)
    for layer in (net[0], net[2], net[3]):
        weight = getattr(layer, 'weight_orig', layer.weight)
        fan_in = weight[0].numel()
        fan_out = weight.shape[0] * weight[0, 0].numel()
        assert weight.std().item() == pytest.approx(expected_std(fan_in, fan_out), rel=0.03)
        assert torch.count_nonzero(layer.bias) == 0
    assert net[1].weight.std().item() == pytest.approx(gain, rel=0.2) and torch.count_nonzero(net[1].bias) == 0


def test_orthogonal_init_gives_orthogonal_rows_scaled_by_the_gain():
    net = init_weights(small_net(), 'orthogonal', 2.0)
    for layer in (net[0], net[2]):
        rows = getattr(layer, 'weight_orig', layer.weight).flatten(1)
        torch.testing.assert_close(rows @ rows.T, 4.0 * torch.eye(rows.shape[0]), atol=1e-4, rtol=0)
