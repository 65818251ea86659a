"""Writing a file so that its name only ever holds a complete file: temporary file, fsync, rename."""
import contextlib
import os
import secrets

PART_SUFFIX = '.part'


def temporary_path(path):
    """`<path>.<pid>-<random>.part`: next to `path` (same file system), unique per process and call."""
    return f'{path}.{os.getpid()}-{secrets.token_hex(4)}{PART_SUFFIX}'


def fsync_dir(folder):
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


@contextlib.contextmanager
def atomic_write(path, mode='wb', check=None, **open_kwargs):
    """Yield a file open for writing that replaces `path` only once written, flushed and fsynced.

    `check(temporary path)` may inspect the complete file and raise to refuse it. On any failure
    (an exception in the block, in `check` or in the rename) the temporary file is removed, the
    exception propagates and `path` keeps what it held before. Concurrent writers each use their
    own temporary file; the last rename wins with a complete file.
    """
    folder = os.path.dirname(path) or '.'
    os.makedirs(folder, exist_ok=True)
    tmp_path = temporary_path(path)
    try:
        with open(tmp_path, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise
    fsync_dir(folder)
