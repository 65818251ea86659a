"""Output folders: refused before any work when they are the input folder, inside or around it, or not writable."""
import os

import numpy as np
import pytest
from PIL import Image

from helpers.commands import run_in_process, run_test_py, run_whole_photos
from scripts import align_and_crop_dir, make_lr, prepare_celeba
from utils.cli import UserError
from utils.output_plan import OutputPlan, check_writable_folder


@pytest.fixture
def faces(tmp_path):
    """A folder of two 16x16 images (real files, checked unchanged after each refusal)."""
    root = tmp_path / 'faces'
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in ('a.png', 'b.png'):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / name)
    return root


def snapshot(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob('*')) if path.is_file()}


@pytest.mark.slow
def test_test_py_refuses_its_input_folder_as_output(faces, released_checkpoint):
    before = snapshot(faces)
    flags = ['--gpus', '0', '--pretrain_model_path', released_checkpoint('sparnet'), '--dataroot', str(faces)]
    (faces.parent / 'link').symlink_to(faces)
    for output_flags, message in (
            (['--save_as_dir', str(faces)], f'--save_as_dir {faces} is the same folder as --dataroot {faces}'),
            (['--save_as_dir', str(faces.parent / 'link')], 'is the same folder as --dataroot'),
            (['--save_as_dir', str(faces / 'sr')], f'--save_as_dir {faces / "sr"} is inside --dataroot'),
            (['--save_as_dir', str(faces.parent)], 'contains --dataroot'),
            (['--results_dir', str(faces)], 'the output folder (<results_dir>/<name>/<phase>_<epoch>) ')):
        with pytest.raises(UserError, match=message.replace('(', r'\(').replace(')', r'\)')):
            run_test_py([*flags, *output_flags])
    assert snapshot(faces) == before


def test_test_py_checks_the_output_folder_before_any_image(faces, released_checkpoint, tmp_path):
    (tmp_path / 'file').write_text('not a folder')
    flags = ['--gpus', '0', '--pretrain_model_path', released_checkpoint('sparnet'), '--dataroot', str(faces)]
    with pytest.raises(UserError, match=f"--save_as_dir {tmp_path / 'file'}: is a file, not a folder"):
        run_test_py([*flags, '--save_as_dir', str(tmp_path / 'file')])
    with pytest.raises(UserError, match=f"--save_as_dir {tmp_path / 'file' / 'sr'}: cannot be created, "
                                        f"{tmp_path / 'file'} is a file"):
        run_test_py([*flags, '--save_as_dir', str(tmp_path / 'file' / 'sr')])


@pytest.mark.parametrize('extra, message', [
    (['--output_dir', '{in}'], '--output_dir {in} is the same folder as --input_dir {in}'),
    (['--output_dir', '{in}/LR'], '--output_dir {in}/LR is inside --input_dir {in}'),
    (['--output_dir', '{tmp}/LR', '--upsampled_dir', '{in}/up'], '--upsampled_dir {in}/up is inside --input_dir'),
    (['--output_dir', '{tmp}/LR', '--upsampled_dir', '{tmp}/LR'], '--output_dir {tmp}/LR is the same folder as '
                                                                  '--upsampled_dir {tmp}/LR'),
    (['--output_dir', '{tmp}/file'], '--output_dir {tmp}/file: is a file, not a folder'),
], ids=['same', 'inside', 'upsampled_inside', 'two_outputs', 'file'])
def test_make_lr_refuses_before_writing(faces, tmp_path, extra, message):
    (tmp_path / 'file').write_text('x')
    before = snapshot(faces)
    fill = {'{in}': str(faces), '{tmp}': str(tmp_path)}
    extra, message = [fill_in(value, fill) for value in extra], fill_in(message, fill)
    with pytest.raises(UserError, match=message):
        make_lr.main(['--input_dir', str(faces), *extra])
    assert snapshot(faces) == before and not (tmp_path / 'LR').exists()


def fill_in(text, values):
    for key, value in values.items():
        text = text.replace(key, value)
    return text


@pytest.mark.parametrize('script', [align_and_crop_dir, prepare_celeba])
def test_crop_scripts_refuse_their_input_folder_as_output(faces, tmp_path, script):
    before = snapshot(faces)
    for output, message in ((faces, 'is the same folder as --input_dir'), (faces / 'crops', 'is inside --input_dir')):
        with pytest.raises(UserError, match=message):
            script.main(['--input_dir', str(faces), '--output_dir', str(output), '--detector', 'hog'])
    assert snapshot(faces) == before


def test_folder_rules(tmp_path):
    def check(*outputs):
        plan = OutputPlan()
        plan.reads_folder('--in', str(tmp_path / 'in'))
        for flag, path in outputs:
            plan.writes_folder(flag, path)
        plan.check()
    check(('--out', str(tmp_path / 'out')), ('--up', str(tmp_path / 'input')))
    check(('--out', ''), ('--up', str(tmp_path / 'in2')))  # empty paths: not given
    with pytest.raises(UserError, match='is inside --in'):
        check(('--out', str(tmp_path / 'in' / '..' / 'in' / 'x')))
    with pytest.raises(UserError, match='--out .* contains --in'):
        check(('--out', str(tmp_path)))


def test_unwritable_folders_named_in_one_line(tmp_path, monkeypatch):
    check_writable_folder('--out', str(tmp_path / 'new' / 'deeper'))  # creatable: fine, and not created
    assert not (tmp_path / 'new').exists()
    monkeypatch.setattr(os, 'access', lambda path, mode: path != str(tmp_path))
    with pytest.raises(UserError, match=f'--out {tmp_path}: no permission to write in it'):
        check_writable_folder('--out', str(tmp_path))
    with pytest.raises(UserError, match=f"--out {tmp_path / 'new'}: no permission to create it in {tmp_path};"):
        check_writable_folder('--out', str(tmp_path / 'new'))


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write in any folder')
def test_read_only_folder_refused(tmp_path):
    (tmp_path / 'ro').mkdir(mode=0o555)
    with pytest.raises(UserError, match='no permission'):
        check_writable_folder('--out', str(tmp_path / 'ro'))


@pytest.mark.parametrize('command', ['test.py', 'whole_photos'])
def test_report_may_not_be_an_input_or_another_file(faces, released_checkpoint, tmp_path, command):
    """--report appends lines: never to an input, a folder or a file that is no report of this project; an
    earlier report is appended to."""
    before = snapshot(faces)
    if command == 'test.py':
        run, inputs = run_test_py, ['--dataroot', str(faces), '--save_as_dir', str(tmp_path / 'out')]
    else:
        run, inputs = run_whole_photos, ['--test_img_path', str(faces), '--results_dir', str(tmp_path / 'out')]
    flags = ['--gpus', '0', '--pretrain_model_path', released_checkpoint('sparnet'), *inputs]
    (tmp_path / 'notes.txt').write_text('my notes\n')
    (tmp_path / 'earlier.jsonl').write_text('{"path": "x.png", "status": "done"}\n')
    flag = inputs[0]
    for report, message in (
            (faces / 'a.png', f'--report {faces / "a.png"} is inside {flag} {faces}, where such files are read as '
                              'inputs; write it outside the input folder'),
            (faces, f'--report {faces} is a folder; give the path of a file'),
            (tmp_path, f'--report {tmp_path} is a folder; give the path of a file'),
            (tmp_path / 'notes.txt', 'exists and is not a report of this project (its first line is no JSON report '
                                     'line); choose a new file name, or an earlier report to append to')):
        result = run_in_process(run, [*flags, '--report', str(report)], command)
        errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
        assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr
    assert snapshot(faces) == before and (tmp_path / 'notes.txt').read_text() == 'my notes\n'
    assert not (tmp_path / 'out').exists()
    result = run_in_process(run, [*flags, '--report', str(tmp_path / 'earlier.jsonl')], command)
    assert result.returncode in (0, 1), result.stderr  # the faces folder: no face found in random pixels
    lines = (tmp_path / 'earlier.jsonl').read_text().splitlines()
    assert len(lines) > 1 and lines[0] == '{"path": "x.png", "status": "done"}'
