"""Checks on the folders a command reads and writes, made before any work so that a bad one costs nothing.

An output folder must not be an input folder, lie inside one (a second run would read the first
run's outputs as inputs) or contain one (outputs would land in the input tree, and could replace
inputs whose relative path starts with the input folder's name), and no two output folders may
overlap. Paths are compared once resolved (links, `..`), whether the output folder exists yet or not.
"""
import os
import shutil
from collections.abc import Iterable, Sequence

from utils.cli import UserError


def real_path(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def is_within(path: str, folder: str) -> bool:
    """Whether the real `path` is `folder` or below it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _overlap(flag_a, path_a, flag_b, path_b, what_b):
    """The one-line reason why folders `a` (an output) and `b` may not be used together, or None."""
    real_a, real_b = real_path(path_a), real_path(path_b)
    if real_a == real_b:
        return f"{flag_a} {path_a} is the same folder as {flag_b} {path_b}: {what_b}"
    if is_within(real_a, real_b):
        return f"{flag_a} {path_a} is inside {flag_b} {path_b}: {what_b}"
    if is_within(real_b, real_a):
        return f"{flag_a} {path_a} contains {flag_b} {path_b}: {what_b}"
    return None


def check_separate_folders(inputs: Iterable[tuple[str, str | None]], outputs: Iterable[tuple[str, str]]) -> None:
    """UserError unless every output folder is apart from every input folder and from the other outputs.

    `inputs` and `outputs` are (flag, path) pairs; empty paths are left out.
    """
    inputs = [(flag, path) for flag, path in inputs if path]
    outputs = [(flag, path) for flag, path in outputs if path]
    for index, (out_flag, out_path) in enumerate(outputs):
        for in_flag, in_path in inputs:
            reason = _overlap(out_flag, out_path, in_flag, in_path,
                              'outputs would replace or mix with the inputs, and a next run would read them as '
                              'inputs; choose an output folder outside the input folder')
            if reason:
                raise UserError(reason)
        for other_flag, other_path in outputs[index + 1:]:
            reason = _overlap(out_flag, out_path, other_flag, other_path,
                              'the two kinds of outputs would mix; choose two separate folders')
            if reason:
                raise UserError(reason)


def nearest_existing(path: str) -> str:
    """`path` made absolute, or its nearest folder above that exists."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return existing


def free_space(path: str) -> int:
    """Bytes free on the file system that holds `path` (or would: its nearest existing folder)."""
    return shutil.disk_usage(nearest_existing(path)).free


def check_writable_folder(flag: str, path: str) -> None:
    """UserError unless `path` is a folder this process can write in, or one it can create.

    Nothing is created: the nearest existing folder on the way is checked instead.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path}: is a file, not a folder; choose a folder for the outputs")
    existing = nearest_existing(path)
    if not os.path.isdir(existing):
        raise UserError(f"{flag} {path}: cannot be created, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = 'write in it' if existing == os.path.abspath(path) else f'create it in {existing}'
        raise UserError(f"{flag} {path}: no permission to {what}; choose another output folder")


def check_output_folders(inputs: Iterable[tuple[str, str | None]], outputs: Sequence[tuple[str, str]]) -> None:
    """`check_separate_folders` and `check_writable_folder` for every output: the checks a command makes
    before any work."""
    check_separate_folders(inputs, outputs)
    for flag, path in outputs:
        if path:
            check_writable_folder(flag, path)
