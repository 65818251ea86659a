"""What a training run keeps when things go wrong: signals to the process group, full disks, divergence,
an earlier run of the same name, a corrupt training state."""
import os
import signal
import subprocess
import sys
import time

import pytest

from train_helpers import no_checkpoints_left  # noqa: F401 (autouse fixture)
from train_helpers import ROOT, face_folder, train_flags

from utils.checkpoint import load_train_state

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.1)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize('with_validation', [False, True], ids=['train_loader', 'validation_loader'])
def test_sigterm_to_the_process_group_saves_latest_and_leaves_no_worker(tmp_path, with_validation):
    """scancel / systemd signal every process of the job: the loader workers must leave the stop to train.py."""
    face_folder(tmp_path / 'faces', count=8)
    extra = ['--val_dataroot', face_folder(tmp_path / 'val', count=4, seed=1), '--val_freq', '1'] \
        if with_validation else []
    flags = train_flags(tmp_path, 'sparnet', 'term', '--total_epochs', '1000', *extra)
    flags[flags.index('--num_threads') + 1] = '2'
    log_file = tmp_path / 'logs' / 'term' / 'loss_log.txt'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}  # 3 processes on a shared CPU: no OpenMP threads waiting
    proc = subprocess.Popen([sys.executable, 'train.py', *flags], cwd=ROOT, start_new_session=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: log_file.is_file() and 'iter 2 ' in log_file.read_text(), 120, 'two iterations')
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
        wait_for(lambda: not group_alive(proc.pid), 15, 'the loader workers to exit')
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, stderr
    assert 'Traceback' not in stderr and 'DataLoader worker' not in stderr
    iteration = load_train_state(str(tmp_path / 'checkpoints' / 'term' / 'latest_train_state.pth'))['iteration']
    assert iteration >= 2 and f'stopped at iteration {iteration}; `latest` saved' in stderr
