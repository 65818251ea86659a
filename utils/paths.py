"""Paths compared once resolved (links, `..`), and the folder checks a command makes before any work: free
space, writable output folders. Where outputs may lie against the inputs is `utils.output_plan`'s rule."""
import os
import shutil

from utils.cli import UserError


def real_path(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def is_within(path: str, folder: str) -> bool:
    """Whether the real `path` is `folder` or below it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


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
