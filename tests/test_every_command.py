"""Every command, found from the files on disk, and every output flag, found from its parser: `-h` prints the help,
the path form (`python scripts/NAME.py`) says in one line how to run it, and an output pointed at an input, at an
input folder, at another output or at a path of the wrong kind is refused in one line (exit 2) before any work,
with every file left as it was and nothing created."""
import argparse
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from helpers.commands import ROOT, command_main, run_in_process
from utils.cli import PATH_ROLES

ENTRY_POINTS = ('test.py', 'train.py', 'test_enhance_single_unalign.py', 'psnr_ssim.py', 'app.py')
NOT_COMMANDS = ('hubconf.py',)  # torch.hub's entries, no command line
SCRIPTS = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, 'scripts'))
                 if name.endswith('.py') and name != '__init__.py')
COMMANDS = (*ENTRY_POINTS, *(f'scripts.{name}' for name in SCRIPTS))
OUTPUT_ROLES = ('output file', 'output folder')

# Per command: the flags of a run that would start ({in}: a folder of images, {gt}: their ground truth, {w}: a
# weights file, {log}: a training log folder, {out}: a new folder), output flags that do not apply to it and
# pairs of output flags of which only one applies, and an output of the run itself that a file flag may not take
# (with the flags that make it; not for the flag whose default it is).
CASES = {
    'test.py': dict(base=['--gpus', '0', '--pretrain_model_path', '{w}', '--dataroot', '{in}'],
                    alternatives=[('--results_dir', '--save_as_dir')],
                    derived=(['--save_as_dir', '{out}'], '{out}/a.png')),
    'test_enhance_single_unalign.py': dict(base=['--gpus', '0', '--pretrain_model_path', '{w}',
                                                 '--test_img_path', '{in}'],
                                           unused=['--save_as_dir'],  # test.py's; photos go to --results_dir
                                           derived=(['--results_dir', '{out}'], '{out}/a/hq_final.jpg')),
    'train.py': dict(base=['--gpus', '0', '--model', 'sparnet', '--dataset_name', 'celeba', '--dataroot', '{in}',
                           '--name', 'run']),
    'psnr_ssim.py': dict(base=['--results_dir', '{in}', '--gt_dir', '{gt}']),
    'app.py': dict(base=['--models', '{w}', '--port', '0']),
    'scripts.align_and_crop_dir': dict(base=['--input_dir', '{in}', '--output_dir', '{out}', '--detector', 'hog']),
    'scripts.benchmark': dict(base=['--models', 'sparnet', '--weights', 'sparnet={w}']),
    'scripts.benchmark_loader': dict(base=['--dataroot', '{in}']),
    'scripts.benchmark_training': dict(base=[]),
    'scripts.download_weights': dict(base=['sparnet']),
    'scripts.evaluate': dict(base=['--results_dir', '{in}', '--gt_dir', '{gt}'],
                             derived=([], '{in}/metrics.csv'), derived_default_of='--save_csv'),
    'scripts.export_onnx': dict(base=['--pretrain_model_path', '{w}', '--check_batch', '0']),
    'scripts.make_lr': dict(base=['--input_dir', '{in}', '--output_dir', '{out}']),
    'scripts.make_sample_photo': dict(base=[]),
    'scripts.make_sample_video': dict(base=['--photo', '{in}/a.png']),
    'scripts.plot_training': dict(base=['--runs', '{log}'], derived=([], '{log}/loss_log.txt')),
    'scripts.prepare_celeba': dict(base=['--input_dir', '{in}', '--output_dir', '{out}', '--detector', 'hog']),
    'scripts.reproduce': dict(base=['--gpus', '0', '--models', 'sparnet', '--helen_lr', '{in}', '--helen_hr',
                                    '{gt}']),
}


class Parsed(Exception):
    """Raised in place of parsing: the parser a command built is caught."""


def parser_of(command):
    """The parser `command` parses its command line with (its first one: the flags every run of it has)."""
    parsers = []

    def catch(parser, *args, **kwargs):
        parsers.append(parser)
        raise Parsed
    with mock.patch.object(argparse.ArgumentParser, 'parse_known_args', catch), pytest.raises(Parsed):
        command_main(command)(['-h'])
    return parsers[0]


def flags_of(parser, roles):
    return [action.option_strings[0] for action in parser._actions
            if action.option_strings and getattr(action.type, 'role', None) in roles]


def test_the_commands_are_all_known():
    on_disk = sorted(name for name in os.listdir(ROOT) if name.endswith('.py') and name not in NOT_COMMANDS)
    assert on_disk == sorted(ENTRY_POINTS)
    assert sorted(CASES) == sorted(command for command in COMMANDS if flags_of(parser_of(command), OUTPUT_ROLES))


@pytest.mark.parametrize('command', COMMANDS)
def test_help_of_every_command(command):
    result = run_in_process(command_main(command), ['-h'], command)
    assert result.returncode == 0 and result.stdout.startswith('usage:'), result.stderr
    roles = {getattr(action.type, 'role', None) for action in parser_of(command)._actions}
    assert roles <= {None, *PATH_ROLES}


def test_scripts_run_as_paths_say_how_to_run_them():
    for name in SCRIPTS:
        result = subprocess.run([sys.executable, os.path.join('scripts', f'{name}.py'), '-h'], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stderr) == (
            1, f'error: run it from the repository root as: python -m scripts.{name} ...\n'), name


@pytest.fixture
def places(tmp_path, released_checkpoint):
    """{placeholder: path} of CASES, made in tmp_path: two images and their ground truth, a weights file, a log."""
    rng = np.random.default_rng(0)
    for folder in ('in', 'gt'):
        (tmp_path / folder).mkdir()
        for name in ('a.png', 'b.png'):
            Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(tmp_path / folder / name)
    (tmp_path / 'w.pth').write_bytes(open(released_checkpoint('sparnet'), 'rb').read())
    (tmp_path / 'log').mkdir()
    (tmp_path / 'log' / 'loss_log.txt').write_text('epoch 1/1 iter 1 | Pix 0.5 lr_G 0.0002 | 0.100 s/it | ETA 0\n')
    (tmp_path / 'file.txt').write_text('a file of the user\n')
    return {'{in}': tmp_path / 'in', '{gt}': tmp_path / 'gt', '{w}': tmp_path / 'w.pth', '{log}': tmp_path / 'log',
            '{out}': tmp_path / 'out', '{file}': tmp_path / 'file.txt', '{dir}': tmp_path / 'in'}


def filled(values, places):
    text = []
    for value in values:
        for key, path in places.items():
            value = value.replace(key, str(path))
        text.append(value)
    return text


def tree(root):
    """Every file's bytes and every folder below `root`."""
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
            for path in sorted(root.rglob('*'))}


def without(argv, flags):
    """`argv` less the flags of `flags` and their values."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item in flags:
            skip = True
        else:
            kept.append(item)
    return kept


def output_cases(command):
    """(name, output flags and values) of every refusal to check for `command`."""
    case = CASES[command]
    parser = parser_of(command)
    unused = case.get('unused', [])
    files = [flag for flag in flags_of(parser, ('output file',)) if flag not in unused]
    folders = [flag for flag in flags_of(parser, ('output folder',)) if flag not in unused]
    inputs = [value for value in case['base'] if value.startswith('{') and value != '{out}'
              or value.startswith('sparnet={')]
    cases = []
    for flag in files + folders:
        for value in inputs:
            value = value.partition('=')[2] or value
            target = '{in}/a.png' if value in ('{in}', '{gt}') else '{log}/loss_log.txt' if value == '{log}' else value
            cases.append((f'{flag} onto input {target}', [flag, target]))
            if value in ('{in}', '{gt}', '{log}'):
                cases.append((f'{flag} onto input folder {value}', [flag, value]))
        wrong_kind = '{dir}' if flag in files else '{file}'
        cases.append((f'{flag} onto {wrong_kind}', [flag, wrong_kind]))
    alternatives = {frozenset(pair) for pair in case.get('alternatives', [])}
    outputs = files + folders
    for index, flag in enumerate(outputs):
        for other in outputs[index + 1:]:
            if frozenset((flag, other)) not in alternatives:
                cases.append((f'{flag} and {other} onto one path', [flag, '{out}/same', other, '{out}/same']))
    if 'derived' in case:
        flags, path = case['derived']
        cases += [(f'{flag} onto the output {path}', [*flags, flag, path]) for flag in files
                  if flag not in flags and flag != case.get('derived_default_of')]
    return cases


@pytest.mark.parametrize('command', sorted(CASES))
def test_outputs_onto_inputs_or_other_outputs_are_refused_before_any_work(command, places, monkeypatch):
    root = places['{file}'].parent
    monkeypatch.chdir(root)  # default outputs (./results, ./check_points...) land in the test's folder
    base = filled(CASES[command]['base'], places)
    main = command_main(command)
    before = tree(root)
    cases = output_cases(command)
    assert cases
    for name, flags in cases:
        flags = filled(flags, places)
        result = run_in_process(main, [*without(base, flags[::2]), *flags], command)
        errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
        assert result.returncode == 2 and len(errors) == 1, f'{command}, {name}: {result.stderr}'
        assert tree(root) == before, f'{command}, {name}: files changed'
