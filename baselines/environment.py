"""The environment a speed comparison with the published code runs in: the one its users had.

OpenMP's OMP_WAIT_POLICY=PASSIVE nearly doubled the published face loop's time here (batch 1, small
convolutions, threads going to sleep between them) and barely touched ours, so a baseline timed under it
flatters us. Users of the published code did not set it; the benchmarks refuse it and print what is set.
"""
import os
import platform

import torch

from utils.cli import UserError
from utils.devices import cpu_model, describe_device, native_bf16_cpu

REFUSED_VARIABLES = ('OMP_WAIT_POLICY',)
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'KMP_AFFINITY', 'KMP_BLOCKTIME')


def check_baseline_environment() -> None:
    """UserError (one line) if a variable that slows the published baseline far more than ours is set."""
    for name in REFUSED_VARIABLES:
        if name in os.environ:
            raise UserError(f'{name}={os.environ[name]} is set: it slows the published code far more than this '
                            f"one, whose users did not set it; unset it (env -u {name} ...) to time both as users "
                            'run them')


def describe_environment(device: torch.device, threads: int) -> dict:
    """What a timing depends on besides the code: device, threads, versions, CPU, thread variables set."""
    return {'device': describe_device(device), 'threads': threads, 'torch': torch.__version__,
            'python': platform.python_version(), 'cpu': cpu_model(),
            'cpu_bf16_native': native_bf16_cpu(),
            'variables': {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}}


def environment_line(env: dict, load_start: tuple, load_end: tuple) -> str:
    """The line printed beside a table of timings (the device names the CPU threads: 'cpu, 2 threads')."""
    return (f"environment: {env['device']}, torch {env['torch']}, Python {env['python']}, "
            f"CPU {env['cpu']} (native bf16: {env['cpu_bf16_native']}), variables {env['variables'] or 'none set'}; "
            f'load average (1 min) {load_start[0]:.2f} at start, {load_end[0]:.2f} at end')
