"""test_enhance_single_unalign.py: outputs, folders, failures; end to end with a released-format SPARNetHD."""
import json
import logging
import os
import re
import threading

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from api import photo_restorer
from helpers.commands import HD_FLAGS, run_in_process, run_script, run_whole_photos
from inference import whole_photos
from inference.whole_photos import input_jobs, read_and_search
from metrics.psnr_ssim import psnr
from options import pipelines
from utils.cli import UserError
from weights.released import RELEASED_MODELS


class IdentityEnhancer:
    """Stands in for the network: returns the aligned faces unchanged, recording the batches."""

    def __init__(self):
        self.batches = []

    def __call__(self, faces):
        self.batches.append(len(faces))
        return faces.copy()


@pytest.fixture
def enhancer(monkeypatch):
    identity = IdentityEnhancer()
    monkeypatch.setattr(pipelines, 'face_enhancer', lambda opt: identity)
    return identity


@pytest.fixture
def run_main(released_checkpoint):
    """main() with the original flags and weights of the released format (read for their shapes only)."""
    weights = released_checkpoint('sparnethd_attn2d')

    def run(photo_path, results_dir, *extra):
        return run_whole_photos([*HD_FLAGS, '--pretrain_model_path', weights, '--detector', 'hog',
                            '--test_img_path', str(photo_path), '--results_dir', str(results_dir), *extra])
    return run


def read(path):
    return np.asarray(Image.open(path).convert('RGB'))


def files_below(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob('*') if path.is_file())


@pytest.mark.slow
def test_single_photo_png_outputs_at_test_upscale(tmp_path, enhancer, run_main):
    photo = data.astronaut()
    Image.fromarray(photo).save(tmp_path / 'astronaut.png')
    out = tmp_path / 'out'
    assert run_main(tmp_path / 'astronaut.png', out, '--ext', 'png', '--test_upscale', '2') == 0
    assert files_below(out) == ['HQ/000.png', 'LQ_faces/000.png', 'hq_final.png']
    np.testing.assert_array_equal(read(out / 'HQ' / '000.png'), read(out / 'LQ_faces' / '000.png'))
    final = read(out / 'hq_final.png')
    assert final.shape == (1024, 1024, 3)
    assert psnr(final, cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_CUBIC), 'rgb') > 45


@pytest.mark.slow
def test_folder_goes_on_past_photos_without_faces_and_broken_files(tmp_path, enhancer, run_main, capsys, caplog):
    photos = tmp_path / 'photos'
    (photos / 'sub').mkdir(parents=True)
    astronaut = data.astronaut()
    Image.fromarray(astronaut).save(photos / 'astronaut.jpg', quality=95)
    pair = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    Image.fromarray(np.dstack([pair, np.full(pair.shape[:2], 255, np.uint8)])).save(photos / 'sub' / 'pair.png')
    Image.fromarray(data.chelsea()).save(photos / 'cat.jpg')
    (photos / 'broken.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    out = tmp_path / 'out'
    with caplog.at_level(logging.INFO):
        assert run_main(photos, out, '--face_batch_size', '1') == 1  # the broken file failed
    assert re.search(r'astronaut.jpg: 1 face\(s\) -> .* \(detection [0-9.]+ s, scale 2.00 whole\)', caplog.text)
    assert files_below(out) == ['astronaut/HQ/000.jpg', 'astronaut/LQ_faces/000.jpg', 'astronaut/hq_final.jpg',
                                'sub/pair/HQ/000.jpg', 'sub/pair/HQ/001.jpg', 'sub/pair/LQ_faces/000.jpg',
                                'sub/pair/LQ_faces/001.jpg', 'sub/pair/hq_final.jpg']
    assert enhancer.batches == [1, 1, 1]
    assert read(out / 'sub' / 'pair' / 'hq_final.jpg').shape == (512, 1024, 3)
    printed = capsys.readouterr().out
    assert '2 photo(s) enhanced (3 faces), 1 without a face, 1 failed' in printed
    without, failed = printed.split('without a face:')[1].split('failed:')
    assert 'cat.jpg' in without and 'broken.jpg' in failed


def test_photos_over_max_pixels_fail_alone_before_being_read(tmp_path, enhancer, run_main, capsys, caplog,
                                                             monkeypatch):
    """The limit counts the photo after --test_upscale, from its header: the photo is never decoded."""
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.fromarray(data.astronaut()).resize((1024, 1024)).save(photos / 'big.png')
    Image.fromarray(data.astronaut()).save(photos / 'small.png')  # 512x512: 1.05 megapixels at 2x
    decoded = []
    real_read = photo_restorer.read_rgb_array
    monkeypatch.setattr(photo_restorer, 'read_rgb_array', lambda path: decoded.append(os.path.basename(path))
                        or real_read(path))
    assert run_main(photos, tmp_path / 'out', '--test_upscale', '2', '--max_pixels', '1500000') == 1
    printed = capsys.readouterr()
    assert decoded == ['small.png'] and (tmp_path / 'out' / 'small' / 'hq_final.jpg').is_file()
    assert (f'{photos / "big.png"}: 1024x1024 enlarged 2x is 4.2 megapixels, more than --max_pixels 1500000; raise '
            '--max_pixels if this machine has the memory, or lower --test_upscale') in caplog.text
    assert '1 photo(s) enhanced (1 faces), 0 without a face, 1 failed' in printed.out


@pytest.mark.slow
def test_the_next_photo_is_searched_while_the_current_one_is_enhanced(tmp_path, run_main, monkeypatch):
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name in ('a.png', 'b.png'):
        Image.fromarray(data.astronaut()).save(photos / name)
    searched = {name: threading.Event() for name in ('a.png', 'b.png')}
    search = read_and_search

    def recording_search(detector, photo_path, *limits):
        found = search(detector, photo_path, *limits)
        searched[os.path.basename(photo_path)].set()
        return found

    def enhance(faces):
        overlapped.append(searched['b.png'].wait(timeout=60))
        return faces.copy()
    overlapped = []
    monkeypatch.setattr(whole_photos, 'read_and_search', recording_search)
    monkeypatch.setattr(pipelines, 'face_enhancer', lambda opt: enhance)
    assert run_main(photos, tmp_path / 'out') == 0
    assert overlapped == [True, True]  # b.png was searched while a.png's face was enhanced


@pytest.mark.slow
def test_folder_where_no_photo_has_a_face_fails(tmp_path, enhancer, run_main):
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.fromarray(data.chelsea()).save(photos / 'cat.jpg')
    assert run_main(photos, tmp_path / 'out') == 1
    assert not (tmp_path / 'out').exists()


def test_results_folders_of_photos_sharing_a_name(tmp_path):
    (tmp_path / 'x.y').mkdir()
    for name in ('a.jpg', 'a.png', 'b.png', 'x.y/c.png'):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name)
    jobs, videos = input_jobs(str(tmp_path), 'out')
    assert videos == []
    assert [folder for _, folder in jobs] == ['out/a_jpg', 'out/a_png', 'out/b', 'out/x.y/c']
    assert [photo for photo, _ in jobs][-1] == str(tmp_path / 'x.y' / 'c.png')


@pytest.mark.parametrize('make, message', [
    (lambda path: Image.fromarray(data.chelsea()).save(path), 'no face found of at least --min_face_size 40 px'),
    (lambda path: path.write_bytes(b'\xff\xd8 not a jpeg'), 'not a readable image'),
    (lambda path: None, 'no such file or folder'),
], ids=['no_face', 'unreadable', 'missing'])
@pytest.mark.slow
def test_single_photo_problems_raise_one_clear_error(tmp_path, enhancer, run_main, make, message):
    make(tmp_path / 'photo.jpg')
    with pytest.raises(UserError, match=message) as error:
        run_main(tmp_path / 'photo.jpg', tmp_path / 'out')
    assert str(tmp_path / 'photo.jpg') in str(error.value) and '\n' not in str(error.value)
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_no_face_exits_non_zero_with_one_line(tmp_path, released_checkpoint):
    Image.fromarray(data.chelsea()).save(tmp_path / 'cat.jpg')
    proc = run_in_process(run_whole_photos, [*HD_FLAGS, '--detector', 'hog', '--pretrain_model_path',
                                             released_checkpoint('sparnethd_attn2d'), '--test_img_path',
                                             str(tmp_path / 'cat.jpg'), '--results_dir', str(tmp_path / 'out')],
                          'test_enhance_single_unalign.py')
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'cat.jpg'}: no face found")


@pytest.mark.slow
def test_end_to_end_with_the_default_model_downloaded(tmp_path, released_checkpoint, weights_server):
    """`test_enhance_single_unalign.py --test_img_path photo.jpg`: the default model (random weights in the
    released format) comes from the local server into the cache, then the full SPARNetHD runs on the CPU."""
    weights_server.add_released('sparnethd_attn2d', released_checkpoint('sparnethd_attn2d'))
    photo = data.astronaut()
    Image.fromarray(photo).save(tmp_path / 'photo.jpg', quality=95)
    out = tmp_path / 'out'
    proc = run_script('test_enhance_single_unalign.py', '--test_img_path', str(tmp_path / 'photo.jpg'),
                      '--results_dir', str(out))
    assert proc.returncode == 0, proc.stderr
    file_name = RELEASED_MODELS['sparnethd_attn2d'].file_name
    assert weights_server.requests == [f'/{file_name}']
    assert os.listdir(weights_server.cache) == [file_name]
    assert ('flags of the released sparnethd_attn2d: --model sparnethd --res_depth 10 --att_name spar --Gnorm in '
            '--bottleneck_size 4 --load_size 512\n') in proc.stderr
    assert files_below(out) == ['HQ/000.jpg', 'LQ_faces/000.jpg', 'hq_final.jpg']
    lq, hq, final = read(out / 'LQ_faces' / '000.jpg'), read(out / 'HQ' / '000.jpg'), read(out / 'hq_final.jpg')
    assert lq.shape == hq.shape == (512, 512, 3) and final.shape == photo.shape
    assert psnr(hq, lq, 'rgb') < 20  # the random network changed the face
    change = cv2.blur(np.abs(final.astype(np.float32) - read(tmp_path / 'photo.jpg')).mean(axis=2), (9, 9))
    rows, cols = np.nonzero(change > 20)
    assert change[126, 222] > 20  # the face's centre
    assert rows.max() < 280 and 100 < cols.min() and cols.max() < 350  # around the face only
    assert psnr(final[300:], photo[300:], 'rgb') > 30


@pytest.mark.slow
def test_folder_resumes_with_skip_existing_and_reports_each_photo(tmp_path, enhancer, run_main, capsys):
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / 'astronaut.jpg', quality=95)
    Image.fromarray(data.chelsea()).save(photos / 'cat.jpg')
    (photos / 'zz_broken.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    out, report = tmp_path / 'out', tmp_path / 'photos.jsonl'
    assert run_main(photos, out, '--report', str(report), '--skip_existing') == 1  # the broken file
    final = out / 'astronaut' / 'hq_final.jpg'
    first_write = (final.stat().st_ino, final.stat().st_mtime_ns)
    assert run_main(photos, out, '--report', str(report), '--skip_existing') == 1
    assert (final.stat().st_ino, final.stat().st_mtime_ns) == first_write and enhancer.batches == [1]
    assert '0 photo(s) enhanced (0 faces), 1 without a face, 1 failed, 1 skipped (results exist)' in \
        capsys.readouterr().out
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    statuses = [(os.path.basename(line['path']), line['status']) for line in lines]
    assert statuses == [('astronaut.jpg', 'done'), ('cat.jpg', 'no_face'), ('zz_broken.jpg', 'failed'),
                        ('astronaut.jpg', 'skipped'), ('cat.jpg', 'no_face'), ('zz_broken.jpg', 'failed')]
    assert lines[0]['output'] == str(final) and 'not a readable image' in lines[2]['error']


@pytest.mark.slow
def test_rerun_replaces_the_earlier_results_and_nothing_else(tmp_path, enhancer, run_main, caplog):
    caplog.set_level('INFO')
    astronaut = data.astronaut()
    Image.fromarray(np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)).save(tmp_path / 'photo.png')
    out = tmp_path / 'out'
    assert run_main(tmp_path / 'photo.png', out, '--ext', 'png') == 0
    assert files_below(out) == ['HQ/000.png', 'HQ/001.png', 'LQ_faces/000.png', 'LQ_faces/001.png', 'hq_final.png']
    (out / 'HQ' / 'notes.txt').write_text('mine')
    (out / 'HQ' / '0001.jpg').write_bytes(b'mine too: not a name this script writes')
    for leftover in ('HQ/002.png.4242-0badcafe.part', 'hq_final.jpg.4242-0badcafe.part'):  # a run killed mid-write
        (out / leftover).write_bytes(b'half a file')
    Image.fromarray(astronaut).save(tmp_path / 'photo.png')  # now one face
    assert run_main(tmp_path / 'photo.png', out) == 0
    assert files_below(out) == ['HQ/000.jpg', 'HQ/0001.jpg', 'HQ/notes.txt', 'LQ_faces/000.jpg', 'hq_final.jpg']
    assert 'removed 2 temporary file(s) an interrupted run left' in caplog.text
    assert f'{out}: removed the 5 result files of an earlier run' in caplog.text


@pytest.mark.slow
def test_results_folder_checked_against_the_photos(tmp_path, enhancer, run_main):
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / 'astronaut.jpg')
    with pytest.raises(UserError, match=f'--results_dir {photos} is the same folder as --test_img_path'):
        run_main(photos, photos)
    with pytest.raises(UserError, match='--results_dir .* is inside --test_img_path'):
        run_main(photos, photos / 'hq')
    (tmp_path / 'file').write_text('x')
    with pytest.raises(UserError, match='is a file, not a folder'):
        run_main(photos / 'astronaut.jpg', tmp_path / 'file')
    (photos / 'HQ').mkdir()
    os.replace(photos / 'astronaut.jpg', photos / 'HQ' / '000.jpg')
    with pytest.raises(UserError, match='is one of the files its own results replace in'):
        run_main(photos / 'HQ' / '000.jpg', photos)
    assert files_below(photos) == ['HQ/000.jpg']
    assert run_main(photos / 'HQ' / '000.jpg', tmp_path / 'again') == 0  # a result enhanced into another folder


@pytest.mark.parametrize('kind, message', [
    ('nan', 'tensor encoder.0.conv2d.weight holds NaN or infinite values'),
    ('overflow', "astronaut.png: the network's output holds NaN or infinite values"),
])
@pytest.mark.slow
def test_non_finite_weights_or_outputs_paste_nothing(tmp_path, broken_checkpoint, kind, message):
    """Without the checks, NaN outputs were pasted over the face as a black square (exit 0)."""
    Image.fromarray(data.astronaut()).save(tmp_path / 'astronaut.png')
    with pytest.raises(UserError, match=message):
        run_whole_photos(['--gpus', '0', '--model', 'sparnet', '--load_size', '512', '--detector', 'hog',
                     '--pretrain_model_path', broken_checkpoint('sparnet_light_attn3d', kind),
                     '--test_img_path', str(tmp_path / 'astronaut.png'), '--results_dir', str(tmp_path / 'out')])
    assert not (tmp_path / 'out').exists()
