"""scripts/reproduce.py end to end on a small archive in the release's layout and stand-in weights served on
127.0.0.1; safe unpacking of archives; finding the test sets by name; flags against the released figures."""
import dataclasses
import io
import json
import os
import shlex
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from archs.generator_spec import GeneratorSpec, random_generator
from helpers.commands import ROOT, run_script
from helpers.faces import face_images
from metrics.eval_sets import TEST_SETS, EvalSetNotFound, discover
from metrics.fid import FID_WEIGHTS_NAME
from scripts import download_weights, evaluate, reproduce
from utils.cli import UserError
from weights.archive import ArchiveError, check_archive, extract_archive
from weights.released import RELEASED_MODELS, TEST_SETS_ARCHIVE

HELEN_FACES, CELEBA_FACES = 3, 2  # FID needs 2 images a side
E2E_MODELS = ('sparnet_light_attn3d', 'sparnethd_attn2d')
# SPARNetHD takes 5-10 s a 512x512 face on 2 cores: its row runs a small SPARNetHD (one residual block, 64 px, at
# most 128 channels) that takes the released network's place in the table, with the same code path from download
# to table.
SMALL_HD_SPEC, SMALL_HD_SIZE = GeneratorSpec('sparnethd', 1, 'spar', 'in'), 64


def png_bytes(image, fmt='PNG'):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt)
    return buffer.getvalue()


def release_layout():
    """{path in the archive: bytes}: the release's assumed layout, with a few astronaut faces."""
    files = {}
    for index, hr in enumerate(face_images(HELEN_FACES, seed=1, size=(128, 128))):
        lr = np.asarray(Image.fromarray(hr).resize((16, 16), Image.BICUBIC))
        files[f'test_dirs/Helen_test_DIC/LR/{index:03d}.png'] = png_bytes(lr)
        files[f'test_dirs/Helen_test_DIC/HR/{index:03d}.png'] = png_bytes(hr)
    for index, face in enumerate(face_images(CELEBA_FACES + 1, seed=2, size=(512, 512))):
        degraded = np.asarray(Image.fromarray(face).filter(ImageFilter.GaussianBlur(3)))
        if index < CELEBA_FACES:
            files[f'test_dirs/CelebA-TestN/{index:04d}.jpg'] = png_bytes(degraded, 'JPEG')
        files[f'test_dirs/CelebAHQ-Test-HR/hq_{index:04d}.png'] = png_bytes(face)  # unpaired, as CelebA-HQ
    return files


def write_tgz(path, files=(), links=()):
    """A gzip tar of symbolic `links` ({name: target}) then `files` ({name: bytes})."""
    with tarfile.open(path, 'w:gz') as tar:
        for name, target in dict(links).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for name, data in dict(files).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def serve_release(server, released_checkpoint, inception_file, tmp_path, monkeypatch):
    """The archive, the FID Inception and stand-in weights of E2E_MODELS served; sparnethd_attn2d made small."""
    small_hd = dataclasses.replace(RELEASED_MODELS['sparnethd_attn2d'], spec=SMALL_HD_SPEC, load_size=SMALL_HD_SIZE)
    monkeypatch.setitem(RELEASED_MODELS, 'sparnethd_attn2d', small_hd)
    torch.save(random_generator(SMALL_HD_SPEC).state_dict(), tmp_path / 'small_hd.pth')
    server.add_released('sparnethd_attn2d', str(tmp_path / 'small_hd.pth'))
    server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    server.add(str(inception_file), FID_WEIGHTS_NAME)
    server.add(write_tgz(tmp_path / 'test_dirs.tgz', release_layout()), TEST_SETS_ARCHIVE.file_name)


def read_json(path):
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


@pytest.mark.slow
def test_reproduce_end_to_end_then_resumes(weights_server, released_checkpoint, inception_file, tmp_path,
                                           monkeypatch, capsys, narrow_sparnethd):
    serve_release(weights_server, released_checkpoint, inception_file, tmp_path, monkeypatch)
    out = tmp_path / 'out'
    calls = []
    real_run_test_py = reproduce.run_test_py
    monkeypatch.setattr(reproduce, 'run_test_py', lambda argv: calls.append(argv) or real_run_test_py(argv))
    argv = ['--models', *E2E_MODELS, '--gpus', '0', '--weights_dir', weights_server.cache, '--out_dir', str(out)]
    assert reproduce.main(argv) == 1  # random weights: every row is flagged
    printed = capsys.readouterr().out
    assert len(calls) == 2
    assert sorted(os.listdir(weights_server.cache)) == sorted(
        [*(RELEASED_MODELS[name].file_name for name in E2E_MODELS), FID_WEIGHTS_NAME, 'test_dirs.tgz', 'test_dirs'])

    table = read_json(out / 'table.json')
    assert table['tolerances'] == {'psnr': 0.05, 'ssim': 0.002, 'fid': 0.5}
    rows = {row['model']: row for row in table['rows']}
    assert list(rows) == list(E2E_MODELS)
    unpacked = os.path.join(weights_server.cache, 'test_dirs', 'test_dirs')
    helen_hr = os.path.join(unpacked, 'Helen_test_DIC', 'HR')
    for name in ('sparnet_light_attn3d',):
        row = rows[name]
        assert row['folders'] == {'inputs': os.path.join(unpacked, 'Helen_test_DIC', 'LR'), 'ground_truth': helen_hr,
                                  'outputs': str(out / 'outputs' / name)}
        assert row['images'] == {'inputs': HELEN_FACES, 'expected': 50, 'outputs': HELEN_FACES,
                                 'ground_truth': HELEN_FACES, 'not_scored': 0}
        assert row['complete'] and row['precision'] == 'fp32' and row['device'].startswith('cpu, ')
        json_path = tmp_path / f'{name}_evaluate.json'
        assert evaluate.main(['--results_dir', row['folders']['outputs'], '--gt_dir', helen_hr, '--metrics',
                              'psnr,ssim,id', '--save_json', str(json_path),
                              '--save_csv', str(tmp_path / 'x.csv')]) == 0
        expected = read_json(json_path)
        assert row['this_run'] == {'psnr': expected['psnr'], 'ssim': expected['ssim']}
        assert row['identity']['id_cos'] == expected['id_cos'] and row['identity']['pairs'] > 0
        assert row['difference_from_released']['psnr'] == pytest.approx(expected['psnr'] - row['released']['psnr'])
        assert row['flagged'] and 'PSNR -' in row['flag'] and '(tolerance 0.05)' in row['flag']
        assert 'truncated to uint8' in row['protocol']
    assert rows['sparnet_light_attn3d']['paper'] is None

    hd = rows['sparnethd_attn2d']
    celeba_hr = os.path.join(unpacked, 'CelebAHQ-Test-HR')
    assert hd['folders']['inputs'] == os.path.join(unpacked, 'CelebA-TestN')
    assert hd['folders']['ground_truth'] == celeba_hr
    assert hd['fid_images'] == [CELEBA_FACES, CELEBA_FACES + 1] and hd['complete']
    assert hd['identity']['id_cos'] is None and hd['identity']['pairs'] == 0  # no ground truth of the same name
    json_path = tmp_path / 'hd_evaluate.json'
    assert evaluate.main(['--results_dir', hd['folders']['outputs'], '--gt_dir', celeba_hr, '--metrics', 'fid',
                          '--gpus', '0', '--inception_weights', str(inception_file),
                          '--save_json', str(json_path)]) == 0
    assert hd['this_run'] == {'fid': read_json(json_path)['fid']}
    assert hd['released'] == {'fid': 26.72} and hd['paper'] == {'fid': 27.16}

    markdown = (out / 'table.md').read_text(encoding='utf-8')
    assert markdown.strip() in printed
    lines = markdown.splitlines()
    assert lines[0] == ('| model | test set | metric | paper | released (original README) | this run | identity | '
                        'device | precision | seconds | vs released |')
    light = rows['sparnet_light_attn3d']
    assert (f"| SPARNet-Light-Attn3D | Helen | PSNR / SSIM | – | 27.39 / 0.8189 | {light['this_run']['psnr']:.2f} / "
            f"{light['this_run']['ssim']:.4f} | {light['identity']['id_cos']:.4f} | {light['device']} | fp32 | "
            f"{light['seconds']:.1f} | **flagged**: PSNR ") in markdown
    assert f"| SPARNetHD-Attn2D | CelebA-TestN | FID | 27.16 | 26.72 | {hd['this_run']['fid']:.2f} | – |" in markdown
    assert 'Flagged: a score further from the released figure than its tolerance (PSNR 0.05 dB, SSIM 0.002, FID 0.5)' \
        in markdown

    # A second run computes nothing: the finished rows are kept, the table is written again from them.
    row_times = {name: os.path.getmtime(out / 'rows' / f'{name}.json') for name in E2E_MODELS}
    requests = list(weights_server.requests)
    assert reproduce.main(argv) == 1
    assert len(calls) == 2 and weights_server.requests == requests
    assert {name: os.path.getmtime(out / 'rows' / f'{name}.json') for name in E2E_MODELS} == row_times
    assert (out / 'table.md').read_text(encoding='utf-8') == markdown
    assert read_json(out / 'table.json') == table

    # --recompute computes the asked rows again, here from the unpacked folder given by hand (no download).
    recomputed = []
    monkeypatch.setattr(reproduce, 'compute_row', lambda model, folders, *args: recomputed.append(
        (model.name, folders.inputs)) or read_json(out / 'rows' / f'{model.name}.json'))
    assert reproduce.main(['--models', 'sparnethd_attn2d', '--gpus', '0', '--weights_dir', weights_server.cache,
                           '--out_dir', str(out), '--recompute', '--test_dirs', unpacked]) == 1
    assert recomputed == [('sparnethd_attn2d', hd['folders']['inputs'])] and weights_server.requests == requests
    assert [row['model'] for row in read_json(out / 'table.json')['rows']] == ['sparnethd_attn2d']

def one_line(err):
    message = str(err.value)
    assert '\n' not in message
    return message


@pytest.mark.slow
def test_missing_archive_is_one_line_and_exit_2(weights_server, tmp_path):
    weights_server.mode = 'missing'
    result = run_script('-m', 'scripts.reproduce', '--models', 'sparnet', '--gpus', '0',
                        '--out_dir', str(tmp_path / 'out'))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: test_dirs: could not download {weights_server.url}/test_dirs.tgz (HTTP 404')
    assert 'Traceback' not in result.stderr and not os.path.exists(tmp_path / 'out')


def test_missing_model_is_one_line(weights_server, tmp_path):
    weights_server.add(write_tgz(tmp_path / 'test_dirs.tgz', release_layout()), TEST_SETS_ARCHIVE.file_name)
    offline = str(tmp_path / 'offline')  # the archive fetched for a machine without internet
    assert download_weights.main(['test_dirs', '--dir', offline]) == 0
    with pytest.raises(UserError) as err:
        reproduce.main(['--models', 'sparnet_light_attn3d', '--gpus', '0', '--weights_dir', offline,
                        '--out_dir', str(tmp_path / 'out')])
    file_name = RELEASED_MODELS['sparnet_light_attn3d'].file_name
    assert one_line(err).startswith(f'sparnet_light_attn3d: could not download {weights_server.url}/{file_name} '
                                    '(HTTP 404 Not Found)')
    assert weights_server.requests == ['/test_dirs.tgz', f'/{file_name}']
    assert sorted(os.listdir(offline)) == ['test_dirs', 'test_dirs.tgz']  # unpacked beside the archive

MALICIOUS = {
    'dot-dot': ({'../x': b'escaped'}, {}, "the member '../x' would land outside the target folder"),
    'absolute': ({'{outside}/x': b'escaped'}, {}, "the member '{outside}/x' has an absolute path"),
    'symlink out': ({'ok.png': b'fine'}, {'link': '../outside'}, "the member 'link' is a link pointing outside"),
    'written through a link': ({'link/x': b'escaped'}, {'link': '.'}, "the member 'link/x' would be written through"),
}


@pytest.mark.parametrize('kind', sorted(MALICIOUS))
def test_malicious_archives_are_refused_and_write_nothing(tmp_path, kind):
    outside = tmp_path / 'outside'
    outside.mkdir()
    files, links, expected = MALICIOUS[kind]
    files = {name.format(outside=outside): data for name, data in files.items()}
    archive = write_tgz(tmp_path / 'evil.tgz', files, links)
    (tmp_path / 'cache').mkdir()
    target = tmp_path / 'cache' / 'test_dirs'
    before = sorted(p for p in tmp_path.rglob('*'))
    for action in (lambda: check_archive(archive, 'evil.tgz'),
                   lambda: extract_archive(archive, str(target), 'evil.tgz')):
        with pytest.raises(ArchiveError) as err:
            action()
        assert one_line(err).startswith(f'evil.tgz: refused: {expected.format(outside=outside)}')
        assert one_line(err).endswith('; nothing was extracted')
    assert sorted(p for p in tmp_path.rglob('*')) == before  # nothing outside, no target, no temporary folder


def test_malicious_download_is_refused_and_deleted(weights_server, tmp_path):
    weights_server.add(write_tgz(tmp_path / 'evil.tgz', {'test_dirs/x.png': b'x', '../x': b'escaped'}),
                       TEST_SETS_ARCHIVE.file_name)
    with pytest.raises(UserError) as err:
        reproduce.main(['--models', 'sparnet', '--gpus', '0', '--out_dir', str(tmp_path / 'out')])
    assert "test_dirs: the file downloaded from" in one_line(err)
    assert "was refused and deleted: test_dirs.tgz: refused: the member '../x' would land outside" in one_line(err)
    assert not os.path.exists(weights_server.cache) or os.listdir(weights_server.cache) == []


def test_a_safe_archive_is_unpacked_whole(tmp_path):
    archive = write_tgz(tmp_path / 'ok.tgz', {'a/b.png': b'b', 'c.png': b'c'}, {'a/link.png': 'b.png'})
    target = extract_archive(archive, str(tmp_path / 'target'))
    assert sorted(os.listdir(target)) == ['a', 'c.png']
    assert os.readlink(os.path.join(target, 'a', 'link.png')) == 'b.png'
    assert sorted(os.listdir(tmp_path)) == ['ok.tgz', 'target']  # the temporary folder was renamed
    (tmp_path / 'broken.tgz').write_bytes(open(archive, 'rb').read()[:-40])
    with pytest.raises(ArchiveError) as err:
        extract_archive(str(tmp_path / 'broken.tgz'), str(tmp_path / 'target2'), 'broken.tgz')
    assert one_line(err).startswith('broken.tgz: not a readable tar archive')
    assert sorted(os.listdir(tmp_path)) == ['broken.tgz', 'ok.tgz', 'target']


def make_tree(root, paths):
    for path in paths:
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        open(os.path.join(root, path), 'wb').close()
    return str(root)


@pytest.mark.parametrize('paths, helen, celeba', [
    (['test_dirs/Helen_test_DIC/LR/1.png', 'test_dirs/Helen_test_DIC/HR/1.png', 'test_dirs/CelebA-TestN/1.jpg',
      'test_dirs/CelebAHQ-Test-HR/2.png'],
     ('test_dirs/Helen_test_DIC/LR', 'test_dirs/Helen_test_DIC/HR'),
     ('test_dirs/CelebA-TestN', 'test_dirs/CelebAHQ-Test-HR')),
    (['helen_test_dic/lr/1.png', 'helen_test_dic/hr/1.png', 'celeba_testn/LQ/1.png', 'celeba_testn/HR/1.png'],
     ('helen_test_dic/lr', 'helen_test_dic/hr'), ('celeba_testn/LQ', 'celeba_testn/HR')),
    (['data/HELEN/LR/a/1.png', 'data/HELEN/HR/a/1.png', 'CelebA-TestN/1.png', 'CelebA-TestN-HR/1.png'],
     ('data/HELEN/LR', 'data/HELEN/HR'), ('CelebA-TestN', 'CelebA-TestN-HR')),
])
def test_test_sets_are_found_by_name(tmp_path, paths, helen, celeba):
    root = make_tree(tmp_path, paths)
    for name, expected in (('helen', helen), ('celeba_testn', celeba)):
        assert discover(TEST_SETS[name], root) == tuple(os.path.join(root, path) for path in expected)


def test_test_sets_not_found_say_what_was_found_and_which_flags(tmp_path):
    root = make_tree(tmp_path, ['test_dirs/Helen/LR/1.png', 'test_dirs/Helen/LR_up/1.png', 'test_dirs/misc/1.png'])
    with pytest.raises(EvalSetNotFound) as err:
        discover(TEST_SETS['helen'], root)
    assert one_line(err) == (
        f'could not find the Helen test set (inputs like Helen_test_DIC/LR, ground truth like Helen_test_DIC/HR) in '
        f'{root}; found: test_dirs/, test_dirs/Helen/, test_dirs/misc/, test_dirs/Helen/LR/, test_dirs/Helen/LR_up/. '
        'Give the unpacked test sets with --test_dirs DIR, or this set\'s folders with --helen_lr DIR --helen_hr DIR')
    with pytest.raises(EvalSetNotFound, match='no such folder; give the unpacked test sets with --test_dirs DIR'):
        discover(TEST_SETS['helen'], str(tmp_path / 'absent'))


def test_print_folders_gives_test_sh_its_folders(tmp_path, capsys):
    root = make_tree(tmp_path / 'test dirs', ['Helen_test_DIC/LR/1.png', 'Helen_test_DIC/HR/1.png',
                                               'CelebA-TestN/1.png', 'CelebAHQ-Test-HR/1.png'])
    by_hand = make_tree(tmp_path / 'mine', ['1.png'])
    assert reproduce.main(['--print_folders', '--test_dirs', root, '--celeba_testn_hr', by_hand]) == 0
    assigned = dict(line.split('=', 1) for line in capsys.readouterr().out.splitlines())
    assert {name: shlex.split(value)[0] for name, value in assigned.items()} == {
        'HELEN_LR': os.path.join(root, 'Helen_test_DIC', 'LR'), 'HELEN_HR': os.path.join(root, 'Helen_test_DIC', 'HR'),
        'CELEBA_TESTN': os.path.join(root, 'CelebA-TestN'), 'CELEBA_TESTN_HR': by_hand}
    with open(os.path.join(ROOT, 'test.sh'), encoding='utf-8') as handle:
        assert '-m scripts.reproduce --print_folders' in handle.read()


def test_rows_are_flagged_beyond_the_tolerances():
    published = RELEASED_MODELS['sparnet'].published
    assert reproduce.compare_with_released(published, {'psnr': 27.47, 'ssim': 0.8185}) == (
        pytest.approx({'psnr': 0.04, 'ssim': -0.0016}), '')
    differences, flag = reproduce.compare_with_released(published, {'psnr': 27.37, 'ssim': 0.8230})
    assert differences == pytest.approx({'psnr': -0.06, 'ssim': 0.0029})
    assert flag == 'PSNR -0.06 dB (tolerance 0.05); SSIM +0.0029 (tolerance 0.002)'
    hd = RELEASED_MODELS['sparnethd_attn3d'].published
    assert reproduce.compare_with_released(hd, {'fid': 28.0}) == (pytest.approx({'fid': -0.42}), '')
    assert reproduce.compare_with_released(hd, {'fid': None}) == ({}, 'FID not measured')
