"""Other projects' face restorers in the whole-photo pipeline (--face_model): GFPGAN, RestoreFormer, CodeFormer
stand-ins in their released layouts, called as their projects call them; the licence flag; models in the wrong
role refused in one line before any work."""
import re

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from helpers.commands import run_in_process, run_whole_photos
from models.face_restorers import SpandrelFaceEnhancer
from options.pipelines import face_enhancer
from options.test_options import TestOptions
from weights.other_models import OTHER_MODELS
from weights.spandrel_file import FACE, load_spandrel
from weights.state_dict import WeightsError

PHOTO = data.astronaut()[:320, 96:416]  # the astronaut's face and shoulders


def run_photo(tmp_path, *flags):
    Image.fromarray(PHOTO).save(tmp_path / 'photo.png')
    return run_in_process(run_whole_photos, ['--gpus', '0', '--detector', 'hog', '--test_img_path',
                                             str(tmp_path / 'photo.png'), '--results_dir', str(tmp_path / 'out'),
                                             '--ext', 'png', *flags], 'test_enhance_single_unalign.py')


def read(path):
    return np.asarray(Image.open(path))


@pytest.mark.slow
def test_gfpgan_restores_the_faces_of_a_photo_without_sparnet(tmp_path, weights_server, face_restorer_standin,
                                                               one_torch_thread):
    """From a file (downloads by name are tested with Real-ESRGAN: tests/test_upsamplers.py)."""
    proc = run_photo(tmp_path, '--face_model', face_restorer_standin('gfpgan'))
    assert proc.returncode == 0, proc.stderr
    assert weights_server.requests == []  # no SPARNetHD fetched
    assert 'gfpgan.pth, a GFPGAN model (face restorer)' in proc.stderr
    out = tmp_path / 'out'
    lq, hq, final = read(out / 'LQ_faces' / '000.png'), read(out / 'HQ' / '000.png'), read(out / 'hq_final.png')
    from spandrel.architectures.GFPGAN import GFPGAN  # the reference: GFPGAN's own call, written out by hand
    net = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                 num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True).eval()
    net.load_state_dict(torch.load(face_restorer_standin('gfpgan'), weights_only=True)['params_ema'])
    with torch.no_grad():
        signed = torch.from_numpy(lq.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
        image = net(signed, return_rgb=False, randomize_noise=False)[0]
    expected = ((image[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    assert np.abs(hq.astype(int) - expected).max() <= 1
    assert np.abs(final[150:250, 120:200].astype(int) - PHOTO[150:250, 120:200]).mean() > 10  # the face changed
    assert np.abs(final[300:].astype(int) - PHOTO[300:]).max() <= 1  # below it the photo is untouched


@pytest.mark.slow
def test_restoreformer_enhancer_matches_spandrels_own_call(face_restorer_standin, one_torch_thread):
    path = face_restorer_standin('restoreformer')
    descriptor = load_spandrel(path, path, FACE)
    faces = np.stack([PHOTO[40:104, 128:192], PHOTO[60:124, 140:204]])  # 64x64: RestoreFormer takes multiples of 32
    restored = SpandrelFaceEnhancer(load_spandrel(path, path, FACE), batch_size=2)(faces)
    with torch.no_grad():
        expected = descriptor(torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255)  # normalises for itself
    expected = (expected * 255).round().byte().permute(0, 2, 3, 1).numpy()
    assert restored.shape == faces.shape and np.abs(restored.astype(int) - expected).max() <= 1
    assert np.abs(restored.astype(int) - faces).mean() > 10


def test_codeformer_name_is_refused_without_the_licence_flag_before_any_download(tmp_path, weights_server):
    proc = run_photo(tmp_path, '--face_model', 'codeformer')
    assert proc.returncode == 2 and weights_server.requests == []
    assert proc.stderr.strip().splitlines()[-1] == (
        'error: --face_model codeformer: CodeFormer is under the S-Lab License 1.0 (non-commercial use only); pass '
        '--codeformer_noncommercial to accept it, or choose another face model')
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_codeformer_file_loads_only_with_the_licence_flag(face_restorer_standin):
    path = face_restorer_standin('codeformer')
    with pytest.raises(WeightsError, match=r'is CodeFormer, whose licence \(S-Lab License 1.0\) allows non-commercial '
                                           'use only; pass --codeformer_noncommercial to accept it'):
        load_spandrel(path, path, FACE)
    opt = TestOptions().parse(['--gpus', '0', '--face_model', path, '--codeformer_noncommercial',
                               '--codeformer_fidelity', '0.7'])
    enhancer = face_enhancer(opt).enhancer
    assert enhancer.descriptor.architecture.id == 'CodeFormer' and enhancer.fidelity == 0.7
    assert opt.other_face_model == path and opt.pretrain_model_path == ''


def test_a_sparnet_given_as_face_model_is_the_pretrain_model_path(released_checkpoint):
    path = released_checkpoint('sparnet_light_attn3d')
    opt = TestOptions().parse(['--gpus', '0', '--face_model', path])
    assert (opt.pretrain_model_path, opt.other_face_model, opt.att_name, opt.res_depth) == (path, '', 'spar3d', 1)


def one_line_error(proc):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and [line for line in lines if 'error' in line] == lines[-1:]
    return lines[-1]


@pytest.mark.parametrize('flags, message', [
    pytest.param(lambda standin, realesrgan: ['--face_model', realesrgan(4)],
                 r'x4.pth: is an ESRGAN model \(x4 super-resolution\), not a face restorer \(give it to '
                 '--bg_upsampler\\)', marks=pytest.mark.slow),
    (lambda standin, realesrgan: ['--face_model', 'realesrgan_x4plus'],
     r'realesrgan_x4plus: is a super-resolution model, not a face restorer \(give it to --bg_upsampler\)'),
    (lambda standin, realesrgan: ['--face_model', standin('restoreformer'), '--bg_upsampler',
                                  standin('restoreformer'), '--test_upscale', '2'],
     r'restoreformer.pth: is a RestoreFormer model \(face restorer\), not a super-resolution model \(give it to '
     '--face_model\\)'),
    (lambda standin, realesrgan: ['--face_model', 'nowhere.pth'],
     r'--face_model nowhere.pth: no such file or model name; --face_model takes a SPARNet \(sparnet, '),
], ids=['sr_file_as_face_model', 'sr_name_as_face_model', 'face_file_as_bg_upsampler', 'missing'])
def test_a_model_in_the_wrong_role_is_one_line_before_any_work(tmp_path, weights_server, face_restorer_standin,
                                                                realesrgan_standin, flags, message):
    proc = run_photo(tmp_path, *flags(face_restorer_standin, realesrgan_standin))
    assert re.search(message, one_line_error(proc))
    assert not (tmp_path / 'out').exists() and weights_server.requests == []
    assert OTHER_MODELS['realesrgan_x4plus'].role != FACE
