"""Original flags, their defaults, quoted values, and the device choice."""
import logging
import os
import re
import shlex

import pytest
import torch

from archs.generator_spec import GeneratorSpec
from helpers.commands import ROOT
from options import generator_flags
from options.test_options import TestOptions
from utils import devices
from utils.cli import UserError


def parse(*args):
    return TestOptions().parse(['--gpus', '0', *args])


def test_model_defaults():
    opt = parse()
    assert (opt.model, opt.Gnorm, opt.load_size, opt.att_name, opt.res_depth) == ('sparnet', 'bn', 128, 'spar', 10)
    assert (opt.bottleneck_size, opt.epoch, opt.load_iter, opt.dataset_name) == (4, 'latest', 0, 'single')
    hd = parse('--model', 'sparnethd')
    assert (hd.Gnorm, hd.load_size) == ('in', 512)


@pytest.mark.parametrize('value', ["'in'", '"in"', 'IN', " 'in' "])
def test_quoted_values_accepted(value):
    assert parse('--model', 'sparnethd', '--Gnorm', value).Gnorm == 'in'


def test_quoted_path_accepted(released_checkpoint):
    path = released_checkpoint('sparnet')
    assert parse('--pretrain_model_path', f"'{path}'").pretrain_model_path == path


def test_bad_choice_refused_clearly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse('--Gnorm', "'instance'")
    assert exit_info.value.code == 2
    assert "--Gnorm: invalid choice: 'instance'" in capsys.readouterr().err


def test_gpus_on_machine_without_gpu_falls_back_to_cpu(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with caplog.at_level(logging.WARNING):
        opt = TestOptions().parse(['--gpus', '1'])
    assert opt.device == torch.device('cpu') and opt.gpu_ids == []
    assert [r.message for r in caplog.records].count(
        '--gpus 1 asked for GPUs, but none is available: running on the CPU') == 1


def test_gpus_with_most_free_memory_are_chosen(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(devices, 'free_gpu_memory', lambda: {0: 5, 1: 30, 2: 10, 3: 20})
    assert devices.select_gpu_ids(2) == [1, 3]
    assert devices.select_gpu_ids(0) == []
    with caplog.at_level(logging.WARNING):
        assert devices.select_gpu_ids(6) == [1, 3, 2, 0]
    assert 'more GPUs than the 4 present' in caplog.text


def test_training_dataset_defaults_follow_the_model():
    from options.train_options import TrainOptions
    assert TrainOptions().parse(['--gpus', '0']).dataset_name == 'celeba'
    assert TrainOptions().parse(['--gpus', '0', '--model', 'sparnethd']).dataset_name == 'ffhq'
    assert TrainOptions().parse(['--gpus', '0', '--dataset_name', 'ffhq']).dataset_name == 'ffhq'


# Every flag of the published option files (base, train, test, and the models'), with the published defaults.
PUBLISHED_BASE = {'--dataroot': 'faces', '--name': 'run', '--gpus': '0', '--seed': '123',
                  '--checkpoints_dir': './check_points', '--debug': None, '--att_name': 'spar', '--res_depth': '10',
                  '--bottleneck_size': '4', '--input_nc': '3', '--output_nc': '3', '--ngf': '64', '--ndf': '64',
                  '--n_layers_D': '4', '--num_D': '3', '--Gnorm': 'bn', '--Dnorm': 'none', '--init_type': 'normal',
                  '--init_gain': '0.02', '--serial_batches': None, '--num_threads': '8', '--batch_size': '32',
                  '--load_size': '512', '--max_dataset_size': '1000', '--preprocess': 'none', '--epoch': 'latest',
                  '--load_iter': '0', '--verbose': None, '--suffix': '{model}_size{load_size}'}
PUBLISHED_TRAIN = {'--visual_freq': '400', '--print_freq': '100', '--save_iter_freq': '5000',
                   '--save_latest_freq': '500', '--save_epoch_freq': '5', '--save_by_iter': None,
                   '--continue_train': None, '--epoch_count': '1', '--phase': 'train', '--resume_epoch': '0',
                   '--resume_iter': '0', '--n_epochs': '10', '--n_epochs_decay': '10', '--total_epochs': '20',
                   '--niter_decay': '100', '--beta1': '0.5', '--lr': '0.0002', '--g_lr': '0.0001', '--d_lr': '0.0004',
                   '--gan_mode': 'hinge', '--lr_policy': 'linear', '--lr_decay_iters': '50'}
PUBLISHED_TEST = {'--ntest': '5', '--test_img_path': '', '--test_upscale': '1', '--results_dir': './results/',
                  '--save_as_dir': '', '--phase': 'test', '--pretrain_model_path': '', '--eval': None,
                  '--num_test': '50'}
PUBLISHED_MODEL = {('sparnet', True): {'--scale_factor': '8', '--lambda_pix': '1.0'},
                   ('sparnet', False): {'--scale_factor': '8', '--lambda_pix': '1.0'},
                   ('sparnethd', True): {'--lambda_pcp': '1.0', '--lambda_pix': '100.0', '--lambda_fm': '10.0',
                                         '--lambda_g': '1.0'},
                   ('sparnethd', False): {}}
IGNORED = {True: {'sparnet': '--input_nc --output_nc --ngf --ndf --preprocess --phase --save_by_iter --epoch_count '
                             '--n_epochs --niter_decay --g_lr --d_lr --gan_mode',
                  'sparnethd': '--input_nc --output_nc --ngf --ndf --preprocess --phase --save_by_iter --epoch_count '
                               '--n_epochs --niter_decay --lr'},
           False: {model: '--input_nc --output_nc --ngf --ndf --preprocess --eval --num_test' + extra +
                   ' --debug --serial_batches --init_type --init_gain'
                   for model, extra in (('sparnet', ' --scale_factor --lambda_pix'), ('sparnethd', ''))}}


def command_line(flags):
    return [item for flag, value in flags.items() for item in ((flag,) if value is None else (flag, value))]


@pytest.mark.parametrize('is_train', [True, False])
@pytest.mark.parametrize('model', ['sparnet', 'sparnethd'])
def test_every_flag_of_the_published_option_files_parses(model, is_train, caplog):
    from options.train_options import TrainOptions
    dataset = ('celeba' if model == 'sparnet' else 'ffhq') if is_train else 'single'
    flags = {**PUBLISHED_BASE, '--model': model, '--dataset_name': dataset,
             **(PUBLISHED_TRAIN if is_train else PUBLISHED_TEST), **PUBLISHED_MODEL[model, is_train]}
    with caplog.at_level(logging.WARNING):
        opt = (TrainOptions() if is_train else TestOptions()).parse(command_line(flags))
    assert opt.name == f'run_{model}_size512' and opt.max_dataset_size == 1000 and opt.debug and opt.verbose
    assert opt.phase == ('train' if is_train else 'test')
    if is_train:
        assert opt.total_epochs == 7 and opt.serial_batches and (opt.resume_epoch, opt.resume_iter) == (0, 0)
    warnings = [r.getMessage() for r in caplog.records if r.name == 'options']
    assert warnings == [f'ignored (accepted for the published commands, no effect here): {IGNORED[is_train][model]}']


def test_ignored_flags_warn_only_when_given(caplog):
    from options.train_options import TrainOptions
    with caplog.at_level(logging.WARNING):
        TrainOptions().parse(['--gpus', '0', '--lr', '0.001', '--Dnorm', 'in'])
        TestOptions().parse(['--gpus', '0'])
    assert not [r for r in caplog.records if r.name == 'options']
    with caplog.at_level(logging.WARNING):
        TrainOptions().parse(['--gpus', '0', '--n_epochs=10', '--save_by'])  # an abbreviation, as argparse allows
    assert [r.getMessage() for r in caplog.records if r.name == 'options'] == [
        'ignored (accepted for the published commands, no effect here): --save_by_iter --n_epochs']


def test_epoch_count_flags():
    from options.train_options import TrainOptions
    epochs = {extra: TrainOptions().parse(['--gpus', '0', '--total_epochs', '20', *extra]).total_epochs
              for extra in ((), ('--published_epochs',), ('--debug',), ('--published_epochs', '--debug'))}
    assert list(epochs.values()) == [20, 21, 7, 7]


@pytest.mark.parametrize('suffix, message', [('{nope}', "KeyError('nope')"), ('{model', 'not a valid format')])
def test_bad_suffix_refused_in_one_line(suffix, message):
    with pytest.raises(UserError, match=re.escape(message)):
        parse('--suffix', suffix)


@pytest.mark.parametrize('flag, value, accepted', [
    ('--batch_size', '0', 'an integer 1 or more'),
    ('--batch_size', '-2', 'an integer 1 or more'),
    ('--batch_size', '2.5', 'an integer 1 or more'),
    ('--load_size', '0', 'an integer 1 or more'),
    ('--num_threads', '-3', 'an integer 0 or more'),
    ('--jpeg_quality', '500', 'an integer from 0 to 100'),
    ('--face_batch_size', '0', 'an integer 1 or more'),
    ('--test_upscale', '0', 'an integer from 1 to 8'),
    ('--test_upscale', '1000', 'an integer from 1 to 8'),
    ('--max_pixels', '0', 'an integer 1 or more'),
    ('--ntest', '0', 'an integer 1 or more (or inf)'),
    ('--max_dataset_size', '0', 'an integer 1 or more (or inf)'),
    ('--write_threads', '-1', 'an integer 0 or more'),
    ('--dist_timeout', '0', 'a number above 0'),
    ('--dist_timeout', 'nan', 'a number above 0'),
])
def test_bad_numbers_refused_in_one_line_naming_the_range(capsys, flag, value, accepted):
    with pytest.raises(SystemExit) as exit_info:
        parse(flag, value)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: argument {flag}: must be {accepted}, got '{value}' (")


def test_numbers_in_range_and_infinite_counts_accepted():
    opt = parse('--ntest', '2', '--jpeg_quality', "'95'", '--max_dataset_size', 'inf', '--num_threads', '0')
    assert (opt.ntest, opt.jpeg_quality, opt.max_dataset_size, opt.num_threads) == (2, 95, float('inf'), 0)
    assert parse().ntest == float('inf')


@pytest.mark.parametrize('args, message', [
    (['--load_size', '7'], '--load_size 7: the networks run on images of at least 40x40; give a larger --load_size'),
    (['--model', 'sparnethd', '--load_size', '40'], '--load_size 40: sparnethd runs on images of at least 48x48'),
    (['--load_size', '8192'], '--load_size 8192: 67.1 megapixels per image, more than --max_pixels 50000000; raise '
                              '--max_pixels if this machine has the memory'),
])
def test_image_sizes_the_networks_cannot_run_are_refused_before_any_work(args, message):
    with pytest.raises(UserError, match=re.escape(message)):
        parse(*args)


def test_smallest_sizes_run_and_max_pixels_raises_the_limit():
    """40x40 SPARNet and 48x48 SPARNetHD inputs go through their networks; --max_pixels lets a larger size parse."""
    for spec, size in ((GeneratorSpec('sparnet', 1), 40), (GeneratorSpec('sparnethd', 1, norm_type='in'), 48)):
        with torch.no_grad():
            assert spec.build().eval()(torch.zeros(1, 3, size, size)).shape == (1, 3, size, size)
        smaller = size - (8 if spec.model == 'sparnet' else 16)
        with pytest.raises((RuntimeError, ValueError)):  # reflection padding, or instance norm of one pixel
            with torch.no_grad():
                spec.build().eval()(torch.zeros(1, 3, smaller, smaller))
    assert parse('--load_size', '8192', '--max_pixels', str(8192 ** 2)).load_size == 8192


def test_train_sh_commands_parse_and_train_the_published_epoch_counts():
    from options.train_options import TrainOptions
    with open(os.path.join(ROOT, 'train.sh')) as f:
        lines = f.read().replace('\\\n', ' ').splitlines()
    commands = [shlex.split(line)[2:] for line in lines if line.startswith('python train.py')]
    options = [TrainOptions().parse([*command, '--gpus', '0']) for command in commands]
    assert [(opt.model, opt.total_epochs) for opt in options] == [('sparnet', 21)] * 2 + [('sparnethd', 11)] * 2


def test_inference_defaults_follow_the_device_and_bad_values_are_refused(monkeypatch):
    from api.choices import DEFAULT_BATCH_SIZE
    from options.test_options import DEFAULT_LOADERS, DEFAULT_WRITERS
    cpu = parse()
    assert (cpu.batch_size, cpu.write_threads) == (DEFAULT_BATCH_SIZE['cpu', 'fp32'], DEFAULT_WRITERS['cpu'])
    assert cpu.num_threads == min(DEFAULT_LOADERS['cpu'], os.cpu_count())
    assert parse('--precision', 'bf16').batch_size == DEFAULT_BATCH_SIZE['cpu', 'bf16']
    assert parse('--batch_size', '3', '--num_threads', '0').batch_size == 3
    assert parse('--num_threads', '0').num_threads == 0
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setenv('RANK', '0')  # under torchrun the GPU is chosen later, per process
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('LOCAL_RANK', '0')
    gpu = TestOptions().parse(['--gpus', '1'])
    assert (gpu.batch_size, gpu.write_threads) == (DEFAULT_BATCH_SIZE['cuda'], DEFAULT_WRITERS['cuda'])
    for flags in (['--batch_size', '0'], ['--write_threads', '-1'], ['--dist_timeout', '0']):
        with pytest.raises(SystemExit):
            parse(*flags)


@pytest.mark.parametrize('extra, named', [
    (['--reference_impl'], '--reference_impl (runs the PyTorch module)'),
    (['--precision', 'bf16'], '--precision bf16 (the ONNX model runs in fp32, as exported)'),
    (['--pretrain_model_path', 'nowhere.pth'], '--pretrain_model_path (the ONNX file holds the weights)'),
])
def test_onnx_model_refuses_the_flags_it_would_ignore(extra, named):
    with pytest.raises(UserError, match=re.escape(f'--onnx_model runs m.onnx with ONNX Runtime; drop {named}')):
        parse('--onnx_model', 'm.onnx', *extra)


def test_onnx_model_alone_fetches_no_default_weights(monkeypatch):
    monkeypatch.setattr(generator_flags, 'resolve_weights', lambda source, folder: None if not source else
                        pytest.fail(f'fetched {source}'))
    opt = TestOptions().parse(['--gpus', '0', '--onnx_model', 'm.onnx', '--model', 'sparnethd'],
                              default_weights='sparnethd_attn2d')
    assert (opt.model, opt.load_size, opt.pretrain_model_path) == ('sparnethd', 512, '')
