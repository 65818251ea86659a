"""Shared fixtures: released-format checkpoints with random weights, a local weights server, no real downloads.

No test touches the real network: for the whole session the download cache is a temporary folder
and every download goes to a closed port on 127.0.0.1, unless a test serves files with `weights_server`.
"""
import functools
import os
import shutil

import filelock
import pytest
import torch
import torchvision

from api import face_enhancer
from archs.generator_spec import random_generator
from archs.sparnet import SIZE_SETTINGS
from helpers.other_models import codeformer_file, gfpgan_file, realesrgan_file, restoreformer_file
from helpers.training import NARROW_SPARNETHD
from helpers.weights_server import WeightsServer, closed_port_url
from metrics.fid import FID_WEIGHTS_NAME
from weights import download
from weights.released import RELEASED_MODELS

if os.environ.get('PYTEST_XDIST_WORKER'):
    # `make test` runs three test processes on two cores: one intra-op thread each (and in their subprocesses),
    # or OpenMP threads of all of them wait on each other. utils.devices.set_inference_threads reads the variable too.
    os.environ['OMP_NUM_THREADS'] = '1'
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` run first, so that the test processes of `make test` share them out and the
    short ones fill in at the end; tests marked `gpu` are skipped where PyTorch sees no CUDA device
    (`make test-gpu` runs them on one)."""
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)  # stable: file order otherwise
    if torch.cuda.is_available():
        return
    no_cuda = pytest.mark.skipif(True, reason='gpu test: torch.cuda.is_available() is False (run `make test-gpu` '
                                              'on a machine with a CUDA GPU)')
    for item in items:
        if item.get_closest_marker('gpu') is not None:
            item.add_marker(no_cuda, append=False)  # first: its reason, not a later "needs 2 GPUs", is shown


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


@pytest.fixture
def narrow_sparnethd(monkeypatch):
    """`--model sparnethd` builds helpers.training.NARROW_SPARNETHD (in this process) for the test."""
    monkeypatch.setitem(SIZE_SETTINGS, 'sparnethd', NARROW_SPARNETHD)


@pytest.fixture(scope='session')
def made_once(tmp_path_factory):
    """made_once(relative path, write) -> the path, in a folder all the test processes of this run share (`make
    test`'s pytest-xdist workers), where `write(path)` wrote it for the first process that asked: stand-in weights
    of hundreds of MB are made once, not once per process. Written under a file lock, then renamed into place."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base) / 'made_once'

    def made(relative, write):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(f'{path}.lock'):
            if not path.exists():
                partial = path.with_name(f'partial-{path.name}')
                write(partial)
                os.replace(partial, path)
        return path
    return made


@pytest.fixture(scope='session')
def released_checkpoint(made_once):
    """released_checkpoint(name) -> path of a random-weight file in that model's released format."""
    def write(name, path):
        torch.save(random_generator(RELEASED_MODELS[name].spec).state_dict(), path)
    return lambda name: str(made_once(f'released/{name}.pth', functools.partial(write, name)))


@pytest.fixture(scope='session')
def realesrgan_standin(made_once):
    """realesrgan_standin(scale) -> path of a small Real-ESRGAN stand-in (1 block, 16 features) of scale 2 or 4, in
    the released files' format."""
    return lambda scale: str(made_once(f'realesrgan/x{scale}.pth',
                                       lambda path: realesrgan_file(path, scale, seed=scale)))


@pytest.fixture(scope='session')
def face_restorer_standin(made_once):
    """face_restorer_standin(name) -> path of a stand-in for 'gfpgan' (full size, 350 MB), 'restoreformer' (32
    channels) or 'codeformer' (one transformer layer), in the released files' format."""
    makers = {'gfpgan': gfpgan_file, 'restoreformer': restoreformer_file, 'codeformer': codeformer_file}
    return lambda name: str(made_once(f'face_restorers/{name}.pth', makers[name]))


@pytest.fixture(scope='session')
def inception_file(made_once):
    """Random Inception weights in pytorch-fid's file format (torchvision's Inception v3 with 1008
    classes and no aux head has the FID network's keys), in <TORCH_HOME>/hub/checkpoints. BatchNorm
    statistics are taken from one batch so that the features stay in a sane range."""
    def write(path):
        torch.manual_seed(0)
        net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=True)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
        net.train()
        with torch.no_grad():
            net(torch.rand(2, 3, 299, 299) * 2 - 1)
        torch.save(net.state_dict(), path)
    return made_once(f'torch_home/hub/checkpoints/{FID_WEIGHTS_NAME}', write)


@pytest.fixture
def network_stand_in(monkeypatch):
    """network_stand_in(make) -> the list of stand-ins built: every SPARNet network the Python API builds (for the
    scripts, the web page and programs alike) is `make()` instead, a callable of uint8 faces; its weights are found
    and checked as usual, not loaded."""
    def use(make):
        built = []

        def enhancer(net, device, batch_size, round_output=False):
            built.append(make())
            return built[-1]
        monkeypatch.setattr(face_enhancer, 'inference_net', lambda *args, **kwargs: None)
        monkeypatch.setattr(face_enhancer, 'Enhancer', enhancer)
        return built
    return use


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


@pytest.fixture(autouse=True)
def no_checkpoints_left(request):
    """Delete the weights a test wrote in its tmp_path (gigabytes for SPARNetHD) once it is done."""
    yield
    tmp_path = request.node.funcargs.get('tmp_path')
    if tmp_path is not None:
        shutil.rmtree(tmp_path / 'checkpoints', ignore_errors=True)
        for path in tmp_path.glob('*.pth'):
            if path.is_file():
                path.unlink()
