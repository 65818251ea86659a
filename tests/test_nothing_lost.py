"""The cases of 'nothing lost' on the commands themselves: no output onto an input or onto another output, no two
inputs written to one output, and no run removing or racing the work of another run that is still going."""
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from helpers.clips import faceless_frame, write_clip
from helpers.commands import HD_FLAGS, command_main, project_env, run_in_process, run_test_py, run_whole_photos
from options import pipelines


@pytest.fixture
def faces(tmp_path):
    """in/ and gt/, each with 000.png and 001.png (48x48)."""
    rng = np.random.default_rng(0)
    for folder in ('in', 'gt'):
        (tmp_path / folder).mkdir()
        for name in ('000.png', '001.png'):
            Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(tmp_path / folder / name)
    return tmp_path


def files_below(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob('*')) if path.is_file()}


@pytest.mark.parametrize('command, flag', [('scripts.evaluate', '--save_json'), ('scripts.evaluate', '--save_csv'),
                                           ('scripts.evaluate', '--save_table'), ('psnr_ssim.py', '--save_csv')])
def test_a_score_file_onto_a_ground_truth_image_is_refused(faces, command, flag):
    before = files_below(faces)
    result = run_in_process(command_main(command), ['--results_dir', str(faces / 'in'), '--gt_dir', str(faces / 'gt'),
                                                    flag, str(faces / 'gt' / '000.png')], command)
    assert result.returncode == 2
    assert f'error: {flag} {faces}/gt/000.png is inside --gt_dir {faces}/gt, where such files are read as inputs' \
        in result.stderr
    assert files_below(faces) == before


def test_a_report_onto_one_of_the_run_s_own_outputs_is_refused(faces, released_checkpoint):
    flags = ['--gpus', '0', '--pretrain_model_path', released_checkpoint('sparnet'), '--dataroot', str(faces / 'in'),
             '--save_as_dir', str(faces / 'out')]
    result = run_in_process(run_test_py, [*flags, '--report', str(faces / 'out' / '001.png')], 'test.py')
    assert result.returncode == 2
    assert f'error: the output of {faces}/in/001.png and --report {faces}/out/001.png would be written to ' \
        f'{faces}/out/001.png' in result.stderr
    assert not (faces / 'out').exists()


def test_two_images_with_one_output_name_are_refused(faces, released_checkpoint):
    Image.open(faces / 'in' / '001.png').save(faces / 'in' / '001.gif')  # written as 001.png, as 001.png itself
    flags = ['--gpus', '0', '--pretrain_model_path', released_checkpoint('sparnet'), '--dataroot', str(faces / 'in'),
             '--save_as_dir', str(faces / 'out')]
    result = run_in_process(run_test_py, flags, 'test.py')
    assert result.returncode == 2
    assert f'error: the output of {faces}/in/001.gif and the output of {faces}/in/001.png would be written to ' \
        f'{faces}/out/001.png; rename one of the two inputs' in result.stderr
    for command in ('scripts.make_lr', 'scripts.align_and_crop_dir'):
        result = run_in_process(command_main(command), ['--input_dir', str(faces / 'in'), '--output_dir',
                                                        str(faces / 'out'), '--ext', 'png'], command)
        assert result.returncode == 2 and 'rename one of the two inputs' in result.stderr, result.stderr
    assert not (faces / 'out').exists()


@pytest.fixture
def no_network(monkeypatch):
    """The whole-photo pipeline with a stand-in for SPARNetHD that returns the faces as they are."""
    monkeypatch.setattr(pipelines, 'face_enhancer', lambda opt: lambda faces: faces)


@pytest.mark.slow
def test_videos_and_photos_of_one_name_get_outputs_of_their_own(tmp_path, released_checkpoint, no_network):
    """a.mp4 and a.mov were both written to a.mp4 (so were a.mp4 and a.avi); the photo v.mp4.jpg's results folder
    was the video v.mp4's output file."""
    folder = tmp_path / 'in'
    folder.mkdir()
    for name in ('a.mp4', 'a.mov', 'v.mp4'):
        write_clip(folder / name, [faceless_frame((64, 48))] * 2, audio_seconds=0)
    Image.fromarray(skimage.data.astronaut()).save(folder / 'v.mp4.jpg')
    flags = [*HD_FLAGS, '--pretrain_model_path', released_checkpoint('sparnethd_attn2d'), '--detector', 'hog',
             '--test_img_path', str(folder), '--results_dir', str(tmp_path / 'out')]
    result = run_in_process(run_whole_photos, flags, 'test_enhance_single_unalign.py')
    assert '4 photo(s) and video(s) enhanced (1 faces), 0 without a face, 0 failed' in result.stdout, result.stderr
    assert sorted(os.listdir(tmp_path / 'out')) == ['a_mov.mp4', 'a_mp4.mp4', 'v.mp4_jpg', 'v_mp4.mp4']
    assert (tmp_path / 'out' / 'v.mp4_jpg' / 'hq_final.jpg').is_file()


HOLD = """import sys, time
from utils.output_plan import OutputPlan
plan = OutputPlan()
plan.writes_folder('--save_as_dir', sys.argv[1])
with plan.claimed():
    print('holding', flush=True)
    time.sleep(120)
"""


def test_a_run_into_a_folder_another_live_run_writes_is_refused_before_any_work(faces, released_checkpoint):
    """The second run used to remove the first run's temporary files as leftovers; the first then lost its work."""
    (faces / 'out').mkdir()
    (faces / 'out' / '000.png.4242-0badcafe.part').write_bytes(b'being written by the other run')
    other = subprocess.Popen([sys.executable, '-c', HOLD, str(faces / 'out')], env=project_env(),
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == 'holding\n'
        before = files_below(faces)
        flags = ['--gpus', '0', '--pretrain_model_path', released_checkpoint('sparnet'),
                 '--dataroot', str(faces / 'in'), '--save_as_dir', str(faces / 'out')]
        result = run_in_process(run_test_py, flags, 'test.py')
        assert result.returncode == 2
        assert f'error: --save_as_dir {faces}/out: another run is writing into it; wait until it ends, or choose ' \
            'another output folder' in result.stderr
        assert files_below(faces) == before
    finally:
        other.kill()
        other.wait()
    assert run_in_process(run_test_py, flags, 'test.py').returncode == 0  # once it is gone (its leftover too)
    assert sorted(os.listdir(faces / 'out')) == ['000.png', '001.png']
