"""Writing a file so that its name only ever holds a complete file: temporary file, fsync, rename."""
import contextlib
import os
import re
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

PART_SUFFIX = '.part'
# The temporary name of `temporary_path`, the final file's name in group 1.
PART_NAME = re.compile(r'(.+)\.\d+-[0-9a-f]{8}' + re.escape(PART_SUFFIX))


def temporary_path(path: os.PathLike | str) -> str:
    """`<path>.<pid>-<random>.part`: next to `path` (same file system), unique per process and call."""
    return f'{path}.{os.getpid()}-{secrets.token_hex(4)}{PART_SUFFIX}'


def part_target(name: str) -> str:
    """The file name a temporary file `name` (`temporary_path`) was to become, else ''."""
    match = PART_NAME.fullmatch(name)
    return match.group(1) if match else ''


def remove_leftover_parts(paths: Iterable[str]) -> list[str]:
    """Remove the temporary files of `paths` that a killed writer left (a kill -9 between write and rename).

    Only those of `paths`: other processes may be writing other names in the same folders.
    Returns the paths removed.
    """
    names_by_folder = defaultdict(set)
    for path in paths:
        folder, name = os.path.split(path)
        names_by_folder[folder].add(name)
    removed = []
    for folder, names in names_by_folder.items():
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(folder or '.') as entries:
            for entry in entries:
                if part_target(entry.name) in names:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(entry.path)
                        removed.append(entry.path)
    return removed


def fsync_dir(folder: str) -> None:
    """Make a rename in `folder` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class StagedFiles:
    """Files written to temporary names now and put in place together later, or removed.

    `commit()` renames them in the order they were opened. Until then every name keeps its old
    file, so a failed write (a full disk) changes none of them; the renames write no data, and
    only a crash between two of them can leave the first names new and the last ones old.
    """

    def __init__(self) -> None:
        self.staged = []  # (temporary path, final path)

    @contextlib.contextmanager
    def open(self, path: str, mode: str = 'wb', **open_kwargs: Any) -> Iterator[IO[Any]]:
        """Yield a file for the new content of `path`; flushed and fsynced when the block ends."""
        os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
        tmp_path = temporary_path(path)
        self.staged.append((tmp_path, path))
        with open(tmp_path, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())

    def commit(self) -> None:
        """Rename every staged file into place (OSError: the ones not yet renamed stay staged)."""
        folders = {os.path.dirname(path) or '.' for _, path in self.staged}
        while self.staged:
            os.replace(*self.staged[0])
            self.staged.pop(0)
        for folder in folders:
            fsync_dir(folder)

    def discard(self) -> None:
        """Remove the staged files: every final name keeps what it held."""
        for tmp_path, _ in self.staged:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp_path)
        self.staged = []


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb', check: Callable[[str], object] | None = None,
                 **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Yield a file open for writing that replaces `path` only once written, flushed and fsynced.

    `check(temporary path)` may inspect the complete file and raise to refuse it. On any failure
    (an exception in the block, in `check` or in the rename) the temporary file is removed, the
    exception propagates and `path` keeps what it held before. Concurrent writers each use their
    own temporary file; the last rename wins with a complete file.
    """
    staged = StagedFiles()
    try:
        with staged.open(path, mode, **open_kwargs) as handle:
            yield handle
        if check is not None:
            check(handle.name)
        staged.commit()
    except BaseException:
        staged.discard()
        raise
