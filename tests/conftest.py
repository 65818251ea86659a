"""Shared test helpers: the repo on sys.path, released-format checkpoints with random weights, a local weights server.

No test touches the real network: for the whole session the download cache is a temporary folder
and every download goes to a closed port on 127.0.0.1, unless a test serves files with `weights_server`.
"""
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from models.networks import GeneratorSpec, random_generator  # noqa: E402,F401 (used by the tests)
from models.released import RELEASED_MODELS  # noqa: E402
from utils import download  # noqa: E402
from utils.fid import FID_WEIGHTS_NAME  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: runs a full-size network on the CPU (tens of seconds)')
    config.addinivalue_line('markers', 'gpu: needs CUDA GPUs (skipped without them)')


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped where PyTorch sees no CUDA device (`make test-gpu` runs them on one)."""
    if torch.cuda.is_available():
        return
    no_cuda = pytest.mark.skipif(True, reason='gpu test: torch.cuda.is_available() is False (run `make test-gpu` '
                                              'on a machine with a CUDA GPU)')
    for item in items:
        if item.get_closest_marker('gpu') is not None:
            item.add_marker(no_cuda, append=False)  # first: its reason, not a later "needs 2 GPUs", is shown


RELEASED_SPECS = {name: model.spec for name, model in RELEASED_MODELS.items()}


def closed_port_url():
    """http://127.0.0.1:<a port nothing listens on>: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return f'http://127.0.0.1:{sock.getsockname()[1]}'


@pytest.fixture(scope='session', autouse=True)
def no_real_downloads(tmp_path_factory):
    """A temporary cache and a download base URL that refuses, for this process and its subprocesses."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(download.CACHE_ENV, str(tmp_path_factory.mktemp('sparnet_home')))
        patch.setenv(download.BASE_URL_ENV, closed_port_url())
        yield


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


@pytest.fixture(scope='session')
def inception_file(tmp_path_factory):
    """Random Inception weights in pytorch-fid's file format (torchvision's Inception v3 with 1008
    classes and no aux head has the FID network's keys). BatchNorm statistics are taken from one
    batch so that the features stay in a sane range."""
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=True)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.rand(2, 3, 299, 299) * 2 - 1)
    path = tmp_path_factory.mktemp('torch_home') / 'hub' / 'checkpoints' / FID_WEIGHTS_NAME
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def broken_checkpoint(released_checkpoint, tmp_path):
    """broken_checkpoint(name, kind) -> path of released-format weights with one NaN ('nan': refused at load), or
    all finite but their convolutions 1e15 times too large ('overflow': the outputs overflow to NaN / infinity)."""
    def make(name, kind):
        state = torch.load(released_checkpoint(name), weights_only=True)
        weights = [key for key in state if key.endswith('weight')]
        if kind == 'nan':
            state[weights[0]].view(-1)[0] = float('nan')
        else:
            state.update({key: state[key] * 1e15 for key in weights})
        path = tmp_path / f'{name}_{kind}.pth'
        torch.save(state, path)
        return str(path)
    return make


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET /<file> from the server's folder, misbehaving as `server.mode` says."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server.weights_server
        server.requests.append(self.path)
        path = os.path.join(server.folder, os.path.basename(self.path))
        if server.mode == 'missing' or not os.path.isfile(path):
            self.send_error(404, 'Not Found')
            return
        if server.mode == 'slow':
            time.sleep(server.delay)
        with open(path, 'rb') as f:
            body = f.read()
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if server.mode == 'cut':
            body = body[:len(body) // 2]
            self.close_connection = True
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class WeightsServer:
    """An HTTP server on 127.0.0.1 in a thread, serving `folder`; records the paths it is asked for.

    `mode`: 'ok', 'missing' (404 for everything), 'cut' (closes after half of each file) or 'slow'
    (waits `delay` seconds before answering).
    """

    def __init__(self, folder):
        self.folder = folder
        self.requests = []
        self.mode = 'ok'
        self.delay = 2.0
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.weights_server = self
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, source, file_name):
        """Serve the file `source` as `file_name` (a hard link where possible: the HD files are 350 MB)."""
        target = os.path.join(self.folder, file_name)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return target

    def add_released(self, name, source):
        """Serve `source` (e.g. random weights of that format) as the released model `name`'s file."""
        return self.add(source, RELEASED_MODELS[name].file_name)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """A local WeightsServer as the download base URL (in-process and for subprocesses), and an empty cache.

    `server.cache` is the cache folder ($SPARNET_HOME) of the test.
    """
    (tmp_path / 'served').mkdir()
    server = WeightsServer(str(tmp_path / 'served'))
    server.cache = str(tmp_path / 'cache')
    monkeypatch.setenv(download.BASE_URL_ENV, server.url)
    monkeypatch.setenv(download.CACHE_ENV, server.cache)
    yield server
    server.close()


def run_script(*args, cwd=ROOT):
    """Run a top-level script of the repo with the test interpreter; returns CompletedProcess."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=900)
