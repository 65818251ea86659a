"""The fast inference path computes the reference network's function, for every norm, attention and activation.

Tolerances: fp32 max |fast - reference| / max |reference| <= 1e-4 (the folded weights only change
rounding, ~1e-6 in practice); bf16 max relative difference <= 5e-2 and SNR over the output range >= 30 dB
on random weights (it stores 8 mantissa bits).
"""
import copy
import os

import pytest
import torch
from torch.nn import functional as F

from archs.blocks import add_spectral_norm
from archs.folded_sparnet import (
    Activation,
    InputNorm,
    batch_norm_affine,
    eval_conv_weight,
    fill_border,
    pooled_moments,
    prepare_inference_net,
    upsampling_conv_weight,
)
from archs.sparnet import SPARNet
from helpers.small_nets import CONFIGS, build, max_rel_diff, random_input
from utils import devices
from utils.devices import native_bf16_cpu, set_inference_threads

HERE = os.path.dirname(__file__)


pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tiny nets: one thread is fastest

@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_fast_path_equals_reference(name):
    net = build(name)
    x = random_input(CONFIGS[name][0])
    with torch.no_grad():
        reference = net.eval()(x)
        output = prepare_inference_net(net, 'cpu')(x)
    assert output.dtype == torch.float32 and output.is_contiguous()
    assert output.shape == reference.shape
    assert max_rel_diff(output, reference) <= 1e-4


@pytest.mark.parametrize('name', ['small_bn_spar.pt', 'small_bn_spar3d_up.pt', 'small_in_spar3d_sn.pt'])
def test_fast_path_reproduces_published_outputs(name):
    golden = torch.load(os.path.join(HERE, 'golden', name), weights_only=True)
    net = SPARNet(**golden['config'])
    if golden['spectral_norm']:
        add_spectral_norm(net)
    net.load_state_dict(golden['state_dict'])
    with torch.inference_mode():
        output = prepare_inference_net(net, 'cpu')(golden['input'])
    assert max_rel_diff(output, golden['output']) <= 1e-4


def test_prepare_leaves_net_untouched_and_ignores_its_mode():
    net = build('bn_2d_sn').train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = prepare_inference_net(net, 'cpu')
    assert net.training
    x = random_input(CONFIGS['bn_2d_sn'][0])
    with torch.no_grad():
        output = fast(x)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with torch.no_grad():
        reference = net.eval()(x)
    assert max_rel_diff(output, reference) <= 1e-4


def test_fast_path_matches_at_batch_one_and_without_no_grad():
    net = build('in_3d_sn_hd_like')
    x = random_input(CONFIGS['in_3d_sn_hd_like'][0], batch=1)
    output = prepare_inference_net(net, 'cpu')(x)
    with torch.no_grad():
        reference = net.eval()(x)
    assert not output.requires_grad
    assert max_rel_diff(output, reference) <= 1e-4


def test_spectral_norm_weight_uses_stored_vectors():
    """eval_conv_weight == the weight torch's spectral_norm hook computes in eval mode (not the true sigma)."""
    torch.manual_seed(0)
    conv = torch.nn.utils.spectral_norm(torch.nn.Conv2d(5, 7, 3))
    conv.eval()
    conv(torch.randn(1, 5, 4, 4))
    weight, bias = eval_conv_weight(conv)
    assert torch.allclose(weight.float(), conv.weight, rtol=1e-6, atol=1e-7)
    assert torch.equal(bias.float(), conv.bias)
    true_sigma = torch.linalg.matrix_norm(conv.weight_orig.flatten(1), ord=2)
    assert not torch.allclose(weight.float(), conv.weight_orig / true_sigma, rtol=1e-3)


def test_batch_norm_fold_matches_eval_batch_norm_where_eps_matters():
    torch.manual_seed(0)
    norm = torch.nn.BatchNorm2d(6, eps=1e-3).eval()
    with torch.no_grad():
        norm.running_var.uniform_(1e-4, 1e-2)
        norm.running_mean.normal_()
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    x = torch.randn(2, 6, 3, 3)
    scale, shift = batch_norm_affine(norm)
    with torch.no_grad():
        assert torch.allclose(x * scale.float().view(1, -1, 1, 1) + shift.float().view(1, -1, 1, 1), norm(x),
                              rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('size', [(5, 6), (2, 3), (8, 8)])
def test_upsampling_conv_equals_upsample_pad_conv(size):
    torch.manual_seed(0)
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    weight = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    reference = F.conv2d(F.pad(F.interpolate(x, scale_factor=2, mode='nearest'), (1, 1, 1, 1), mode='reflect'),
                         weight)
    output = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode='replicate'), upsampling_conv_weight(weight),
                                stride=2, padding=3)
    assert torch.allclose(output, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize('mode', ['reflect', 'replicate'])
def test_fill_border_equals_pad(mode):
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    padded = torch.full((2, 3, 6, 7), float('nan')).contiguous(memory_format=torch.channels_last)
    padded[:, :, 1:-1, 1:-1] = x
    assert torch.equal(fill_border(padded, mode), F.pad(x, (1, 1, 1, 1), mode=mode))


def test_fill_border_refuses_reflecting_a_single_pixel():
    with pytest.raises(ValueError, match='2x2'):
        fill_border(torch.zeros(1, 1, 3, 5), 'reflect')


@pytest.mark.parametrize('norm', [torch.nn.InstanceNorm2d(64, affine=True), torch.nn.GroupNorm(32, 64)])
def test_input_norm_equals_torch_norm_on_strided_maps(norm):
    """Inputs and outputs may be interiors of padded channels-last maps (strided views) or plain NCHW."""
    torch.manual_seed(0)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    x = torch.randn(3, 64, 6, 7) * 3 + 2
    x_padded = F.pad(x, (1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)
    out_padded = torch.zeros(3, 64, 8, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = norm(x)
        InputNorm(norm)(x_padded[:, :, 1:-1, 1:-1], out_padded[:, :, 1:-1, 1:-1])
        assert torch.allclose(InputNorm(norm)(x), reference, atol=1e-5)
        assert torch.allclose(InputNorm(norm)(x_padded[:, :, 1:-1, 1:-1]), reference, atol=1e-5)
    assert torch.allclose(out_padded[:, :, 1:-1, 1:-1], reference, atol=1e-5)
    assert torch.all(out_padded[:, :, 0] == 0)


def float64_norm(norm, x):
    """`norm` applied in float64 to x's values: the exact result the fast path rounds."""
    exact = type(norm)(*((norm.num_groups, norm.num_channels) if isinstance(norm, torch.nn.GroupNorm)
                         else (norm.num_features,)), affine=True, eps=norm.eps).double()
    exact.load_state_dict(norm.state_dict())
    with torch.no_grad():
        return exact(x.double())


@pytest.mark.parametrize('norm', [torch.nn.InstanceNorm2d(12, affine=True), torch.nn.GroupNorm(4, 12)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_input_norm_is_exact_over_chunks_whatever_the_mean(norm, dtype, monkeypatch):
    """Channels whose mean is 1000 times their spread, statistics pooled over uneven chunks of pixels.

    fp32 output within 1e-4 of float64 (a one-pass E[x^2] - E[x]^2 in fp32 is off by far more here);
    bf16 output within one rounding of the exact normalization of the same bf16 values.
    """
    monkeypatch.setattr(InputNorm, 'CHUNK_ELEMENTS', 12 * 7)  # 7 pixels a chunk: 20 chunks of 137 pixels
    torch.manual_seed(0)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    offsets = torch.randn(1, 12, 1, 1) * 1000
    x = (offsets + torch.randn(2, 12, 10, 13 + 1)[..., :13] * torch.rand(1, 12, 1, 1).add(0.5)).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        output = InputNorm(norm)(x)
    exact = float64_norm(norm, x)
    assert output.dtype == dtype
    tolerance = 1e-4 if dtype == torch.float32 else 2 ** -8 * exact.abs().max().item()
    assert (output.double() - exact).abs().max() <= tolerance
    naive_var = x.float().square().mean((2, 3)) - x.float().mean((2, 3)).square()
    assert (naive_var.double() - x.double().var((2, 3), unbiased=False)).abs().max() > 1e-2


def test_pooled_moments_equal_those_of_the_union():
    torch.manual_seed(0)
    parts = [torch.randn(size, 3, dtype=torch.float64) * 2 + 5 for size in (1, 4, 9)]
    mean, variance = pooled_moments(torch.stack([p.mean(0) for p in parts]),
                                    torch.stack([p.var(0, unbiased=False) for p in parts]),
                                    torch.tensor([[1.], [4.], [9.]], dtype=torch.float64))
    union = torch.cat(parts)
    assert torch.allclose(mean, union.mean(0)) and torch.allclose(variance, union.var(0, unbiased=False))


@pytest.mark.parametrize('relu_type', ['leakyrelu', 'relu', 'prelu', 'selu', 'none'])
def test_activation_in_place_and_into_output(relu_type):
    from archs.blocks import ReluLayer
    layer = ReluLayer(4, relu_type)
    if relu_type == 'prelu':
        torch.nn.init.uniform_(layer.func.weight, 0.1, 0.5)
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        reference = layer(x)
        out = torch.empty(2, 4, 5, 5)[:, :, 1:-1, 1:-1]
        Activation(layer)(x.clone(), out)
        assert torch.equal(out, reference)
        assert torch.equal(Activation(layer)(x.clone()), reference)


def test_precision_checks():
    net = build('bn_2d')
    with pytest.raises(ValueError, match='fp16 runs only on a GPU'):
        prepare_inference_net(net, 'cpu', 'fp16')
    with pytest.raises(ValueError, match='precision must be one of'):
        prepare_inference_net(net, 'cpu', 'int8')


def test_bf16_refused_without_native_support(monkeypatch):
    monkeypatch.setattr(devices, 'native_bf16_cpu', lambda: False)
    with pytest.raises(ValueError, match='AVX512-BF16'):
        prepare_inference_net(build('bn_2d'), 'cpu', 'bf16')


@pytest.mark.skipif(not native_bf16_cpu(), reason='this CPU has no native bf16 (AVX512-BF16 / AMX)')
@pytest.mark.parametrize('name', ['bn_2d', 'in_3d_sn_hd_like', 'gn_prelu'])
def test_bf16_close_to_fp32(name):
    net = build(name)
    x = random_input(CONFIGS[name][0])
    with torch.inference_mode():
        reference = net.eval()(x)
        output = prepare_inference_net(net, 'cpu', 'bf16')(x)
    assert output.dtype == torch.float32
    snr = 20 * torch.log10((reference.max() - reference.min()) / (output - reference).pow(2).mean().sqrt())
    assert max_rel_diff(output, reference) <= 5e-2
    assert snr >= 30


@pytest.mark.gpu
@pytest.mark.parametrize('precision, tolerance', [('fp32', 1e-4), ('fp16', 2e-2)])
def test_gpu_paths(precision, tolerance):
    net = build('in_3d_sn_hd_like')
    x = random_input(CONFIGS['in_3d_sn_hd_like'][0])
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=precision != 'fp32'):  # fp32: no TF32
        reference = net.eval()(x)
        output = prepare_inference_net(net, 'cuda', precision)(x.cuda()).cpu()
    assert max_rel_diff(output, reference) <= tolerance


def test_inference_threads_follow_affinity_or_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
        assert set_inference_threads() == len(os.sched_getaffinity(0)) == torch.get_num_threads()
        monkeypatch.setenv('OMP_NUM_THREADS', '1')
        assert set_inference_threads() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize('mode', ['reflect', 'replicate'])
def test_training_pads_stay_in_the_activations_dtype_under_autocast(mode):
    """CPU autocast runs F.pad's reflection/replication in fp32 (an upcast copy, then a downcast for the conv);
    pad_by_one keeps bf16 maps bf16, with the same values, forward and backward."""
    from models.fast_training import pad_by_one
    x = torch.randn(2, 3, 5, 6).bfloat16().requires_grad_()
    with torch.autocast('cpu', torch.bfloat16):
        assert F.pad(x, (1, 1, 1, 1), mode=mode).dtype == torch.float32  # what autocast does (its fp32 list)
        padded = pad_by_one(x, mode)
    assert padded.dtype == torch.bfloat16
    assert torch.equal(padded, F.pad(x.detach().float(), (1, 1, 1, 1), mode=mode).bfloat16())
    padded.float().mul(torch.arange(padded.numel()).view(padded.shape) % 7).sum().backward()
    expected = torch.autograd.grad(F.pad(x.float(), (1, 1, 1, 1), mode=mode).mul(
        torch.arange(padded.numel()).view(padded.shape) % 7).sum(), x)[0]
    assert x.grad.dtype == torch.bfloat16 and torch.equal(x.grad, expected)  # small integer sums: exact


def test_rows_instance_norm_keeps_bf16_maps_channels_last_with_instance_norms_values():
    """Forward and backward against float64 instance norm, bf16 under autocast, maps of several samples and a large
    mean; fp32 maps take PyTorch's instance_norm unchanged."""
    from models.fast_training import RowsInstanceNorm2d
    torch.manual_seed(0)
    norm = torch.nn.InstanceNorm2d(6, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    fast = copy.deepcopy(norm)
    fast.__class__ = RowsInstanceNorm2d
    x = (torch.randn(3, 6, 20, 24) * 2 + 30).contiguous(memory_format=torch.channels_last)
    weights = torch.randn(3, 6, 20, 24, dtype=torch.float64)
    exact_input = x.double().requires_grad_()
    exact = F.instance_norm(exact_input, weight=norm.weight.detach().double(), bias=norm.bias.detach().double(),
                            eps=norm.eps)
    exact_grad = torch.autograd.grad((exact * weights).sum(), exact_input)[0]
    x_bf16 = x.bfloat16().requires_grad_()
    with torch.autocast('cpu', torch.bfloat16):
        output = fast(x_bf16)
    assert output.dtype == torch.bfloat16 and output.is_contiguous(memory_format=torch.channels_last)
    rounded = float64_norm(norm, x_bf16.detach())  # the exact norm of the bf16 values
    assert (output.double() - rounded).abs().max() <= 2 ** -7 * rounded.abs().max()
    grad = torch.autograd.grad((output.double() * weights).sum(), x_bf16)[0]
    assert (grad.double() - exact_grad).norm() / exact_grad.norm() < 2e-2
    with torch.no_grad():
        assert torch.equal(fast(x), norm(x))


def test_fast_training_discriminator_has_same_loss_and_gradients():
    """prepare_training_net on SPARNetHD's multi-scale discriminator (spectral norm, instance norm)."""

    from archs.discriminator import MultiScaleDiscriminator
    from models.fast_training import PaddingConvLayer, channels_last, prepare_training_net
    torch.manual_seed(0)
    plain = add_spectral_norm(MultiScaleDiscriminator(num_D=2, n_layers=2, norm_type='in')).train()
    fast = prepare_training_net(copy.deepcopy(plain))
    assert list(fast.state_dict()) == list(plain.state_dict())
    assert any(type(module) is PaddingConvLayer for module in fast.modules())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    losses, grads = {}, {}
    for tag, model, batch in [('plain', plain, x), ('fast', fast, channels_last(x))]:
        loss = sum(score.square().mean() + sum(f.square().mean() for f in features)
                   for score, features in model(batch))
        loss.backward()
        losses[tag] = loss.item()
        grads[tag] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert losses['fast'] == pytest.approx(losses['plain'], rel=1e-5)
    assert (grads['fast'] - grads['plain']).norm() / grads['plain'].norm() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize('name', ['bn_3d_up', 'in_3d_sn_hd_like'])
def test_fast_training_has_same_loss_gradients_and_keys(name):
    """prepare_training_net: same train-mode loss and gradients as a float64 run of the plain network.

    Run in float64 itself, the fast network gives the same gradients to 1e-10 (the same function,
    differentiated the same way). In fp32 a LeakyReLU input within rounding of 0 can take the
    other slope: that one element's gradient changes by 0.8x, about 1/sqrt(elements) (2e-3) of a
    map's gradient, and train-mode norms make the layers below cancellation-prone, so the fp32
    plain and fast networks are each only within 1e-2 of float64 (seen: up to 3e-3 on AVX2 CPUs).
    """

    from models.fast_training import UpsamplingConvLayer, channels_last, prepare_training_net
    plain = build(name).train()
    exact = copy.deepcopy(plain).double()
    fast = prepare_training_net(copy.deepcopy(plain))
    fast64 = prepare_training_net(copy.deepcopy(plain).double())
    assert list(fast.state_dict()) == list(plain.state_dict())
    assert type(fast.decoder[-1].conv1) is UpsamplingConvLayer
    x = random_input(CONFIGS[name][0], batch=2)
    target = torch.rand(2, 3, CONFIGS[name][0]['out_size'], CONFIGS[name][0]['out_size']) * 2 - 1
    losses, grads = {}, {}
    for tag, model, batch in [('plain', plain, x), ('fast', fast, channels_last(x)), ('exact', exact, x.double()),
                              ('fast64', fast64, channels_last(x.double()))]:
        loss = F.mse_loss(model(batch).double(), target.double())  # smooth: L1 flips signs on rounding
        loss.backward()
        losses[tag] = loss.item()
        grads[tag] = torch.cat([p.grad.double().flatten() for p in model.parameters()])
    assert losses['fast'] == pytest.approx(losses['exact'], rel=1e-5)
    assert losses['fast64'] == pytest.approx(losses['exact'], rel=1e-12)
    assert (grads['fast64'] - grads['exact']).norm() / grads['exact'].norm() <= 1e-10
    for tag in ('plain', 'fast'):
        assert (grads[tag] - grads['exact']).norm() / grads['exact'].norm() <= 1e-2, tag
    fast_state = fast.state_dict()
    for key, value in plain.state_dict().items():  # incl. spectral norm's u, v after one power iteration
        assert torch.allclose(fast_state[key], value, rtol=1e-4, atol=1e-6), key
