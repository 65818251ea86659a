"""train.py --precision (bf16 / fp16 autocast, fp32 weights) and --accum_steps (gradient accumulation)."""
import logging

import pytest
import torch

from helpers.commands import run_in_process, run_training
from helpers.faces import face_folder
from helpers.training import NoSyncRecorder, train_flags, training_model, vgg_weights
from models.sparnet_model import SPARNetModel
from options.train_options import TrainOptions
from training import trainer
from training.log_reader import read_events
from utils import devices
from weights.checkpoint import load_train_state

pytestmark = pytest.mark.usefixtures('one_torch_thread')
bf16_cpu = pytest.mark.skipif(not devices.native_bf16_cpu(), reason='this CPU has neither AVX512-BF16 nor AMX-BF16')
LR = 0.0005  # TINY_FLAGS' --lr of sparnet


def random_batch(size, count=2, seed=1, device='cpu'):
    generator = torch.Generator().manual_seed(seed)
    images = [torch.rand(count, 3, size, size, generator=generator) * 2 - 1 for _ in range(2)]
    return {'LR': images[0].to(device), 'HR': images[1].to(device), 'LR_paths': [f'{i}.png' for i in range(count)]}


def first_steps(model, precision, batch, steps=2, *extra):
    """[(losses, {net: state dict}, {optimizer: state dict})] before (no losses, no optimizer states) and after each
    of `steps` steps on `batch` from the weights of seed 0, and the model."""
    torch.manual_seed(0)
    trained = training_model(model, '--precision', precision, *extra)
    trained.set_input(batch)
    results = [({}, {name: {k: v.clone() for k, v in net.state_dict().items()}
                     for name, net in trained.saved_networks().items()}, {})]
    for _ in range(steps):
        trained.optimize_parameters()
        results.append((trained.get_current_losses(),
                        {name: {k: v.clone() for k, v in net.state_dict().items()}
                         for name, net in trained.saved_networks().items()},
                        {name: optimizer.state_dict() for name, optimizer in trained.optimizers.items()}))
    return results, trained


def distance(found, expected):
    """|found - expected| over the tensors of two {key: tensor} dicts taken together."""
    return float(torch.cat([(found[k] - expected[k]).flatten() for k in expected]).norm())


def relative_difference(found, expected):
    return distance(found, expected) / distance(expected, {k: torch.zeros_like(v) for k, v in expected.items()})


def first_moments(optimizer_state):
    """Adam's first moment after one step, (1 - beta1) x the gradient, per parameter index."""
    return {index: values['exp_avg'] for index, values in optimizer_state['state'].items()}


@pytest.fixture(scope='module')
def sparnet_steps():
    """Two SPARNet steps in fp32 and in bf16 from the same weights and batch. Kaiming initial weights: the published
    N(0, 0.02) ones give near-constant outputs at 64 px, whose gradients are mostly cancellation, where bf16's
    rounding shows largest (the gradient then differs by 24 %, 16 % at 128 px; 8 % with kaiming)."""
    batch = random_batch(64)
    return {precision: first_steps('sparnet', precision, batch, 2, '--init_type', 'kaiming')
            for precision in ('fp32', 'bf16')}


@pytest.fixture(scope='module')
def sparnethd_steps(tmp_path_factory):
    """A SPARNetHD GAN step (G, D, VGG19 with random weights, EMA) in fp32 and in bf16, batch 1 at 48 px."""
    vgg = vgg_weights(tmp_path_factory.mktemp('vgg') / 'vgg19.pth')
    batch = random_batch(48, count=1)
    extra = ('--load_size', '48', '--batch_size', '1', '--bottleneck_size', '16', '--vgg_weights', vgg)
    return {precision: first_steps('sparnethd', precision, batch, 1, *extra) for precision in ('fp32', 'bf16')}


@bf16_cpu
@pytest.mark.slow
def test_bf16_sparnet_steps_match_fp32(sparnet_steps):
    """Same loss within 0.1 % (measured 0.06-0.08 %), the same gradient within 15 % (measured 8-9 %), the
    same update: Adam's first steps are about lr x sign(gradient), so a sign flipped by rounding moves a weight
    2 lr the other way; the weights differ by less than 60 % of the update's norm (measured 35-40 %)."""
    (fp32, trained), (bf16, _) = sparnet_steps['fp32'], sparnet_steps['bf16']
    assert bf16[1][0]['Pix'] == pytest.approx(fp32[1][0]['Pix'], rel=1e-3)
    assert bf16[2][0]['Pix'] == pytest.approx(fp32[2][0]['Pix'], rel=1e-2)
    assert relative_difference(first_moments(bf16[1][2]['G']), first_moments(fp32[1][2]['G'])) < 0.15
    parameters = [name for name, _ in trained.netG.named_parameters()]  # not batch norm's statistics
    start, found, expected = ({k: step[1]['G'][k] for k in parameters} for step in (fp32[0], bf16[2], fp32[2]))
    assert all(torch.equal(value, bf16[0][1]['G'][key]) for key, value in start.items())
    assert distance(found, expected) < 0.6 * distance(expected, start)
    assert max(float((found[k] - expected[k]).abs().max()) for k in expected) <= 2 * 2 * LR * 1.01


@bf16_cpu
@pytest.mark.slow
def test_bf16_sparnethd_gan_step_matches_fp32_and_keeps_its_states_in_fp32(sparnethd_steps):
    """Losses within 0.5 % (measured 0.3 %; G's, the mean of D's scores near 0, within 0.05), D's gradient within
    35 % (measured 12-22 %), G's and D's weights within 60 % of their update (measured 41 %, 34 %: Adam's first
    step is about lr x sign(gradient)). G's gradient at 48 px is not compared: its instance norms run over 3x3 and
    smaller maps, where rounding the input alone to bf16 (in fp32) moves it by 8 %. Weights, gradients, optimizer
    states and the EMA generator stay fp32 (checked here too: the fixture costs 20 s in each test process)."""
    (fp32, trained), (bf16, _) = sparnethd_steps['fp32'], sparnethd_steps['bf16']
    assert set(bf16[1][0]) == {'Pix', 'PCP', 'FM', 'G', 'D'}
    for name, value in fp32[1][0].items():
        assert bf16[1][0][name] == pytest.approx(value, **{'abs': 0.05} if name == 'G' else {'rel': 5e-3}), name
    assert relative_difference(first_moments(bf16[1][2]['D']), first_moments(fp32[1][2]['D'])) < 0.35
    for net in ('G', 'D'):
        parameters = [name for name, _ in getattr(trained, f'net{net}').named_parameters()]
        start, found, expected = ({k: step[1][net][k] for k in parameters} for step in (fp32[0], bf16[1], fp32[1]))
        assert distance(found, expected) < 0.6 * distance(expected, start), net
    _, bf16_model = sparnethd_steps['bf16']
    for name, net in bf16_model.saved_networks().items():
        assert all(value.dtype == torch.float32 for value in net.state_dict().values() if value.is_floating_point())
        assert all(p.grad is None or p.grad.dtype == torch.float32 for p in net.parameters()), name
    for optimizer in bf16_model.optimizers.values():
        for values in optimizer.state.values():
            assert {values['exp_avg'].dtype, values['exp_avg_sq'].dtype} == {torch.float32}
    assert bf16_model.SR.dtype == torch.float32 and bf16_model.training_state()['scaler'] == {}


@bf16_cpu
@pytest.mark.slow
def test_bf16_resume_equals_the_uninterrupted_run_and_records_the_precision(tmp_path):
    face_folder(tmp_path / 'faces', count=2)
    common = ['--deterministic', '--precision', 'bf16', '--fast_train']
    assert run_training(train_flags(tmp_path, 'sparnet', 'straight', '--total_epochs', '2', *common)) == 0
    assert run_training(train_flags(tmp_path, 'sparnet', 'resumed', '--total_epochs', '1', *common)) == 0
    assert run_training(train_flags(tmp_path, 'sparnet', 'resumed', '--total_epochs', '2', '--continue_train',
                                    *common)) == 0
    states = {run: load_train_state(str(tmp_path / 'checkpoints' / run / 'latest_train_state.pth'))
              for run in ('straight', 'resumed')}
    assert states['resumed']['options']['precision'] == 'bf16' and states['resumed']['iteration'] == 2
    for name, value in states['straight']['model']['networks']['G'].items():
        assert torch.equal(value, states['resumed']['model']['networks']['G'][name]), name
    straight, resumed = (read_events(tmp_path / 'logs' / run)[0]['loss/Pix'] for run in ('straight', 'resumed'))
    assert resumed == straight and len(straight) == 2


@bf16_cpu
def test_resume_in_another_precision_follows_the_flag_and_says_so(tmp_path, caplog):
    """Weights and optimizer states are fp32 in every precision: a run goes on in the precision of the flag."""
    face_folder(tmp_path / 'faces', count=2)
    flags = train_flags(tmp_path, 'sparnet', 'switch')
    assert run_training([*flags, '--total_epochs', '1']) == 0
    with caplog.at_level(logging.INFO):
        assert run_training([*flags, '--total_epochs', '2', '--continue_train', '--precision', 'bf16']) == 0
    assert "resuming with flags that differ from the interrupted run" in caplog.text
    assert "--precision 'fp32' -> 'bf16'" in caplog.text
    state = load_train_state(str(tmp_path / 'checkpoints' / 'switch' / 'latest_train_state.pth'))
    assert state['options']['precision'] == 'bf16' and state['iteration'] == 2


@pytest.mark.parametrize('precision, capable, message', [
    ('fp16', True, 'error: --precision fp16: fp16 runs only on a GPU; on the CPU use --precision bf16'),
    ('bf16', False, 'error: --precision bf16: bf16 asked for, but this CPU has neither AVX512-BF16 nor AMX-BF16'),
])
def test_precision_the_cpu_lacks_is_refused_in_one_line_before_any_work(tmp_path, monkeypatch, precision, capable,
                                                                         message):
    monkeypatch.setattr(devices, 'native_bf16_cpu', lambda: capable)
    flags = train_flags(tmp_path, 'sparnet', 'refused', '--precision', precision)  # no faces: the data comes later
    result = run_in_process(run_training, flags, 'train.py')
    assert result.returncode == 2 and result.stderr.startswith(message) and result.stderr.count('\n') == 1
    assert not (tmp_path / 'checkpoints').exists()


@pytest.mark.parametrize('value', ['0', '-2'])
def test_accum_steps_below_one_refused_in_one_line(capsys, value):
    with pytest.raises(SystemExit) as stop:
        TrainOptions().parse(['--gpus', '0', '--model', 'sparnet', '--accum_steps', value])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: argument --accum_steps: must be an integer 1 or more, got '{value}'")
    assert error.count('\n') == 1


@pytest.mark.slow
def test_accumulated_micro_batches_take_the_step_of_the_whole_batch(tmp_path):
    """Batch 2 x --accum_steps 2 against batch 4, one optimizer step (an iteration) on the same 4 images: the
    same loss and gradient, hence the same weights. Each micro-batch's loss is divided by --accum_steps, so the
    summed gradient is that of the mean over the 4 images. Instance norm (--Gnorm in) makes it exact: batch norm,
    the default, normalises each micro-batch by its own statistics, which differ from those of the whole batch."""
    face_folder(tmp_path / 'faces', count=4)
    common = ['--total_epochs', '1', '--deterministic', '--Gnorm', 'in']
    assert run_training(train_flags(tmp_path, 'sparnet', 'whole', *common, '--batch_size', '4')) == 0
    assert run_training(train_flags(tmp_path, 'sparnet', 'accum', *common, '--batch_size', '2',
                                    '--accum_steps', '2')) == 0
    losses = {run: read_events(tmp_path / 'logs' / run)[0]['loss/Pix'] for run in ('whole', 'accum')}
    assert list(losses['accum']) == list(losses['whole']) == [1]  # one iteration: one optimizer step
    assert losses['accum'][1] == pytest.approx(losses['whole'][1], rel=1e-6)
    whole, accum = (load_train_state(str(tmp_path / 'checkpoints' / run / 'latest_train_state.pth'))['model']
                    for run in ('whole', 'accum'))
    assert relative_difference(first_moments(accum['optimizers']['G']), first_moments(whole['optimizers']['G'])) \
        < 1e-5
    # Adam's first step, lr x g / (|g| + 1e-8), turns the summation-order rounding of the few gradients near 1e-8
    # into a few % of lr (measured: 1.4 % on 1 weight of 18,432); every other weight agrees to float rounding.
    for name, expected in whole['networks']['G'].items():
        torch.testing.assert_close(accum['networks']['G'][name], expected, rtol=1e-5, atol=0.05 * LR)


@pytest.mark.slow
def test_sparnethd_accumulation_steps_g_and_d_once_per_iteration(narrow_sparnethd):
    """And under DDP only the last micro-batch's backward passes exchange gradients: G's one, D's two (real, fake)."""
    trained = training_model('sparnethd', '--batch_size', '1', '--accum_steps', '2', '--bottleneck_size', '16',
                             '--load_size', '48')
    trained.train_G, trained.train_D = NoSyncRecorder(trained.netG), NoSyncRecorder(trained.netD)
    trained.set_input(random_batch(48, count=2))
    trained.optimize_parameters()
    for name, optimizer in trained.optimizers.items():
        assert {int(values['step']) for values in optimizer.state.values()} == {1}, name
    assert trained.SR.shape == (2, 3, 48, 48) and set(trained.get_current_losses()) == {'Pix', 'FM', 'G', 'D'}
    assert trained.train_G.backward_passes == ['local', 'exchanged']
    assert trained.train_D.backward_passes == ['local', 'local', 'exchanged', 'exchanged']


def test_sparnet_accumulation_exchanges_gradients_in_the_last_micro_batch_only():
    trained = training_model('sparnet', '--batch_size', '1', '--accum_steps', '3')
    trained.train_G = NoSyncRecorder(trained.netG)
    trained.set_input(random_batch(64, count=3))
    trained.optimize_parameters()
    assert trained.train_G.backward_passes == ['local', 'local', 'exchanged']


def test_fp16_steps_the_scaler_skipped_are_not_a_blow_up_unless_they_go_on(tmp_path, monkeypatch, caplog):
    """A non-finite loss whose step fp16's loss scaler skipped leaves the weights as they were: the run goes on,
    for at most MAX_SKIPPED_STEPS such steps in a row."""
    face_folder(tmp_path / 'faces', count=2)
    real_step, calls = SPARNetModel.optimize_parameters, []

    def overflowing(skipped_calls):
        def step(self):
            real_step(self)
            calls.append(1)
            if len(calls) in skipped_calls:
                self.losses['Pix'], self.skipped_step = torch.tensor(float('inf')), True
        return step
    monkeypatch.setattr(trainer, 'MAX_SKIPPED_STEPS', 2)
    monkeypatch.setattr(SPARNetModel, 'optimize_parameters', overflowing({2, 3}))
    assert run_training(train_flags(tmp_path, 'sparnet', 'skips', '--total_epochs', '4')) == 0
    assert caplog.text.count('fp16 overflowed, the loss scaler skipped the step') == 2
    calls.clear()
    monkeypatch.setattr(SPARNetModel, 'optimize_parameters', overflowing({2, 3, 4}))
    assert run_training(train_flags(tmp_path, 'sparnet', 'overflows', '--total_epochs', '4')) == 1
    assert 'non-finite loss at iteration 4 (Pix inf); 3 fp16 steps in a row skipped by the loss scaler' in caplog.text


@pytest.mark.gpu
@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_cuda_steps_match_fp32_and_fp16_keeps_its_scaler(precision):
    if precision == 'bf16' and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip('this GPU has no native bf16')
    batch = random_batch(64, device='cuda')
    results = {}
    for name in ('fp32', precision):
        torch.manual_seed(0)
        trained = training_model('sparnet', '--gpus', '1', '--precision', name, '--init_type', 'kaiming')
        trained.set_input(batch)
        trained.optimize_parameters()
        results[name] = trained
    found, expected = results[precision], results['fp32']
    assert found.get_current_losses()['Pix'] == pytest.approx(expected.get_current_losses()['Pix'], rel=1e-2)
    assert all(p.dtype == torch.float32 for p in found.netG.parameters())
    scaler = found.training_state()['scaler']
    assert (scaler != {}) == (precision == 'fp16')
    if precision == 'fp16':
        assert scaler['scale'] > 0


@pytest.mark.gpu
@pytest.mark.slow
def test_fp16_resume_restores_the_scaler_and_equals_the_uninterrupted_run(tmp_path):
    face_folder(tmp_path / 'faces', count=4)
    common = ['--gpus', '1', '--deterministic', '--precision', 'fp16']
    assert run_training(train_flags(tmp_path, 'sparnet', 'straight', '--total_epochs', '2', *common)) == 0
    assert run_training(train_flags(tmp_path, 'sparnet', 'resumed', '--total_epochs', '1', *common)) == 0
    middle = load_train_state(str(tmp_path / 'checkpoints' / 'resumed' / 'latest_train_state.pth'))
    assert middle['model']['scaler']['scale'] > 0
    assert run_training(train_flags(tmp_path, 'sparnet', 'resumed', '--total_epochs', '2', '--continue_train',
                                    *common)) == 0
    states = {run: load_train_state(str(tmp_path / 'checkpoints' / run / 'latest_train_state.pth'))
              for run in ('straight', 'resumed')}
    assert states['resumed']['model']['scaler'] == states['straight']['model']['scaler']
    for name, value in states['straight']['model']['networks']['G'].items():
        torch.testing.assert_close(states['resumed']['model']['networks']['G'][name], value, rtol=1e-5, atol=1e-7)
