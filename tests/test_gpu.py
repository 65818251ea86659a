"""The GPU-only paths against slower or reference ones: NVML's choice of GPUs, test.py on CUDA in fp32 / fp16 /
bf16, DataParallel and NCCL training. Skipped without CUDA (conftest); `make test-gpu` runs them.

Tolerances: fp32 on CUDA (TF32 off) within 2 levels of the CPU reference and equal for 95 % of the values; the
default settings (TF32 convolutions on Ampere and newer), fp16 and bf16 over 45 dB PSNR against it and an RMS
error under 10 % of its standard deviation. Random weights give low-contrast outputs (levels 123-148, standard
deviation 9): a constant image would still score 29 dB, so PSNR alone is not enough; bf16 on an AMX CPU measured
62 dB and an RMS error of 2 % of the deviation. Training on 2 GPUs splits the batch of one GPU: with instance norm
the function is the same, so losses agree to 2 % and Adam's first step to 5 % (the bound of the gloo test).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.commands import ROOT, run_script, run_test_py, run_training
from helpers.faces import face_folder, face_images
from helpers.training import assert_same_first_step, train_flags
from metrics.psnr_ssim import psnr
from training.log_reader import read_events
from utils import devices
from utils.cli import UserError
from weights.checkpoint import load_train_state

pytestmark = pytest.mark.gpu
two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs 2 CUDA GPUs')

MIB = 2 ** 20
FREE_MEMORY_SLACK = 512 * MIB  # NVML and CUDA read at different moments; other processes may allocate between
N_FACES = 4
# Instance norm: a sample's output does not depend on the others in its batch, so splitting it changes nothing.
SPLIT_INVARIANT = ['--Gnorm', 'in', '--deterministic']


def visible_free_memory():
    return {index: torch.cuda.mem_get_info(index)[0] for index in range(torch.cuda.device_count())}


def test_nvml_reads_the_free_memory_cuda_reports():
    before = visible_free_memory()  # a CUDA context on every device first: creating one takes memory
    nvml = devices._free_memory_nvml(list(before))  # raises if a device is not matched: no silent fallback
    after = visible_free_memory()
    assert sorted(nvml) == sorted(devices.free_gpu_memory()) == list(before)
    for index, free in nvml.items():
        low, high = sorted((before[index], after[index]))
        assert low - FREE_MEMORY_SLACK <= free <= high + FREE_MEMORY_SLACK, index


def test_select_gpu_ids_orders_by_free_memory():
    ids = devices.select_gpu_ids(torch.cuda.device_count())
    free = visible_free_memory()
    assert sorted(ids) == list(free)
    for first, second in zip(ids, ids[1:]):
        assert free[first] >= free[second] - FREE_MEMORY_SLACK, (first, second, free)
    assert sorted(devices.select_gpu_ids(torch.cuda.device_count() + 1)) == list(free)  # more than present: all


@two_gpus
def test_the_busiest_gpu_is_chosen_last():
    free = visible_free_memory()
    block_bytes = free[0] - min(free[index] for index in free if index) + 2 * FREE_MEMORY_SLACK
    if block_bytes > free[0] - FREE_MEMORY_SLACK:
        pytest.skip('GPU 0 has too little free memory to be made the busiest')
    previous = torch.cuda.current_device()
    block = torch.empty(max(block_bytes, 1), dtype=torch.uint8, device='cuda:0')
    try:
        ids = devices.select_gpu_ids(torch.cuda.device_count())
        assert ids[-1] == 0 and 0 not in devices.select_gpu_ids(1)
        device, gpu_ids = devices.select_device(1)
        assert device == torch.device('cuda', gpu_ids[0]) and gpu_ids != [0]  # GPUs equally free may swap places
        assert torch.cuda.current_device() == gpu_ids[0]
    finally:
        del block
        torch.cuda.empty_cache()
        torch.cuda.set_device(previous)


@two_gpus
def test_only_the_gpus_of_cuda_visible_devices_are_chosen(monkeypatch):
    uuid = str(torch.cuda.get_device_properties(torch.cuda.device_count() - 1).uuid)
    uuid = uuid if uuid.startswith('GPU-') else f'GPU-{uuid}'
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', uuid)  # for the subprocess: CUDA is initialised here already
    result = run_script('-c', 'import json, torch\nfrom utils import devices\n'
                              'print(json.dumps({"count": torch.cuda.device_count(), '
                              '"uuid": str(torch.cuda.get_device_properties(0).uuid), '
                              '"nvml": sorted(devices._free_memory_nvml([0])), "ids": devices.select_gpu_ids(2)}))')
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen['count'] == 1 and seen['nvml'] == [0] and seen['ids'] == [0]
    assert uuid.endswith(seen['uuid'].removeprefix('GPU-'))


@pytest.fixture(scope='module')
def cpu_reference(tmp_path_factory, released_checkpoint):
    """(16x16 faces folder, random released-format SPARNet weights, {name: output} of the CPU reference path)."""
    root = tmp_path_factory.mktemp('gpu_test_script')
    (root / 'lr').mkdir()
    for index, face in enumerate(face_images(N_FACES, seed=11, size=(16, 16))):
        Image.fromarray(face).save(root / 'lr' / f'face_{index}.png')
    checkpoint = released_checkpoint('sparnet')
    assert run_test_py(script_flags(root / 'lr', checkpoint, root / 'cpu', '--gpus', '0',
                                             '--reference_impl')) == 0
    return root / 'lr', checkpoint, read_outputs(root / 'cpu')


def script_flags(lr_dir, checkpoint, out, *extra):
    return ['--model', 'sparnet', '--load_size', '128', '--pretrain_model_path', checkpoint, '--dataset_name',
            'single', '--dataroot', str(lr_dir), '--save_as_dir', str(out), '--num_threads', '0', *extra]


def read_outputs(folder):
    return {name: np.asarray(Image.open(os.path.join(folder, name))) for name in sorted(os.listdir(folder))}


@pytest.mark.parametrize('impl', [[], ['--reference_impl']], ids=['fast', 'reference'])
def test_fp32_on_gpu_matches_the_cpu_reference(cpu_reference, tmp_path, impl):
    lr_dir, checkpoint, expected = cpu_reference
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # TF32 convolutions round like fp16
        assert run_test_py(script_flags(lr_dir, checkpoint, tmp_path / 'out', '--gpus', '1', *impl)) == 0
    outputs = read_outputs(tmp_path / 'out')
    assert outputs.keys() == expected.keys() and len(outputs) == N_FACES
    for name, image in outputs.items():  # GPU kernels may round differently from the CPU ones
        diff = np.abs(image.astype(int) - expected[name].astype(int))
        assert diff.max() <= 2 and (diff == 0).mean() > 0.95, name


@pytest.mark.parametrize('precision', ['fp32', 'fp16', 'bf16'])
def test_gpu_precisions_close_to_the_cpu_reference(cpu_reference, tmp_path, precision):
    """As users run it (PyTorch's default TF32 convolutions in fp32); a non-finite output would fail its image."""
    lr_dir, checkpoint, expected = cpu_reference
    flags = script_flags(lr_dir, checkpoint, tmp_path / 'out', '--gpus', '1', '--precision', precision)
    if precision == 'bf16' and not torch.cuda.is_bf16_supported(including_emulation=False):
        with pytest.raises(UserError, match='has no native bf16'):
            run_test_py(flags)
        assert not (tmp_path / 'out').exists()
        return
    assert run_test_py(flags) == 0
    outputs = read_outputs(tmp_path / 'out')
    assert outputs.keys() == expected.keys() and len(outputs) == N_FACES
    for name, image in outputs.items():
        error = np.sqrt(np.mean(np.square(image.astype(float) - expected[name])))
        assert psnr(image, expected[name], channels='rgb') > 45 and error < 0.1 * expected[name].std(), name


@two_gpus
def test_data_parallel_on_two_gpus_trains_as_one_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv('CUBLAS_WORKSPACE_CONFIG', ':4096:8')  # what --deterministic sets, undone after the test
    face_folder(tmp_path / 'faces', count=4)
    losses = {}
    for gpus in ('1', '2'):
        name = f'gpus{gpus}'
        flags = train_flags(str(tmp_path), 'sparnet', name, '--total_epochs', '3', *SPLIT_INVARIANT, '--gpus', gpus)
        assert run_training(flags) == 0
        losses[gpus] = read_events(tmp_path / 'logs' / name)[0]['loss/Pix']
    assert sorted(losses['1']) == sorted(losses['2']) == list(range(1, 7))  # 4 faces, batch 2, 3 epochs
    assert losses['2'][1] == pytest.approx(losses['1'][1], rel=1e-3)  # same weights, same batch: rounding only
    for step, loss in losses['1'].items():
        assert losses['2'][step] == pytest.approx(loss, rel=2e-2), step


@two_gpus
def test_two_nccl_processes_train_and_take_the_step_of_one_gpu(tmp_path):
    face_folder(tmp_path / 'faces', count=2)
    extra = ['--total_epochs', '1', *SPLIT_INVARIANT, '--gpus', '1']  # later --gpus wins over train_flags' 0
    result = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                             'train.py', *train_flags(str(tmp_path), 'sparnet', 'nccl', *extra)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / 'checkpoints' / 'nccl')) == ['epoch_1_net_G.pth', 'latest_net_G.pth',
                                                                      'latest_train_state.pth']
    nccl = load_train_state(str(tmp_path / 'checkpoints' / 'nccl' / 'latest_train_state.pth'))
    assert nccl['iteration'] == 1  # 2 faces, a batch of 2 shared by the 2 processes

    assert run_training(train_flags(str(tmp_path), 'sparnet', 'one_gpu', *extra)) == 0
    one_gpu = load_train_state(str(tmp_path / 'checkpoints' / 'one_gpu' / 'latest_train_state.pth'))
    assert_same_first_step(nccl['model']['optimizers'], one_gpu['model']['optimizers'])
