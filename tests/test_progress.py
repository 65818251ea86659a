"""Progress: a tqdm bar in a terminal, a few plain lines in a log file (pipe, nohup, Slurm, CI)."""
import io
import sys

import numpy as np
import pytest
from PIL import Image
from tqdm import tqdm

from helpers.commands import run_script
from scripts import make_lr
from utils import progress as progress_module
from utils.progress import LINE_SECONDS, PlainProgress, progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def hr_folder(tmp_path):
    root = tmp_path / 'HR'
    root.mkdir()
    for index in range(3):
        Image.fromarray(np.full((16, 16, 3), index * 50, np.uint8)).save(root / f'{index}.png')
    return root


def test_in_a_terminal_the_bar_is_tqdm(monkeypatch, hr_folder, tmp_path):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, 'stderr', terminal)
    assert isinstance(progress(range(3)), tqdm)
    assert make_lr.main(['--input_dir', str(hr_folder), '--output_dir', str(tmp_path / 'LR')]) == 0
    assert '\r' in terminal.getvalue() and 'make LR: 100%' in terminal.getvalue()


def test_in_a_pipe_a_script_prints_plain_lines(hr_folder, tmp_path):
    proc = run_script('-m', 'scripts.make_lr', '--input_dir', str(hr_folder), '--output_dir', str(tmp_path / 'LR'))
    assert proc.returncode == 0, proc.stderr
    assert '\r' not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith('make LR:')]
    assert [line.split(', ')[0] for line in lines] == ['make LR: 1/3 images (33%)', 'make LR: 2/3 images (67%)',
                                                       'make LR: 3/3 images (100%)']


def test_plain_lines_at_each_tenth_and_every_interval(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, 'stderr', log)
    clock = Clock()
    with PlainProgress(total=1000, desc='test', unit='image', clock=clock) as bar:
        for _ in range(1000):
            clock.now += 0.25
            bar.update(1)
            if bar.n == 500:
                bar.set_postfix({'l1': 0.012345, 'step': 3}, refresh=False)
    lines = log.getvalue().splitlines()
    assert len(lines) == 10  # the tenths; the last one is also the final line
    assert lines[0] == 'test: 100/1000 images (10%), 4 image/s, ETA 03:45, elapsed 00:25'
    assert lines[5] == 'test: 600/1000 images (60%), 4 image/s, ETA 01:40, elapsed 02:30, l1 0.0123, step 3'
    assert lines[-1] == 'test: 1000/1000 images (100%), 4 image/s, elapsed 04:10, l1 0.0123, step 3'

    log.truncate(0), log.seek(0)
    clock.now = 0
    slow = PlainProgress(total=100_000, desc='epoch 1/5', initial=40_000, clock=clock)
    for _ in range(3):
        clock.now += LINE_SECONDS
        slow.update(10)  # far from the next tenth: one line per interval
    assert log.getvalue().splitlines() == [
        f'epoch 1/5: {40_000 + 10 * k}/100000 it (40%), {10 * k / (k * LINE_SECONDS):.3g} it/s, '
        f'ETA {tqdm.format_interval((100_000 - 40_000 - 10 * k) / (10 / LINE_SECONDS))}, '
        f'elapsed {tqdm.format_interval(k * LINE_SECONDS)}' for k in (1, 2, 3)]


def test_inner_bytes_and_disabled_bars(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, 'stderr', log)
    clock = Clock()
    with PlainProgress(total=4, desc='faces', unit='face', leave=False, clock=clock) as inner:
        inner.update(4)  # an inner loop: no tenths, no final line
    with PlainProgress(total=3e7, desc='weights.pth', unit='B', unit_scale=True, clock=clock) as download:
        clock.now += 5
        download.update(1e7)
    for _ in PlainProgress(range(50), disable=True, clock=clock):
        clock.now += LINE_SECONDS
    assert log.getvalue().splitlines() == ['weights.pth: 10.0MB/30.0MB (33%), 2.00MB/s, ETA 00:10, elapsed 00:05']


def test_a_loop_left_early_says_where_it_stopped(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, 'stderr', log)
    clock = Clock()
    for index in PlainProgress(range(100), desc='epoch 2/2', clock=clock):
        clock.now += 1
        if index == 4:
            break  # as train.py's epoch loop on Ctrl-C: the loop's generator is closed
    assert log.getvalue().splitlines() == ['epoch 2/2: 4/100 it (4%), 0.8 it/s, ETA 02:00, elapsed 00:05']
    assert progress_module.in_terminal() is False


def test_bars_everywhere_for_the_web_page(monkeypatch):
    monkeypatch.setattr(sys, 'stderr', io.StringIO())
    monkeypatch.setattr(progress_module, '_bars_everywhere', False)
    assert isinstance(progress_module.progress(range(3)), PlainProgress)
    progress_module.show_bars_everywhere()
    assert isinstance(progress_module.progress(range(3)), tqdm)


def test_a_disabled_bar_is_never_a_tqdm_bar(monkeypatch):
    """The web page shows every tqdm bar made (Gradio's tracking), disabled or not."""
    monkeypatch.setattr(progress_module, '_bars_everywhere', True)
    assert isinstance(progress(total=3), tqdm)
    assert isinstance(progress(total=3, disable=True), PlainProgress)
