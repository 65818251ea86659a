"""test.py over a folder under torchrun (2 gloo processes), killed and resumed, with its JSONL report."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from archs.generator_spec import GeneratorSpec, random_generator
from helpers.commands import ROOT, project_env, run_test_py
from helpers.faces import face_images
from inference import sharding
from inference.report import RunLog, combine, merge_rank_reports, rank_report_path, skip_existing

pytestmark = pytest.mark.usefixtures('one_torch_thread')

N_FACES = 20  # inputs, the corrupt one included
CORRUPT = 'face_08_corrupt.png'  # position 9 of the sorted list (after face_08.png): rank 1's share
TINY = ['--gpus', '0', '--model', 'sparnet', '--res_depth', '1', '--load_size', '64', '--batch_size', '2',
        '--num_threads', '0']

# test.py under torchrun, with a fault injected in rank 1: `kill_after_N` (SIGKILL while saving its
# N+1-th output) or `hang` (rank 1 never reaches the end of the run).
RANK_SCRIPT = '''
import os, signal, sys, time
from inference import face_folder
from options.test_options import TestOptions
fault, rank = sys.argv[1], int(os.environ['RANK'])
if fault.startswith('kill_after_') and rank == 1:
    limit, saved, save_rgb = int(fault.rsplit('_', 1)[1]), [], face_folder.save_rgb
    def save_or_die(image, path, quality):
        if len(saved) >= limit:
            os.kill(os.getpid(), signal.SIGKILL)
        save_rgb(image, path, quality)
        saved.append(path)
    face_folder.save_rgb = save_or_die
if fault == 'hang' and rank == 1:
    face_folder.super_resolve_inputs = lambda *args: time.sleep(600)
sys.exit(face_folder.test_folder(TestOptions().parse(sys.argv[2:])))
'''


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """16x16 LR faces (one of them corrupt), tiny random SPARNet weights, and one process's outputs."""
    root = tmp_path_factory.mktemp('sharded')
    lr = root / 'lr'
    (lr / 'sub').mkdir(parents=True)
    for index, face in enumerate(face_images(N_FACES - 1, seed=3)):
        name = f'face_{index:02d}.png' if index < 14 else f'sub/face_{index:02d}.png'
        Image.fromarray(face).resize((16, 16), Image.BICUBIC).save(lr / name)
    (lr / CORRUPT).write_bytes(b'\x89PNG cut short')
    weights = root / 'tiny.pth'
    torch.save(random_generator(GeneratorSpec('sparnet', 1, 'spar', 'bn')).state_dict(), weights)
    flags = [*TINY, '--pretrain_model_path', str(weights), '--dataroot', str(lr)]
    reference = root / 'single'
    assert run_test_py([*flags, '--save_as_dir', str(reference)]) == 1  # the corrupt file
    return {'root': root, 'lr': lr, 'flags': flags, 'reference': reference}


def run_torchrun(folder, out, fault, *extra, timeout=300):
    script = folder['root'] / 'rank_script.py'
    script.write_text(RANK_SCRIPT)
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           str(script), fault, *folder['flags'], '--save_as_dir', str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=project_env())


def outputs(folder):
    """{relative path: file} of the images below `folder`."""
    return {str(path.relative_to(folder)): path for path in sorted(folder.rglob('*')) if path.is_file()}


def read_report(path):
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.slow
def test_two_processes_write_every_output_once_identical_to_one_process(folder, tmp_path):
    out, report = tmp_path / 'out', tmp_path / 'run.jsonl'
    result = run_torchrun(folder, out, 'none', '--report', str(report))
    assert result.returncode != 0, result.stdout  # the corrupt file failed
    assert result.stdout.count(' done, ') == 1, result.stdout
    assert f'{N_FACES - 1} done, 0 skipped (not images), 1 failed by 2 processes; results in {out}' in result.stdout
    assert CORRUPT in result.stdout.split('failed:')[1]
    written, expected = outputs(out), outputs(folder['reference'])
    assert sorted(written) == sorted(expected) and len(written) == N_FACES - 1  # no temporary file left
    for name, path in written.items():
        assert path.read_bytes() == expected[name].read_bytes(), name

    lines = read_report(report)
    assert not list(tmp_path.glob('run.rank*.jsonl'))  # merged into run.jsonl
    assert len(lines) == N_FACES and len({line['path'] for line in lines}) == N_FACES
    assert all(set(line) == {'path', 'output', 'status', 'error', 'seconds', 'rank', 'time'} for line in lines)
    failed = [line for line in lines if line['status'] == 'failed']
    assert len(failed) == 1 and failed[0]['path'] == str(folder['lr'] / CORRUPT) and failed[0]['rank'] == 1
    assert 'not a readable image' in failed[0]['error']
    done = [line for line in lines if line['status'] == 'done']
    assert {line['output'] for line in done} == {str(out / name) for name in expected}
    assert {line['rank'] for line in done} == {0, 1} and all(line['seconds'] > 0 for line in done)


@pytest.mark.slow
def test_killed_run_resumes_with_skip_existing_and_reprocesses_nothing(folder, tmp_path):
    out, report = tmp_path / 'out', tmp_path / 'run.jsonl'
    killed = run_torchrun(folder, out, 'kill_after_3', '--report', str(report), '--skip_existing')
    assert killed.returncode != 0 and ' done, ' not in killed.stdout
    before = {name: (path.stat().st_ino, path.stat().st_mtime_ns) for name, path in outputs(out).items()
              if not name.endswith('.part')}
    assert 3 <= len(before) < N_FACES - 1
    assert sorted(path.name for path in tmp_path.glob('run.rank*.jsonl')) == ['run.rank0.jsonl', 'run.rank1.jsonl']
    killed_done = {line['path'] for name in ('run.rank0.jsonl', 'run.rank1.jsonl')
                   for line in read_report(tmp_path / name) if line['status'] == 'done'}

    not_written = sorted(set(outputs(folder['reference'])) - set(before))[0]
    (out / f'{not_written}.4242-0badcafe.part').write_bytes(b'half a PNG')  # as a kill -9 mid-write leaves
    assert run_test_py([*folder['flags'], '--save_as_dir', str(out), '--skip_existing', '--report', str(report)]) == 1
    after, expected = outputs(out), outputs(folder['reference'])  # the temporary files left are gone
    assert sorted(after) == sorted(expected)
    for name, path in after.items():
        assert path.read_bytes() == expected[name].read_bytes(), name
    for name, (inode, mtime) in before.items():
        assert (after[name].stat().st_ino, after[name].stat().st_mtime_ns) == (inode, mtime), name

    lines = read_report(report)  # the killed run's lines (merged first), then the resumed run's
    assert not list(tmp_path.glob('run.rank*.jsonl'))
    resumed = lines[-N_FACES:]
    assert len({line['path'] for line in resumed}) == N_FACES
    skipped = {line['output'] for line in resumed if line['status'] == 'skipped'}
    assert skipped == {str(out / name) for name in before}
    assert killed_done <= {line['path'] for line in resumed if line['status'] == 'skipped'}
    killed_lines = lines[:-N_FACES]  # done ones, and the corrupt file if its batch came before the kill
    assert killed_lines and all(line['status'] == 'done' or line['path'].endswith(CORRUPT) for line in killed_lines)


@pytest.mark.slow
def test_a_process_that_stops_answering_does_not_hold_the_others_forever(folder, tmp_path):
    start = time.monotonic()
    result = run_torchrun(folder, tmp_path / 'out', 'hang', '--dist_timeout', '0.05')
    assert result.returncode != 0 and time.monotonic() - start < 120
    assert 'process 0: the other processes did not finish within --dist_timeout 0.05 minutes' in result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs 2 CUDA GPUs')
def test_two_gpu_processes_nccl_match_one_process(folder, tmp_path):
    out = tmp_path / 'out'
    result = run_torchrun(folder, out, 'none', '--gpus', '1')  # later --gpus wins over the CPU flags
    assert f'{N_FACES - 1} done, 0 skipped (not images), 1 failed by 2 processes' in result.stdout, result.stderr
    expected = outputs(folder['reference'])
    for name, path in outputs(out).items():  # GPU kernels may round differently from the CPU ones
        diff = np.abs(np.asarray(Image.open(path), dtype=int) - np.asarray(Image.open(expected[name]), dtype=int))
        assert diff.max() <= 2 and (diff == 0).mean() > 0.95, name


def test_strided_shares_cover_every_input_once():
    items = [f'{index:03d}.png' for index in range(23)]
    for world_size in (1, 2, 3, 8, 30):
        shares = [sharding.Shard(rank, world_size).take(items) for rank in range(world_size)]
        assert sorted(sum(shares, [])) == items
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_report_lines_counts_and_merge_of_rank_files(tmp_path):
    report = tmp_path / 'deep' / 'r.jsonl'
    rank_logs = [RunLog(str(report), rank, 2) for rank in (0, 1)]
    rank_logs[1].record('b.png', 'failed', error='b.png: not a readable image')
    rank_logs[0].record('a.png', 'done', 'out/a.png', seconds=0.5)
    (tmp_path / 'done.png').write_bytes(b'')
    pending = skip_existing([('c.png', str(tmp_path / 'done.png')), ('d.png', str(tmp_path / 'x.png'))], rank_logs[0])
    assert pending == [('d.png', str(tmp_path / 'x.png'))]
    for rank_log in rank_logs:
        rank_log.close()
    with open(rank_report_path(str(report), 1), 'a') as part:
        part.write('{"path": "cut sh')  # a line a kill cut short
    counts, listed = combine(rank_log.summary() for rank_log in rank_logs)
    assert counts == {'done': 1, 'failed': 1, 'skipped': 1} and listed == {'failed': ['b.png'], 'no_face': []}
    merge_rank_reports(str(report))
    lines = read_report(report)
    assert [(line['path'], line['status'], line['rank']) for line in lines] == [
        ('a.png', 'done', 0), ('c.png', 'skipped', 0), ('b.png', 'failed', 1)]
    assert not list(report.parent.glob('r.rank*'))
    with pytest.raises(ValueError):
        RunLog().record('a.png', 'lost')
