"""The Python API (api/, docs/python-api.md): its documented examples run; it writes what the scripts write, byte for
byte; it refuses a bad value with the command line's own line; it may be called from several threads."""
import os
import re
import threading

import numpy as np
import pytest
import skimage.data
from PIL import Image

from api import FaceEnhancer, PhotoRestorer, UserError
from api.choices import KINDS, checked
from helpers.clips import astronaut_frames, write_clip
from helpers.commands import HD_FLAGS, ROOT, run_test_py, run_whole_photos
from helpers.faces import face_folder
from inference.photo_results import save_results
from options.test_options import TestOptions
from utils.image_io import read_rgb

DOCS = os.path.join(ROOT, 'docs', 'python-api.md')


def inverted(faces):
    return 255 - faces


def examples():
    with open(DOCS, encoding='utf-8') as handle:
        return re.findall(r'```python\n(.*?)```', handle.read(), flags=re.S)


@pytest.mark.slow
def test_the_documented_examples_run(tmp_path, monkeypatch, weights_server, released_checkpoint, network_stand_in,
                                     capsys):
    """Each ```python block of docs/python-api.md, in order, in one namespace, the released weights served."""
    for name in ('sparnethd_attn2d', 'sparnet'):
        weights_server.add_released(name, released_checkpoint(name))
    network_stand_in(lambda: inverted)
    monkeypatch.chdir(tmp_path)
    astronaut = skimage.data.astronaut()
    Image.fromarray(astronaut).save('photo.jpg')
    Image.fromarray(astronaut).save('aligned_face.png')  # a 512x512 face stands in for an aligned one
    Image.fromarray(astronaut[::32, ::32]).save('face_16x16.png')
    write_clip(tmp_path / 'clip.mp4', astronaut_frames(3))
    namespace = {'CHECKOUT': ROOT}
    blocks = examples()
    assert len(blocks) >= 6
    for block in blocks:
        exec(compile(block, DOCS, 'exec'), namespace)
    assert read_rgb('enhanced_face.png').size == (512, 512)
    assert read_rgb('restored.jpg').size == (1024, 1024)
    printed = capsys.readouterr().out
    assert 'no face in that one' in printed and '3/3 frames' in printed
    assert "argument --batch_size: must be an integer 1 or more, got '0'" in printed
    assert os.path.isfile('clip_restored.mp4')


@pytest.mark.slow
def test_a_photo_restored_by_the_api_is_the_script_s_byte_for_byte(tmp_path, released_checkpoint, network_stand_in):
    network_stand_in(lambda: inverted)
    photo = tmp_path / 'photo.png'
    Image.fromarray(skimage.data.astronaut()).save(photo)
    weights = released_checkpoint('sparnethd_attn2d')
    assert run_whole_photos([*HD_FLAGS, '--pretrain_model_path', weights, '--detector', 'hog', '--test_upscale', '2',
                             '--test_img_path', str(photo), '--results_dir', str(tmp_path / 'script')]) == 0
    with PhotoRestorer(weights, detector='hog', upscale=2, device='cpu') as restorer:
        save_results(restorer.restore(str(photo)), str(tmp_path / 'api'), 'jpg', 75)
    script = sorted(path.relative_to(tmp_path / 'script') for path in (tmp_path / 'script').rglob('*.jpg'))
    assert script == sorted(path.relative_to(tmp_path / 'api') for path in (tmp_path / 'api').rglob('*.jpg'))
    assert len(script) == 3  # hq_final, one face aligned and enhanced
    for name in script:
        assert (tmp_path / 'script' / name).read_bytes() == (tmp_path / 'api' / name).read_bytes(), name


def test_faces_enhanced_by_the_api_are_test_py_s_byte_for_byte(tmp_path, released_checkpoint):
    """The real network (a released-format SPARNet, random weights), one face at a time both ways."""
    face_folder(tmp_path / 'faces', count=3)
    weights = released_checkpoint('sparnet')
    assert run_test_py(['--gpus', '0', '--pretrain_model_path', weights, '--batch_size', '1',
                        '--dataroot', str(tmp_path / 'faces'), '--save_as_dir', str(tmp_path / 'script')]) == 0
    enhancer = FaceEnhancer(weights, device='cpu', batch_size=1)
    for path in sorted((tmp_path / 'faces').iterdir()):
        made = Image.fromarray(enhancer(np.asarray(read_rgb(path))))
        made.save(tmp_path / 'api.png')
        assert (tmp_path / 'api.png').read_bytes() == (tmp_path / 'script' / path.name).read_bytes(), path.name


@pytest.mark.parametrize('flag', sorted(KINDS))
def test_a_bad_value_gives_the_command_line_s_line(flag, capsys):
    bad = -1 if flag not in ('detect_min_score',) else float('nan')
    with pytest.raises(SystemExit):
        TestOptions().parse(['--gpus', '0', f'--{flag}', repr(bad)])
    cli = capsys.readouterr().err
    with pytest.raises(UserError) as error:
        checked(flag, bad)
    assert cli.startswith(f'error: {error.value} (')


def test_the_objects_check_their_choices_before_loading_anything(weights_server):
    for build, message in (
            (lambda: FaceEnhancer(batch_size=0), 'argument --batch_size: must be an integer 1 or more'),
            (lambda: FaceEnhancer(precision='fp64'), "argument --precision: invalid choice: 'fp64'"),
            (lambda: PhotoRestorer(upscale=9), 'argument --test_upscale: must be an integer from 1 to 8'),
            (lambda: PhotoRestorer(detector='sift'), "argument --detector: invalid choice: 'sift'"),
            (lambda: FaceEnhancer('no_such_model'), 'no_such_model: no such file or model name')):
        with pytest.raises(UserError, match=re.escape(message)):
            build()
    assert weights_server.requests == []


@pytest.mark.slow
def test_one_restorer_serves_several_threads(tmp_path, released_checkpoint, network_stand_in):
    """Two threads restore two photos at once with one PhotoRestorer: each gets what it gets alone."""
    network_stand_in(lambda: inverted)
    astronaut = skimage.data.astronaut()
    photos = [astronaut, np.ascontiguousarray(astronaut[:, ::-1])]
    with PhotoRestorer(released_checkpoint('sparnethd_attn2d'), detector='hog', device='cpu') as restorer:
        alone = [restorer.restore(photo).final for photo in photos]
        together = [None, None]

        def restore(index):
            together[index] = restorer.restore(photos[index]).final
        threads = [threading.Thread(target=restore, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for made, expected in zip(together, alone):
        np.testing.assert_array_equal(made, expected)


def test_a_video_output_onto_its_input_is_refused(tmp_path, released_checkpoint, network_stand_in):
    network_stand_in(lambda: inverted)
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, astronaut_frames(2))
    before = clip.read_bytes()
    with PhotoRestorer(released_checkpoint('sparnethd_attn2d'), detector='hog', device='cpu') as restorer:
        with pytest.raises(UserError, match=f'the output {clip} is the video {clip}: the input would be overwritten'):
            restorer.restore_video(clip, clip)
    assert clip.read_bytes() == before
