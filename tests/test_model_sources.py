"""Every flag that takes a model, given a name of a model table or a path: a path that exists is the file, always,
whatever its name; only a bare table name, or a missing path whose file name is a table's file, maps to the table
(downloaded into the cache).

The flags: --pretrain_model_path (test.py, train.py, the whole-photo script, scripts.export_onnx and
scripts.measure_video_stability read it through options.generator_flags), --face_model, --bg_upsampler and
app.py --models. --onnx_model, --vgg_weights, --inception_weights and the benchmarks' --weights take files only.
"""
import os
import re

import pytest
import torch

from helpers.commands import run_in_process
from options.app_options import parse_app_args
from options.test_options import TestOptions
from options.train_options import TrainOptions
from upsamplers.background import BackgroundUpsampler
from utils.cli import UserError
from webapp import server
from webapp.added_models import AddedModel, added_models
from weights.other_models import OTHER_MODELS
from weights.released import RELEASED_MODELS

LIGHT_FLAGS = ('sparnet', 'spar3d', 1)  # (model, att_name, res_depth) of sparnet_light_attn3d


@pytest.fixture
def here(tmp_path, monkeypatch, weights_server):
    """The current folder is an empty tmp_path, and every download goes to a local server serving nothing yet
    (`here.requests` lists what was asked of it); here.put(name, file) links `file` in as `name`."""
    monkeypatch.chdir(tmp_path)

    def put(name, path):
        os.link(path, tmp_path / name)
        return name
    weights_server.put = put
    return weights_server


def test_pretrain_model_path_uses_a_local_file_named_as_a_released_model(here, released_checkpoint):
    light = released_checkpoint('sparnet_light_attn3d')
    for name in (RELEASED_MODELS['sparnet'].file_name, 'sparnethd_attn2d'):
        here.put(name, light)
        for options in (TestOptions, TrainOptions):
            opt = options().parse(['--gpus', '0', '--pretrain_model_path', name])
            assert (opt.model, opt.att_name, opt.res_depth, opt.pretrain_model_path) == (*LIGHT_FLAGS, name)
    assert here.requests == []


def test_face_model_uses_a_local_file_by_what_it_holds_not_by_its_name(here, released_checkpoint,
                                                                        face_restorer_standin):
    """RestoreFormer.pth of the current folder is yours, not the release's; a SPARNet saved as GFPGANv1.4.pth is a
    SPARNet, a RestoreFormer saved under a released SPARNet's file name is a face restorer."""
    restoreformer = face_restorer_standin('restoreformer')
    light = released_checkpoint('sparnet_light_attn3d')
    hd_name = RELEASED_MODELS['sparnethd_attn2d'].file_name
    for name, path, other in [(OTHER_MODELS['restoreformer'].file_name, restoreformer, True),
                              (hd_name, restoreformer, True),
                              (OTHER_MODELS['gfpgan_v1.4'].file_name, light, False)]:
        here.put(name, path)
        opt = TestOptions().parse(['--gpus', '0', '--face_model', name])
        if other:
            assert (opt.other_face_model, opt.pretrain_model_path) == (name, '')
        else:
            assert (opt.other_face_model, opt.pretrain_model_path) == ('', name)
            assert (opt.model, opt.att_name, opt.res_depth) == LIGHT_FLAGS
    assert here.requests == []


def test_bg_upsampler_uses_a_local_file_named_as_a_table_model(here, realesrgan_standin):
    """An x4 network saved as RealESRGAN_x2plus.pth: its own scale counts (x2plus could not give 4)."""
    name = here.put(OTHER_MODELS['realesrgan_x2plus'].file_name, realesrgan_standin(4))
    opt = TestOptions().parse(['--gpus', '0', '--bg_upsampler', name, '--test_upscale', '4'])
    upsampler = BackgroundUpsampler.named(opt.bg_upsampler, opt.test_upscale)
    assert (upsampler.descriptor.scale, upsampler.label) == (4, name)
    assert here.requests == []


def test_models_of_the_app_checks_a_local_file_named_as_a_table_model(here, realesrgan_standin, monkeypatch):
    name = here.put(OTHER_MODELS['realesrgan_x2plus'].file_name, realesrgan_standin(4))
    assert added_models([name]) == [AddedModel(name, name, 'background', 4)]
    os.unlink(name)
    torch.save({'conv.weight': torch.zeros(3, 3, 3, 3)}, name)  # no architecture spandrel knows

    def serve(*args):
        raise AssertionError('app.py served')
    monkeypatch.setattr(server, 'serve', serve)
    proc = run_in_process(lambda argv: server.serve_app(parse_app_args(argv)),
                          ['--models', name, '--results_dir', 'results'], 'app.py')
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert re.fullmatch(f'error: --models {name}: spandrel .* recognises no architecture in this file '
                        r'\(keys conv.weight\); .*', lines[0])
    assert here.requests == [] and not os.path.exists('results')


def test_a_missing_path_maps_to_a_table_only_by_its_file_name(here, realesrgan_standin):
    """`pretrain_models/RealESRGAN_x2plus.pth`, not there: the table's file, downloaded; `pretrain_models/sparnet`
    is no table name (the short names are names, not files)."""
    model = OTHER_MODELS['realesrgan_x2plus']
    here.add(realesrgan_standin(2), model.file_name)
    missing = os.path.join('pretrain_models', model.file_name)
    opt = TestOptions().parse(['--gpus', '0', '--bg_upsampler', missing, '--test_upscale', '2'])
    upsampler = BackgroundUpsampler.named(opt.bg_upsampler, opt.test_upscale)
    assert (upsampler.descriptor.scale, upsampler.label) == (2, model.name)
    assert here.requests == [f'/{model.file_name}']
    given = os.path.join('pretrain_models', 'sparnet')
    for flag, message in [('--face_model', f'--face_model {given}: no such file or model name; --face_model takes '),
                          ('--pretrain_model_path', f'{given}: no such weights file; --pretrain_model_path takes ')]:
        with pytest.raises(UserError, match=re.escape(message)):
            TestOptions().parse(['--gpus', '0', flag, given])
    assert here.requests == [f'/{model.file_name}']
