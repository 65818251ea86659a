"""Shared test helpers: the repo on sys.path, released-format checkpoints with random weights."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from models.networks import GeneratorSpec, random_generator  # noqa: E402,F401 (used by the tests)



def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: runs a full-size network on the CPU (tens of seconds)')
    config.addinivalue_line('markers', 'gpu: needs CUDA GPUs (skipped without them)')


RELEASED_SPECS = {
    'sparnet_attn2d': GeneratorSpec('sparnet', 10, 'spar', 'bn'),
    'sparnet_light_attn3d': GeneratorSpec('sparnet', 1, 'spar3d', 'bn'),
    'sparnethd_attn2d': GeneratorSpec('sparnethd', 10, 'spar', 'in'),
    'sparnethd_attn3d': GeneratorSpec('sparnethd', 10, 'spar3d', 'in'),
}


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on a shared CPU, OpenMP threads waiting for each other slow small nets a lot."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope='session')
def released_checkpoint(tmp_path_factory):
    """released_checkpoint(name) -> path of a random-weight file in that model's released format."""
    folder = tmp_path_factory.mktemp('released')
    cache = {}

    def make(name):
        if name not in cache:
            cache[name] = str(folder / f'{name}.pth')
            torch.save(random_generator(RELEASED_SPECS[name]).state_dict(), cache[name])
        return cache[name]
    return make


def run_script(*args, cwd=ROOT):
    """Run a top-level script of the repo with the test interpreter; returns CompletedProcess."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=900)
