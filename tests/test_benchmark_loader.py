"""scripts/benchmark_loader.py: its table, the workers it derives, its refusals (the speed itself needs no test)."""
import json
import math

import cv2
import pytest
import torch

from helpers.faces import face_folder
from scripts import benchmark_loader
from utils.cli import UserError


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return face_folder(tmp_path_factory.mktemp('faces'), count=5)


def test_table_has_both_recipes_with_positive_figures_and_the_workers_they_imply(faces, tmp_path, capsys):
    threads = torch.get_num_threads(), cv2.getNumThreads()
    report = tmp_path / 'loader.json'
    assert benchmark_loader.main(['--dataroot', faces, '--images', '3', '--step_ms', 'celeba=0.5',
                                  '--json', str(report)]) == 0
    assert (torch.get_num_threads(), cv2.getNumThreads()) == threads
    out = capsys.readouterr().out
    rows = {line.split(' | ')[0].strip('| '): line for line in out.splitlines() if line.startswith('| ')}
    assert {'celeba', 'ffhq'} <= set(rows)
    assert 'celeba | 3 | 80x88 |' in rows['celeba'] and '| 0.5 (given) |' in rows['celeba']
    assert '| 1361 (assumed, 10 TFLOP/s) | 1 |' in rows['ffhq']
    assert "note: ffhq: the images (80x88) are not FFHQ's 1024x1024 faces" in out
    assert 'OMP_WAIT_POLICY unset' in out
    for row in json.loads(report.read_text())['rows']:
        assert row['images'] == 3 and all(ms > 0 for ms in row['stage_ms'].values())
        assert row['total_ms'] == pytest.approx(sum(row['stage_ms'].values()))
        assert row['samples_per_s'] == pytest.approx(1000 / row['total_ms'])
        assert row['worker_ms_per_batch'] == pytest.approx(row['batch'] * row['total_ms'])
        assert row['workers'] == math.ceil(row['batch'] / (row['samples_per_s'] * row['step_ms'] / 1000)) >= 1
    assert json.loads(report.read_text())['rows'][0]['workers'] > 1  # batch 32 in half a millisecond


@pytest.mark.parametrize('text, message', [('sparnet=100', 'expected names among celeba,ffhq'),
                                           ('celeba=0', 'expected name=milliseconds'),
                                           ('ffhq=fast', 'expected name=milliseconds')])
def test_bad_step_times_are_refused(text, message):
    with pytest.raises(UserError, match=message):
        benchmark_loader.step_times(text, ['celeba', 'ffhq'], 10.0)


def test_default_step_times_are_the_flops_of_a_step_over_the_assumed_throughput():
    steps = benchmark_loader.step_times('ffhq=900', ['celeba', 'ffhq'], 20.0)
    assert steps == {'celeba': (pytest.approx(32 * 42.8 / 20), 'assumed, 20 TFLOP/s'), 'ffhq': (900.0, 'given')}


def test_unreadable_files_are_left_out_and_counted(tmp_path, capsys):
    face_folder(tmp_path, count=3)
    (tmp_path / 'z_broken.png').write_bytes(b'\x89PNG not an image')
    assert benchmark_loader.main(['--dataroot', str(tmp_path), '--recipes', 'celeba', '--images', '2']) == 0
    out = capsys.readouterr().out
    assert '| celeba | 1 | 80x88 |' in out and 'note: celeba: 1 unreadable file(s) left out' in out
