"""Writing a file so that its name only ever holds a complete file: temporary file, fsync, rename.

A temporary file is locked (flock) by its writer from its creation to its rename: the lock ends with
the writer, however it ends, so a leftover is removed only once its writer is gone, never while another
run is still writing it.
"""
import contextlib
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: no flock; leftovers are then told apart by their age only
    fcntl = None

PART_SUFFIX = '.part'
# The temporary name of `temporary_path`, the final file's name in group 1.
PART_NAME = re.compile(r'(.+)\.\d+-[0-9a-f]{8}' + re.escape(PART_SUFFIX))
# Without flock, a leftover younger than this may still have a live writer.
UNLOCKED_LEFTOVER_AGE = 24 * 3600


def temporary_path(path: os.PathLike | str) -> str:
    """`<path>.<pid>-<random>.part`: next to `path` (same file system), unique per process and call."""
    return f'{path}.{os.getpid()}-{secrets.token_hex(4)}{PART_SUFFIX}'


class LockedTemporary:
    """A new temporary file for `path` (`temporary_path`), created empty and locked until `release()`.

    Whoever writes it (this process, or a library opening `.path` by name, as FFmpeg does) does so
    under the lock; `remove_leftover_parts` leaves it alone until the lock is released or its
    holder dies.
    """

    def __init__(self, path: os.PathLike | str) -> None:
        self.path = temporary_path(path)
        self._fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Remove the file (if still there) and release the lock."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        self.release()


def is_abandoned(part_path: str) -> bool:
    """Whether the temporary file `part_path` has no live writer: its lock is free (or, without flock, it is
    older than a day). A file that cannot be opened is left alone."""
    if fcntl is None:
        with contextlib.suppress(OSError):
            return os.path.getmtime(part_path) < time.time() - UNLOCKED_LEFTOVER_AGE
        return False
    try:  # for writing where possible: NFS grants an exclusive lock only to a writer
        fd = os.open(part_path, os.O_RDWR)
    except OSError:
        try:
            fd = os.open(part_path, os.O_RDONLY)
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def part_target(name: str) -> str:
    """The file name a temporary file `name` (`temporary_path`) was to become, else ''."""
    match = PART_NAME.fullmatch(name)
    return match.group(1) if match else ''


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
        self.staged: list[tuple[LockedTemporary, str]] = []  # (temporary file, final path)

    @contextlib.contextmanager
    def open(self, path: str, mode: str = 'wb', **open_kwargs: Any) -> Iterator[IO[Any]]:
        """Yield a file for the new content of `path`; flushed and fsynced when the block ends."""
        os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
        temporary = LockedTemporary(path)
        self.staged.append((temporary, path))
        with open(temporary.path, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())

    def commit(self) -> None:
        """Rename every staged file into place (OSError: the ones not yet renamed stay staged)."""
        folders = {os.path.dirname(path) or '.' for _, path in self.staged}
        while self.staged:
            temporary, path = self.staged[0]
            os.replace(temporary.path, path)
            temporary.release()
            self.staged.pop(0)
        for folder in folders:
            fsync_dir(folder)

    def discard(self) -> None:
        """Remove the staged files: every final name keeps what it held."""
        for temporary, _ in self.staged:
            temporary.discard()
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
