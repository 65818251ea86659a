"""Original flags, their defaults, quoted values, and the device choice."""
import logging
import os

import pytest
import torch

from options.test_options import TestOptions
from utils import devices


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


def test_quoted_path_accepted():
    assert parse('--pretrain_model_path', "'./w.pth'").pretrain_model_path == './w.pth'


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


def test_inference_defaults_follow_the_device_and_bad_values_are_refused(monkeypatch):
    from options.test_options import DEFAULT_BATCH_SIZE, DEFAULT_LOADERS, DEFAULT_WRITERS
    from utils.cli import UserError
    cpu = parse()
    assert (cpu.batch_size, cpu.write_threads) == (DEFAULT_BATCH_SIZE['cpu', 'fp32'], DEFAULT_WRITERS['cpu'])
    assert cpu.num_threads == min(DEFAULT_LOADERS['cpu'], os.cpu_count())
    assert parse('--precision', 'bf16').batch_size == DEFAULT_BATCH_SIZE['cpu', 'bf16']
    assert (parse('--batch_size', '3', '--num_threads', '0').batch_size, parse('--num_threads', '0').num_threads) == (3, 0)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setenv('RANK', '0')  # under torchrun the GPU is chosen later, per process
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('LOCAL_RANK', '0')
    gpu = TestOptions().parse(['--gpus', '1'])
    assert (gpu.batch_size, gpu.write_threads) == (DEFAULT_BATCH_SIZE['cuda'], DEFAULT_WRITERS['cuda'])
    for flags in (['--batch_size', '0'], ['--write_threads', '-1'], ['--dist_timeout', '0']):
        with pytest.raises(UserError, match=flags[0]):
            parse(*flags)
