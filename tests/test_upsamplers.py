"""The background upsampler (--bg_upsampler): Real-ESRGAN stand-ins downloaded from the local server, loaded by
spandrel, run in tiles (against the whole photo at once and a hand-made reference), a photo at 2x end to end, and
the bad inputs refused in one line before any work."""
import os
import re

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from archs.generator_spec import GeneratorSpec, random_generator
from helpers.commands import ROOT, run_in_process, run_whole_photos
from helpers.other_models import realesrgan_shapes
from options import pipelines
from upsamplers.background import TILE_OVERLAP, BackgroundUpsampler
from upsamplers.tiles import tile_spans
from weights.download import DownloadError, url_cache_path
from weights.other_models import OTHER_MODELS, markdown_table, resolve_other
from weights.spandrel_file import BACKGROUND, load_spandrel

PHOTO = data.astronaut()


def reference(path, photo, upscale):
    """The photo enlarged by spandrel's network in one piece, brought down to `upscale` by a float area resize."""
    descriptor = load_spandrel(path, path, BACKGROUND)
    with torch.no_grad():
        out = descriptor(torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255)[0].permute(1, 2, 0).numpy()
    height, width = photo.shape[:2]
    out = cv2.resize(out, (width * upscale, height * upscale), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def level_difference(a, b):
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_standin_has_the_released_layout_and_spandrel_reads_its_scale(realesrgan_standin):
    for scale in (2, 4):
        state = torch.load(realesrgan_standin(scale), weights_only=True)
        assert list(state) == ['params_ema']
        assert {key: tuple(value.shape) for key, value in state['params_ema'].items()} == \
            realesrgan_shapes(scale, num_block=1, num_feat=16)
    assert realesrgan_shapes(2)['conv_first.weight'] == (64, 12, 3, 3)  # x2plus reads the photo pixel-unshuffled
    assert len(realesrgan_shapes(4)) == 2 * (1 + 23 * 15 + 5)  # RRDBNet: 23 blocks of 3 x 5 convs, 6 more


@pytest.mark.parametrize('name, scale', [('realesrgan_x2plus', 2), ('realesrgan_x4plus', 4)])
def test_download_checks_and_loads_through_spandrel(weights_server, realesrgan_standin, name, scale):
    model = OTHER_MODELS[name]
    weights_server.add(realesrgan_standin(scale), model.file_name)
    path, found = resolve_other(name, BACKGROUND)
    assert found is model and path == f'{weights_server.cache}/{model.file_name}'
    assert weights_server.requests == [f'/{model.file_name}']
    assert resolve_other(model.url, BACKGROUND)[0] == path and len(weights_server.requests) == 1  # cached
    upsampler = named_upsampler(name, scale)
    assert (upsampler.descriptor.architecture.id, upsampler.descriptor.scale) == ('ESRGAN', scale)


def test_urls_are_fetched_from_where_they_point_each_into_a_folder_of_its_own(weights_server, realesrgan_standin):
    """As --pretrain_model_path's URLs: a URL ending in a table file's name is that host's file, not the release's,
    and two URLs ending in one file name are two files."""
    name = OTHER_MODELS['realesrgan_x4plus'].file_name
    weights_server.add(realesrgan_standin(4), f'a/{name}')
    weights_server.add(realesrgan_standin(2), f'b/{name}')
    first, second = (f'{weights_server.url}/{folder}/{name}' for folder in 'ab')
    found = [resolve_other(url, BACKGROUND) for url in (first, second, first)]
    assert found == [(url_cache_path(first), None), (url_cache_path(second), None), (url_cache_path(first), None)]
    assert weights_server.requests == [f'/a/{name}', f'/b/{name}']  # the third from the cache
    assert not os.path.exists(os.path.join(weights_server.cache, name))


def test_download_that_spandrel_cannot_load_is_refused(weights_server, tmp_path):
    torch.save({'params_ema': {'conv.weight': torch.zeros(3, 3, 3, 3)}}, tmp_path / 'bogus.pth')
    weights_server.add(str(tmp_path / 'bogus.pth'), 'RealESRGAN_x4plus.pth')
    with pytest.raises(DownloadError, match='was refused and deleted: .*recognises no architecture'):
        resolve_other('realesrgan_x4plus', BACKGROUND)
    assert not (tmp_path / 'cache' / 'RealESRGAN_x4plus.pth').exists()


def named_upsampler(source, upscale, tile=0, precision='fp32'):
    return BackgroundUpsampler.named(source, upscale, tile, 'cpu', precision)


@pytest.mark.parametrize('scale, upscale', [(2, 2), (4, 4), (4, 2), (4, 1)])
def test_tiles_equal_the_whole_photo_and_the_reference(realesrgan_standin, scale, upscale, one_torch_thread):
    path = realesrgan_standin(scale)
    photo = PHOTO[180:230, 150:211]  # 50 x 61: tiles of uneven sizes, edges that are no multiple of 4
    whole = named_upsampler(path, upscale)(photo)
    assert whole.shape == (50 * upscale, 61 * upscale, 3)
    assert level_difference(whole, reference(path, photo, upscale)) <= 1
    tiled = named_upsampler(path, upscale, tile=28)(photo)
    assert level_difference(tiled, whole) <= 1
    assert np.abs(whole.astype(int) - cv2.resize(photo, whole.shape[1::-1], interpolation=cv2.INTER_CUBIC)).mean() > 5


def test_tile_spans_cover_each_pixel_once_on_the_size_step():
    spans = tile_spans(91, 24, TILE_OVERLAP, multiple=4)
    assert [(span.start, span.end) for span in spans] == [(0, 24), (24, 48), (48, 72), (72, 91)]
    assert all(span.read_start % 4 == 0 and (span.read_end % 4 == 0 or span.read_end == 91) for span in spans)
    assert [(span.read_start, span.read_end) for span in spans] == [(0, 56), (0, 80), (16, 91), (40, 91)]
    assert [(span.start, span.end) for span in tile_spans(10, 0, 8)] == [(0, 10)]


@pytest.mark.slow
def test_photo_at_2x_with_the_background_from_the_model_and_the_faces_pasted(
        tmp_path, weights_server, realesrgan_standin, released_checkpoint, monkeypatch, one_torch_thread):
    weights_server.add(realesrgan_standin(2), 'RealESRGAN_x2plus.pth')
    monkeypatch.setattr(pipelines, 'face_enhancer', lambda opt: lambda faces: faces.copy())
    photo = PHOTO[:320, 96:416]  # the astronaut's face and shoulders
    Image.fromarray(photo).save(tmp_path / 'photo.png')
    out = tmp_path / 'out'
    proc = run_in_process(run_whole_photos, [
        '--gpus', '0', '--pretrain_model_path', released_checkpoint('sparnet_light_attn3d'), '--load_size', '512',
        '--detector', 'hog', '--test_img_path', str(tmp_path / 'photo.png'), '--results_dir', str(out),
        '--ext', 'png', '--test_upscale', '2', '--bg_upsampler', 'realesrgan_x2plus', '--bg_tile', '128'],
        'test_enhance_single_unalign.py')
    assert proc.returncode == 0, proc.stderr
    assert 'background upsampler: realesrgan_x2plus, an ESRGAN model (x2 super-resolution), tiles of 128 px' in \
        proc.stderr
    final = np.asarray(Image.open(out / 'hq_final.png'))
    background = reference(f'{weights_server.cache}/RealESRGAN_x2plus.pth', photo, 2)
    bicubic = cv2.resize(photo, (640, 640), interpolation=cv2.INTER_CUBIC)
    assert final.shape == (640, 640, 3)
    assert level_difference(final[560:], background[560:]) <= 1  # below the face: the model's background
    face = (slice(200, 300), slice(208, 288))  # the face, pasted (unchanged by the stand-in enhancer)
    assert np.abs(final[face].astype(int) - bicubic[face]).mean() < 3
    assert np.abs(final[face].astype(int) - background[face]).mean() > 10


def bad_run(tmp_path, released_checkpoint, *flags):
    Image.fromarray(PHOTO).save(tmp_path / 'photo.png')
    return run_in_process(run_whole_photos, [
        '--gpus', '0', '--pretrain_model_path', released_checkpoint('sparnet_light_attn3d'), '--load_size', '512',
        '--detector', 'hog', '--test_img_path', str(tmp_path / 'photo.png'), '--results_dir', str(tmp_path / 'out'),
        *flags], 'test_enhance_single_unalign.py')


def not_a_model(folder):
    torch.save({'encoder.weight': torch.zeros(4, 3, 3, 3)}, folder / 'mystery.pth')
    return str(folder / 'mystery.pth')


def my_sparnet(folder):
    """A checkpoint of train.py (a small SPARNet)."""
    torch.save(random_generator(GeneratorSpec('sparnet', 0, 'spar', 'none', 64)).state_dict(), folder / 'my_run.pth')
    return str(folder / 'my_run.pth')


SPARNET_REFUSED = ('generator \\(the face network of this project\\), not a super-resolution model of whole photos; '
                   'give it to --pretrain_model_path or --face_model; --bg_upsampler takes a name \\(realesrgan_x2plus')


@pytest.mark.parametrize('flags, message', [
    (lambda tmp, standin: ['--bg_upsampler', my_sparnet(tmp)], f'my_run.pth: is a SPARNet {SPARNET_REFUSED}'),
    (lambda tmp, standin: ['--bg_upsampler', 'sparnethd_attn2d'],
     f'sparnethd_attn2d: is a SPARNetHD {SPARNET_REFUSED}'),
    (lambda tmp, standin: ['--bg_upsampler', not_a_model(tmp)],
     r'mystery.pth: spandrel \S+ recognises no architecture in this file \(keys encoder.weight\); --bg_upsampler '
     'takes a super-resolution model that spandrel supports'),
    (lambda tmp, standin: ['--bg_upsampler', 'gfpgan_v1.4'],
     'gfpgan_v1.4: is a face restorer, not a super-resolution model \\(give it to --face_model\\)'),
    (lambda tmp, standin: ['--bg_upsampler', 'realesrgan_x2plus', '--test_upscale', '4'],
     'realesrgan_x2plus: enlarges 2x, which cannot give --test_upscale 4 \\(it serves --test_upscale 1, 2\\)'),
    (lambda tmp, standin: ['--bg_upsampler', standin(4), '--test_upscale', '3'],
     'x4.pth: enlarges 4x, which cannot give --test_upscale 3 \\(it serves --test_upscale 1, 2, 4\\)'),
    (lambda tmp, standin: ['--bg_upsampler', str(tmp / 'nowhere.pth')],
     'nowhere.pth: no such model file; --bg_upsampler takes a name \\(realesrgan_x2plus, realesrgan_x4plus\\)'),
], ids=['sparnet_file', 'sparnet_name', 'unknown_to_spandrel', 'face_model', 'scale_of_a_name', 'scale_of_a_file',
        'missing'])
def test_bad_background_upsampler_is_one_line_before_any_work(tmp_path, released_checkpoint, realesrgan_standin,
                                                              weights_server, flags, message):
    proc = bad_run(tmp_path, released_checkpoint, *flags(tmp_path, realesrgan_standin))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith('error: ') and [line for line in lines if 'error' in line] == lines[-1:]
    assert re.search(message, lines[-1]), lines[-1]
    assert not (tmp_path / 'out').exists() and weights_server.requests == []


def test_the_documentation_holds_the_table_of_other_projects_models():
    with open(os.path.join(ROOT, 'docs', 'whole-photos.md'), encoding='utf-8') as handle:
        assert markdown_table() in handle.read()
