"""Downloads keyed and fetched by the whole URL, and bounded: a size over the free space refused before
writing, a transfer stopped beyond its announced size, archive bombs refused before unpacking, a redirect
loop in one line."""
import gzip
import io
import logging
import os
import tarfile
import tracemalloc

import pytest

from options.test_options import TestOptions
from weights import archive, download
from weights.archive import ArchiveError, check_archive, extract_archive
from weights.download import DownloadError, url_cache_path
from weights.released import RELEASED_MODELS
from weights.sources import fetch_url

LIGHT = RELEASED_MODELS['sparnet_light_attn3d']
SPARNET = RELEASED_MODELS['sparnet']


def parse(*args):
    return TestOptions().parse(['--gpus', '0', *args])


def flags(opt):
    return opt.model, opt.res_depth, opt.att_name


def files_below(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names)


def test_two_urls_ending_in_one_file_name_are_two_files(weights_server, released_checkpoint, caplog):
    weights_server.add(released_checkpoint('sparnet_light_attn3d'), 'a/latest_net_G.pth')
    weights_server.add(released_checkpoint('sparnet'), 'b/latest_net_G.pth')
    first, second = (f'{weights_server.url}/{folder}/latest_net_G.pth' for folder in 'ab')
    with caplog.at_level(logging.INFO):
        opts = [parse('--pretrain_model_path', url) for url in (first, second, first)]
    assert [opt.pretrain_model_path for opt in opts] == [url_cache_path(first), url_cache_path(second),
                                                         url_cache_path(first)]
    assert url_cache_path(first) != url_cache_path(second)
    assert [flags(opt) for opt in opts] == [('sparnet', 1, 'spar3d'), ('sparnet', 10, 'spar'), ('sparnet', 1, 'spar3d')]
    assert weights_server.requests == ['/a/latest_net_G.pth', '/b/latest_net_G.pth']  # the third from the cache
    assert f'{second}: using {url_cache_path(second)}' in caplog.text


def test_a_url_ending_in_a_released_file_name_is_fetched_from_its_host(weights_server, released_checkpoint):
    """Only bare names and missing local paths map to the release; a URL names its own file."""
    url = f'{weights_server.url}/x/{SPARNET.file_name}'
    weights_server.add(released_checkpoint('sparnet_light_attn3d'), f'x/{SPARNET.file_name}')
    opt = parse('--pretrain_model_path', url)
    assert weights_server.requests == [f'/x/{SPARNET.file_name}']
    assert opt.pretrain_model_path == url_cache_path(url)
    assert flags(opt) == ('sparnet', 1, 'spar3d')  # what the file holds, not the released network of that name
    assert not os.path.exists(os.path.join(weights_server.cache, SPARNET.file_name))


def test_the_release_s_own_url_is_the_released_model(weights_server, released_checkpoint):
    weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    weights = fetch_url(LIGHT.url)
    assert weights.released is LIGHT and weights.path == os.path.join(weights_server.cache, LIGHT.file_name)


def test_a_size_over_the_free_space_is_refused_before_writing(weights_server, released_checkpoint, monkeypatch):
    weights_server.add(released_checkpoint('sparnet_light_attn3d'), 'huge.pth')
    weights_server.announced = 10 ** 13  # 10 TB
    monkeypatch.setattr(download, 'free_space', lambda folder: 5 * 10 ** 9)
    url = f'{weights_server.url}/huge.pth'
    with pytest.raises(DownloadError) as err:
        parse('--pretrain_model_path', url)
    message = str(err.value)
    assert '\n' not in message and 'is 10,000,000.0 MB but ' in message and 'has 5,000.0 MB free' in message
    assert files_below(weights_server.cache) == []


def test_a_transfer_beyond_its_content_length_or_the_table_s_size_stops(weights_server, released_checkpoint):
    """A body without a Content-Length that does not end: a released file stops at its table size (with a margin),
    nothing is kept."""
    weights_server.mode = 'endless'
    with pytest.raises(DownloadError) as err:
        LIGHT.remote.fetch()
    limit = int(LIGHT.spec.state_bytes() * download.SIZE_HINT_MARGIN) + download.CHUNK_BYTES
    assert f'the server sent more than the size the weights table gives, {download.megabytes(limit)}' in str(err.value)
    assert '\n' not in str(err.value) and files_below(weights_server.cache) == []


def test_a_transfer_of_unknown_size_stops_before_the_disk_is_full(weights_server, monkeypatch):
    weights_server.mode = 'endless'
    monkeypatch.setattr(download, 'free_space', lambda folder: 100 << 20)
    with pytest.raises(DownloadError) as err:
        fetch_url(f'{weights_server.url}/stream.pth')
    assert 'stopped after 1.0 MB: ' in str(err.value) and 'has 104.9 MB free left' in str(err.value)
    assert files_below(weights_server.cache) == []


def test_a_redirect_loop_is_one_line(weights_server):
    weights_server.mode = 'redirect_loop'
    with pytest.raises(DownloadError) as err:
        fetch_url(f'{weights_server.url}/loop.pth')
    assert '\n' not in str(err.value) and '(HTTP 302: the server redirects in a loop)' in str(err.value)


def tar_gz(path, members):
    """A .tgz of `members` {name: bytes}."""
    with tarfile.open(path, 'w:gz') as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return str(path)


def test_a_compression_bomb_is_refused_before_anything_is_unpacked(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, 'MIN_EXPANSION_BYTES', 1 << 20)
    bomb = tar_gz(tmp_path / 'bomb.tgz', {'a.png': b'x' * 1000, 'zeros.bin': bytes(8 << 20)})
    assert os.path.getsize(bomb) < 20_000
    for action in (lambda: check_archive(bomb, 'bomb.tgz'), lambda: extract_archive(bomb, str(tmp_path / 'out'))):
        with pytest.raises(ArchiveError, match='20 times the archive') as err:
            action()
        assert '\n' not in str(err.value)
    assert sorted(os.listdir(tmp_path)) == ['bomb.tgz']


def header_bomb(path, kind, size):
    """A .tgz whose first member's `kind` header declares `size` bytes, written in full from one repeated unit (a
    few KB of gzip), then a small file: 'pax' (one PAX record), 'long_name' (a GNU long name) or 'sparse' (a GNU
    sparse 1.0 file, whose map in its data claims a billion entries)."""
    if kind == 'sparse':
        info = tarfile.TarInfo('sparse.bin')
        info.pax_headers = {'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 'sparse.bin',
                            'GNU.sparse.realsize': '1'}
        start, unit, end, format_ = b'1000000000\n', b'0\n', b'', tarfile.PAX_FORMAT
    else:
        info = tarfile.TarInfo('././@PaxHeader' if kind == 'pax' else '././@LongLink')
        info.type = tarfile.XHDTYPE if kind == 'pax' else tarfile.GNUTYPE_LONGNAME
        start, end = (f'{size} comment='.encode(), b'\n') if kind == 'pax' else (b'', b'\0')
        unit, format_ = b'a', tarfile.USTAR_FORMAT
    info.size = size
    chunk = unit * ((1 << 20) // len(unit))
    with gzip.open(path, 'wb') as out:
        out.write(info.tobuf(format_) + start)
        left = size - len(start) - len(end)
        while left > 0:
            out.write(chunk[:left])
            left -= len(chunk)
        out.write(end + bytes(-size % tarfile.BLOCKSIZE))
        small = tarfile.TarInfo('a.png')
        small.size = 3
        out.write(small.tobuf(tarfile.USTAR_FORMAT) + b'png'.ljust(tarfile.BLOCKSIZE, b'\0') + bytes(1024))
    return str(path)


@pytest.mark.parametrize('kind, message', [
    ('pax', 'a PAX extended header at byte 0 declares 16.8 MB, more than the 1.0 MB the headers of a member may '
            'take'),
    ('long_name', 'a GNU long name at byte 0 declares 16.8 MB, more than the 1.0 MB the headers of a member may take'),
    ('sparse', 'the member at byte 1,024 is a GNU sparse file, whose map tarfile reads without a bound'),
], ids=['pax', 'long_name', 'sparse'])
def test_a_header_bomb_is_refused_before_its_header_is_read(tmp_path, kind, message):
    """tarfile reads a header whole: 16 MB declared in a 20 KB .tgz is refused from its declared size, in one line,
    with less than 2 MB of Python memory at the peak (the header itself would be 16 MB, three times that parsed)."""
    bomb = header_bomb(tmp_path / 'bomb.tgz', kind, 16 << 20)
    assert os.path.getsize(bomb) < 60_000
    for action in (lambda: check_archive(bomb, 'bomb.tgz'), lambda: extract_archive(bomb, str(tmp_path / 'out'))):
        tracemalloc.start()
        try:
            with pytest.raises(ArchiveError) as err:
                action()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert str(err.value).startswith(('bomb.tgz: refused: ', f'{bomb}: refused: ')) and message in str(err.value)
        assert '\n' not in str(err.value) and str(err.value).endswith('; nothing was extracted')
        assert peak < 2 << 20
    assert sorted(os.listdir(tmp_path)) == ['bomb.tgz']


def test_headers_count_toward_the_bounds_and_ordinary_ones_pass(tmp_path, monkeypatch):
    """Four members with 600 KB PAX headers each (each within the bound of a member) declare 2.4 MB: over 20 times
    a 10 KB archive. PAX and GNU long names of ordinary size unpack."""
    monkeypatch.setattr(archive, 'MIN_EXPANSION_BYTES', 1 << 20)
    path = tmp_path / 'headers.tgz'
    with tarfile.open(path, 'w:gz', format=tarfile.PAX_FORMAT) as tar:
        for index in range(4):
            info = tarfile.TarInfo(f'{index}.png')
            info.pax_headers = {'comment': 'a' * 600_000}
            tar.addfile(info, io.BytesIO(b''))
    assert os.path.getsize(path) < 20_000
    with pytest.raises(ArchiveError, match=r'its files and headers would take more than 1 MB, 20 times the archive'):
        check_archive(str(path), 'headers.tgz')
    long_name = 'HR/' + 'n' * 150 + '.png'
    for format_ in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        path = tmp_path / f'long_names_{format_}.tgz'
        with tarfile.open(path, 'w:gz', format=format_) as tar:
            info = tarfile.TarInfo(long_name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b'png'))
        assert files_below(extract_archive(str(path), str(tmp_path / f'out_{format_}'))) == [long_name]


def test_an_archive_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    small = tar_gz(tmp_path / 'sets.tgz', {'HR/0.png': os.urandom(4000), 'LR/0.png': os.urandom(1000)})
    monkeypatch.setattr(archive, 'free_space', lambda path: 3000)
    with pytest.raises(ArchiveError, match=r'needs [0-9.]+ MB to unpack, [0-9.]+ MB are free beside ') as err:
        extract_archive(small, str(tmp_path / 'out'), 'sets.tgz')
    assert '\n' not in str(err.value) and sorted(os.listdir(tmp_path)) == ['sets.tgz']
    monkeypatch.undo()
    assert files_below(extract_archive(small, str(tmp_path / 'out'))) == ['HR/0.png', 'LR/0.png']
