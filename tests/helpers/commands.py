"""Running the project's commands from the tests: in this process (their library run on parsed options, as the
entry point does) or, where a separate process is the point, as a subprocess of the test interpreter."""
import contextlib
import importlib
import importlib.util
import io
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from helpers.faces import face_images
from inference.face_folder import test_folder
from inference.whole_photos import enhance_whole_photos
from options.test_options import TestOptions
from options.train_options import TrainOptions
from training.run import train
from utils.cli import LOG_FORMAT, exit_code
from utils.tensor_image import tensor_to_uint8, uint8_to_tensor
from weights.released import DEFAULT_PHOTO_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def project_env():
    """The environment of a subprocess that imports the project's packages from anywhere (PYTHONPATH=ROOT)."""
    return {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, (ROOT, os.environ.get('PYTHONPATH'))))}


def command_main(command: str) -> Callable[[list[str]], int | None]:
    """The `main(argv)` of a command: an entry point's file name (`test.py`) or a script's module (`scripts.NAME`)."""
    if command.startswith('scripts.'):
        return importlib.import_module(command).main
    name = f'entry_point_{command[:-3]}'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, command))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name].main


def run_script(*args, cwd=ROOT, timeout=900):
    """`python *args` (a script of the repo and its flags, or `-m scripts.NAME ...`) with the test interpreter."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@dataclass
class Completed:
    """What a command run in this process printed and returned, as subprocess.CompletedProcess has it."""

    returncode: int
    stdout: str
    stderr: str


def run_in_process(command: Callable[[list[str]], int | None], argv: Sequence[str], prog: str) -> Completed:
    """`command(argv)` as `python <prog> *argv` runs it (utils.cli.run), in this process: its exit code, and what it
    printed to stdout and stderr, log lines and progress included (plain lines: stderr is no terminal). `prog` is
    the name argparse's messages give the command."""
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root, saved_argv = logging.getLogger(), sys.argv
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    sys.argv = [prog, *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = exit_code(lambda: command(list(argv)))
            except SystemExit as stop:  # argparse: its one line is printed, then it exits
                code = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.argv = saved_argv
        root.removeHandler(handler)
        root.setLevel(saved_level)
    return Completed(code, out.getvalue(), err.getvalue())


def run_test_py(argv):
    """What `python test.py *argv` runs, in this process; returns its exit code."""
    return test_folder(TestOptions().parse(argv))


# The flags of the released SPARNetHD (test.sh's), for whole-photo runs on a released-format checkpoint.
HD_FLAGS = ['--gpus', '0', '--model', 'sparnethd', '--name', 'SPARNetHD_V4_Attn2D', '--res_depth', '10',
            '--att_name', 'spar', '--Gnorm', 'in']


def run_whole_photos(argv):
    """What `python test_enhance_single_unalign.py *argv` runs, in this process; returns its exit code."""
    return enhance_whole_photos(TestOptions().parse(argv, default_weights=DEFAULT_PHOTO_MODEL))


def run_training(argv):
    """What `python train.py *argv` runs, in this process; returns its exit code."""
    return train(TrainOptions().parse(argv))


def check_test_script_output(checkpoint_flags, weights_path, spec, tmp_path, out_dir=None):
    """Run test.py on two LR faces with `checkpoint_flags`; its outputs must be those of `spec` with `weights_path`.

    Results go to --save_as_dir, or to `out_dir` when the flags place them there.
    """
    lr_dir = tmp_path / 'lr'
    save_flags = [] if out_dir else ['--save_as_dir', str(tmp_path / 'sr')]
    out_dir = out_dir or tmp_path / 'sr'
    lr_dir.mkdir()
    faces = [np.asarray(Image.fromarray(face).resize((64, 64), Image.BICUBIC)) for face in face_images(2, seed=9)]
    for index, face in enumerate(faces):
        Image.fromarray(face).save(lr_dir / f'{index}.png')
    code = run_test_py(['--gpus', '0', *checkpoint_flags, '--load_size', '64', '--dataset_name', 'single',
                            '--dataroot', str(lr_dir), *save_flags, '--num_threads', '0', '--reference_impl'])
    assert code == 0
    net = spec.build()
    net.load_state_dict(torch.load(weights_path, weights_only=True))
    with torch.no_grad():
        expected = tensor_to_uint8(net.eval()(uint8_to_tensor(np.stack(faces)).contiguous()).clamp(-1, 1))
    for index, image in enumerate(expected):
        np.testing.assert_array_equal(np.asarray(Image.open(out_dir / f'{index}.png')), image)
