"""Released weights by name, URL or original path, served by a local HTTP server: download into the cache
(progress, SHA-256, checks, one-line failures, nothing half-written), flags taken from the weights, and the
README's table of released models."""
import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import re
import socket
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.commands import ROOT, run_in_process, run_test_py, run_whole_photos
from options.test_options import TestOptions
from options.train_options import TrainOptions
from scripts import download_weights
from weights import download
from weights.download import DownloadError
from weights.released import RELEASED_MODELS, find_released, markdown_table
from weights.sources import resolve_weights
from weights.state_dict import WeightsError

LIGHT = RELEASED_MODELS['sparnet_light_attn3d']  # the smallest released network (21 MB)


def files_in(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def sha256_of(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def parse(*args, default_weights=''):
    return TestOptions().parse(['--gpus', '0', *args], default_weights=default_weights)


def generator_flags(opt):
    return (opt.model, opt.res_depth, opt.att_name, opt.Gnorm, opt.bottleneck_size, opt.load_size)


def table_flags(model):
    spec = model.spec
    return (spec.model, spec.res_depth, spec.att_name, spec.norm_type, spec.bottleneck_size, model.load_size)


def put_in_cache(server, name, source):
    """The released file of `name` already downloaded (a hard link to `source`)."""
    os.makedirs(server.cache, exist_ok=True)
    path = os.path.join(server.cache, RELEASED_MODELS[name].file_name)
    os.link(source, path)
    return path


def test_names_and_aliases():
    for alias in ('sparnet', 'SPARNet-V16-S4-epoch20.pth', 'SPARNet-V16-S4-epoch20', ' SPARNET '):
        assert find_released(alias) is RELEASED_MODELS['sparnet']
    assert find_released('SPARNetHD_V4_Attn3D_net_H-epoch10').name == 'sparnethd_attn3d'
    assert find_released('sparnet2') is None
    assert LIGHT.url == ('https://github.com/chaofengc/Face-SPARNet/releases/download/v0.1.0/'
                         'SPARNetLight_Attn3D-epoch20.pth')
    assert all(model.sha256 is None for model in RELEASED_MODELS.values())  # unknown: never invented


@pytest.mark.slow
def test_readme_model_table_is_generated_from_the_table(capsys):
    assert download_weights.main(['--markdown']) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == markdown_table()
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        assert printed in f.read()


@pytest.mark.slow
def test_test_py_downloads_a_name_once_with_progress_then_uses_the_cache(tmp_path, weights_server,
                                                                         released_checkpoint):
    served = weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    (tmp_path / 'LR').mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)).save(tmp_path / 'LR' / 'a.png')

    def test_py(out):
        argv = ['--gpus', '0', '--pretrain_model_path', 'sparnet_light_attn3d', '--dataroot', str(tmp_path / 'LR'),
                '--save_as_dir', str(tmp_path / out)]
        return run_in_process(run_test_py, argv, 'test.py')
    first = test_py('out1')
    assert first.returncode == 0, first.stderr
    assert re.search(rf'{re.escape(LIGHT.file_name)}: \S+/\S+ \(100%\)', first.stderr)  # plain progress in a pipe
    assert f'SHA-256 {sha256_of(served)}' in first.stderr
    assert 'flags of the released sparnet_light_attn3d: --model sparnet --res_depth 1 --att_name spar3d' in first.stderr
    assert files_in(weights_server.cache) == [LIGHT.file_name]
    assert sha256_of(os.path.join(weights_server.cache, LIGHT.file_name)) == sha256_of(served)
    second = test_py('out2')
    assert second.returncode == 0, second.stderr
    assert weights_server.requests == [f'/{LIGHT.file_name}']  # the second run asked nothing
    assert 'downloading' not in second.stderr and 'B/s]' not in second.stderr  # no download, no byte progress bar
    out1, out2 = (np.asarray(Image.open(tmp_path / out / 'a.png')) for out in ('out1', 'out2'))
    assert out1.shape == (128, 128, 3) and np.array_equal(out1, out2)


def test_a_missing_original_path_takes_the_released_file_from_the_cache(tmp_path, weights_server,
                                                                        released_checkpoint, caplog):
    weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    original = str(tmp_path / 'pretrain_models' / LIGHT.file_name)
    with caplog.at_level(logging.INFO):
        weights = resolve_weights(original)
    assert weights.path == os.path.join(weights_server.cache, LIGHT.file_name) and weights.released is LIGHT
    assert f'{original} is not there: using the released sparnet_light_attn3d' in caplog.text
    assert not os.path.exists(original)


def assert_one_line_and_nothing_left(message, server, *parts):
    assert '\n' not in message
    for part in parts:
        assert part in message, (part, message)
    assert files_in(server.cache) == []  # neither the file nor a temporary one


@pytest.mark.parametrize('mode, reason', [('missing', 'HTTP 404 Not Found'),
                                          ('cut', 'the transfer was cut short: ')])
def test_server_failures_give_one_line_and_leave_nothing(weights_server, released_checkpoint, mode, reason):
    weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    weights_server.mode = mode
    with pytest.raises(DownloadError) as err:
        resolve_weights('sparnet_light_attn3d')
    target = os.path.join(weights_server.cache, LIGHT.file_name)
    assert_one_line_and_nothing_left(str(err.value), weights_server, 'sparnet_light_attn3d: could not download ',
                                     f'{weights_server.url}/{LIGHT.file_name}', reason,
                                     f'download it by hand and put it at {target}')


def test_time_out(weights_server, released_checkpoint, monkeypatch):
    weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    weights_server.mode, weights_server.delay = 'slow', 2.0
    monkeypatch.setattr(download, 'TIMEOUT_SECONDS', 0.3)
    with pytest.raises(DownloadError) as err:
        resolve_weights('sparnet_light_attn3d')
    assert_one_line_and_nothing_left(str(err.value), weights_server, 'timed out: no data for 0.3 s')


def test_offline_no_dns_and_connection_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / 'cache'))
    with pytest.raises(DownloadError, match=r'\(connection refused\); download it by hand'):
        resolve_weights('sparnet')  # the session's base URL: a closed port

    def no_dns(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(socket.EAI_NONAME, 'Name or service not known'))
    monkeypatch.setattr(download.urllib.request, 'urlopen', no_dns)
    with pytest.raises(DownloadError, match=r'could not resolve the host name: offline, or no DNS'):
        resolve_weights('sparnet')
    assert files_in(tmp_path / 'cache') == []


def test_full_disk(weights_server, released_checkpoint, monkeypatch):
    weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    real_atomic_write = download.atomic_write

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            raise OSError(errno.ENOSPC, 'No space left on device')

    @contextlib.contextmanager
    def full_disk(path, **kwargs):
        with real_atomic_write(path, **kwargs) as handle:
            yield FullDisk(handle)
    monkeypatch.setattr(download, 'atomic_write', full_disk)
    with pytest.raises(DownloadError) as err:
        resolve_weights('sparnet_light_attn3d')
    assert_one_line_and_nothing_left(str(err.value), weights_server,
                                     'could not write the file: No space left on device')


@pytest.mark.parametrize('served, reason', [
    ('sparnet', 'weights do not fit the network of --model sparnet --res_depth 1 --att_name spar3d'),
    ('random bytes', 'not a readable PyTorch weights file'),
])
@pytest.mark.slow
def test_files_of_the_wrong_structure_are_refused_and_deleted(weights_server, released_checkpoint, tmp_path,
                                                              served, reason):
    if served == 'random bytes':
        source = tmp_path / 'junk.pth'
        source.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 100_000, np.uint8)))
    else:
        source = released_checkpoint(served)  # the big SPARNet under the light one's name
    weights_server.add(str(source), LIGHT.file_name)
    with pytest.raises(DownloadError) as err:
        resolve_weights('sparnet_light_attn3d')
    assert_one_line_and_nothing_left(str(err.value), weights_server, 'sparnet_light_attn3d: the file downloaded from',
                                     'was refused and deleted', reason)


def test_sha256_checked_when_known(weights_server, released_checkpoint, monkeypatch):
    served = weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    monkeypatch.setitem(RELEASED_MODELS, LIGHT.name, dataclasses.replace(LIGHT, sha256='0' * 64))
    with pytest.raises(DownloadError) as err:
        resolve_weights('sparnet_light_attn3d')
    assert_one_line_and_nothing_left(str(err.value), weights_server,
                                     f'has SHA-256 {sha256_of(served)}, expected {"0" * 64}', 'deleted')
    monkeypatch.setitem(RELEASED_MODELS, LIGHT.name, dataclasses.replace(LIGHT, sha256=sha256_of(served)))
    assert resolve_weights('sparnet_light_attn3d').path == os.path.join(weights_server.cache, LIGHT.file_name)


@pytest.mark.slow
def test_two_processes_downloading_at_once_end_with_one_good_file(weights_server, released_checkpoint):
    served = weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    weights_server.mode, weights_server.delay = 'slow', 1.0  # both requests are in flight together
    code = 'from weights.sources import resolve_weights; print(resolve_weights("sparnet_light_attn3d").path)'
    processes = [subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], results
    assert len(weights_server.requests) == 2
    assert files_in(weights_server.cache) == [LIGHT.file_name]
    assert sha256_of(os.path.join(weights_server.cache, LIGHT.file_name)) == sha256_of(served)


def test_a_url_is_downloaded_once_and_checked(weights_server, released_checkpoint, tmp_path):
    weights_server.add(released_checkpoint('sparnet_light_attn3d'), 'my_finetuned.pth')
    url = f'{weights_server.url}/my_finetuned.pth'
    opt = parse('--pretrain_model_path', url)
    assert opt.pretrain_model_path == download.url_cache_path(url)
    assert opt.pretrain_model_path.startswith(os.path.join(weights_server.cache, 'urls', ''))
    assert generator_flags(opt) == table_flags(LIGHT)
    parse('--pretrain_model_path', url)
    assert weights_server.requests == ['/my_finetuned.pth']
    torch.save({'conv.weight': torch.zeros(3, 3)}, tmp_path / 'other.pth')
    weights_server.add(str(tmp_path / 'other.pth'), 'other.pth')
    with pytest.raises(DownloadError, match='not SPARNet/SPARNetHD generator weights'):
        parse('--pretrain_model_path', f'{weights_server.url}/other.pth')
    assert files_in(weights_server.cache) == ['urls']
    assert files_in(os.path.dirname(opt.pretrain_model_path)) == ['my_finetuned.pth']
    assert not os.path.exists(os.path.dirname(download.url_cache_path(f'{weights_server.url}/other.pth')))


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(RELEASED_MODELS))
def test_flags_from_a_released_name_without_network(weights_server, released_checkpoint, name):
    put_in_cache(weights_server, name, released_checkpoint(name))
    opt = parse('--pretrain_model_path', name)
    assert generator_flags(opt) == table_flags(RELEASED_MODELS[name])
    assert opt.pretrain_model_path == os.path.join(weights_server.cache, RELEASED_MODELS[name].file_name)
    assert weights_server.requests == []


@pytest.mark.parametrize('name', [pytest.param(name, marks=pytest.mark.slow) if 'hd' in name else name
                                  for name in sorted(RELEASED_MODELS)])
def test_flags_from_a_plain_file(released_checkpoint, name, caplog):
    path = released_checkpoint(name)
    with caplog.at_level(logging.INFO):
        opt = parse('--pretrain_model_path', path)
    assert generator_flags(opt) == table_flags(RELEASED_MODELS[name])
    assert f'flags from {path}: --model {opt.model} --res_depth {opt.res_depth}' in caplog.text
    assert ('pass --Gnorm gn for a group-norm network' in caplog.text) == (opt.Gnorm == 'in')


@pytest.mark.slow
def test_contradicting_flags_are_refused(weights_server, released_checkpoint):
    light = released_checkpoint('sparnet_light_attn3d')
    with pytest.raises(WeightsError) as err:
        parse('--pretrain_model_path', light, '--att_name', 'spar')
    message = str(err.value)
    assert f"the file fits {RELEASED_MODELS['sparnet_light_attn3d'].spec.flags()}" in message
    assert message.startswith(f'{light}: weights do not fit') and '\n' not in message
    put_in_cache(weights_server, 'sparnet_light_attn3d', light)
    with pytest.raises(WeightsError, match='do not fit the network of --model sparnet --res_depth 10'):
        parse('--pretrain_model_path', 'sparnet_light_attn3d', '--res_depth', '10')
    opt = parse('--pretrain_model_path', 'sparnet_light_attn3d', '--model', 'sparnet', '--Gnorm', "'bn'")
    assert generator_flags(opt) == table_flags(LIGHT)  # flags that agree are fine


def test_flags_from_the_checkpoint_of_a_run(tmp_path, released_checkpoint):
    run_dir = tmp_path / 'checkpoints' / 'light_run'
    run_dir.mkdir(parents=True)
    os.link(released_checkpoint('sparnet_light_attn3d'), run_dir / 'epoch_5_net_G.pth')
    opt = parse('--checkpoints_dir', str(tmp_path / 'checkpoints'), '--name', 'light_run', '--epoch', '5')
    assert generator_flags(opt) == table_flags(LIGHT) and opt.pretrain_model_path == ''
    opt = parse('--checkpoints_dir', str(tmp_path / 'checkpoints'), '--name', 'other_run')
    assert generator_flags(opt) == ('sparnet', 10, 'spar', 'bn', 4, 128)  # no weights: the published defaults


def test_fine_tuning_from_a_released_name(weights_server, released_checkpoint):
    put_in_cache(weights_server, 'sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    opt = TrainOptions().parse(['--gpus', '0', '--pretrain_model_path', 'sparnet_light_attn3d'])
    assert generator_flags(opt) == table_flags(LIGHT) and opt.dataset_name == 'celeba'


@pytest.mark.parametrize('source, message', [
    ('folder', 'is a folder, not a weights file'),
    ('SPARNet-V17.pth', 'no such weights file; --pretrain_model_path takes a .pth file, a released model name'),
])
def test_bad_sources(tmp_path, source, message):
    (tmp_path / 'folder').mkdir()
    with pytest.raises(WeightsError, match=message):
        resolve_weights(str(tmp_path / source))


def test_photo_script_offline_stops_with_one_line(tmp_path):
    """`test_enhance_single_unalign.py --test_img_path photo.jpg` needs the default model; offline it says so."""
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / 'photo.jpg')
    proc = run_in_process(run_whole_photos, ['--test_img_path', str(tmp_path / 'photo.jpg'), '--results_dir',
                                             str(tmp_path / 'out')], 'test_enhance_single_unalign.py')
    assert proc.returncode == 2
    hd = RELEASED_MODELS['sparnethd_attn2d']
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: sparnethd_attn2d: could not download ') and '(connection refused)' in last
    assert last.endswith(f"put it at {os.path.join(os.environ[download.CACHE_ENV], hd.file_name)}")
    assert not (tmp_path / 'out').exists()


def test_download_script_lists_fetches_into_a_folder_and_reports_failures(weights_server, released_checkpoint,
                                                                          tmp_path, capsys):
    weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    folder = str(tmp_path / 'for_the_cluster')
    assert download_weights.main(['--dir', folder]) == 0
    assert 'sparnet_light_attn3d     not downloaded' in capsys.readouterr().out
    assert download_weights.main(['sparnet_light_attn3d', '--dir', folder]) == 0
    assert files_in(folder) == [LIGHT.file_name] and files_in(weights_server.cache) == []
    assert download_weights.main(['--dir', folder]) == 0
    assert f'{os.path.join(folder, LIGHT.file_name)}' in capsys.readouterr().out
    assert download_weights.main(['SPARNetLight_Attn3D-epoch20.pth', '--dir', folder]) == 0
    assert '(already there)' in capsys.readouterr().out
    assert download_weights.main(['sparnet', 'sparnet_light_attn3d']) == 1  # sparnet is not served: 404
    assert files_in(weights_server.cache) == [LIGHT.file_name]
