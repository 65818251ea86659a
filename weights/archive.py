"""Unpacking a downloaded tar archive so that nothing lands outside its folder, and nothing half-done stays.

Every member is checked before anything is written, so that a bad archive is refused with one
line naming the bad member: absolute paths, `..` climbing out, links pointing out (or written
through: a member below a link, or a link a later member would overwrite), device files and
FIFOs. tarfile's own `data` filter (Python 3.11.4+, PEP 706) then guards the extraction itself.
The archive is unpacked into a temporary folder beside the target, renamed into place only once
complete: the target folder, when it exists, holds a whole archive. A member's data is bounded by
the size its header declares; an archive declaring more than `MAX_EXPANSION` times its own size
(a compression bomb), or more than the target's free space, is refused before anything is written.
"""
import contextlib
import gzip
import os
import posixpath
import re
import shutil
import tarfile
import zlib
from collections.abc import Iterable

from utils.atomic import fsync_dir, temporary_path
from utils.cli import UserError
from utils.output_plan import free_space

# Test-set images (PNG, JPEG) barely compress; an archive unpacking to more than this many times its size is a bomb.
MAX_EXPANSION = 20
MIN_EXPANSION_BYTES = 64 << 20  # a small archive may unpack to this much whatever its size


class ArchiveError(UserError):
    """An archive is unsafe or unreadable; nothing of it was written."""


def read_members(tar: tarfile.TarFile, path: str, label: str) -> tuple[list[tarfile.TarInfo], int]:
    """(members, bytes their files declare), read one by one: ArchiveError as soon as the declared bytes exceed
    `MAX_EXPANSION` times the archive's size, before the rest is decompressed."""
    limit = max(MAX_EXPANSION * os.path.getsize(path), MIN_EXPANSION_BYTES)
    members, total = [], 0
    for member in tar:
        members.append(member)
        total += member.size if member.isfile() else 0
        if total > limit:
            raise ArchiveError(f'{label}: refused: its files would take more than {limit / 1e6:,.0f} MB, '
                               f'{MAX_EXPANSION} times the archive (a compression bomb?); nothing was extracted')
    return members, total


def _inside(path):
    """Whether a normalised relative POSIX path stays below the folder it is relative to."""
    return path != '..' and not path.startswith('../')


def _through_link(path, links):
    """The link among `links` that writing `path` would go through (an ancestor, or `path` itself), or None."""
    parts = path.split('/')
    return next((link for link in ('/'.join(parts[:end]) for end in range(1, len(parts) + 1)) if link in links),
                None)


def _member_problem(member, links):
    """Why `member` may not be extracted (a phrase), or None; `links` holds the links met so far."""
    name = member.name
    if name.startswith(('/', '\\')) or re.match(r'[A-Za-z]:', name):
        return 'has an absolute path'
    path = posixpath.normpath(name)
    if not _inside(path):
        return "would land outside the target folder ('..')"
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        kind = 'a device file' if member.ischr() or member.isblk() else 'a FIFO' if member.isfifo() else \
            'a special file'
        return f'is {kind}'
    link = _through_link(path, links)
    if link == path:
        return 'would replace a link of the same name, writing where it points'
    if link is not None:
        return f'would be written through the link {link!r}'
    if member.issym() or member.islnk():
        if member.linkname.startswith(('/', '\\')):
            return f'is a link to the absolute path {member.linkname!r}'
        start = posixpath.dirname(path) if member.issym() else ''  # hard links name a member of the archive
        target = posixpath.normpath(posixpath.join(start, member.linkname))
        if not _inside(target):
            return f'is a link pointing outside the target folder ({member.linkname!r})'
        if _through_link(target, links) not in (None, target):
            return f'is a link pointing through the link {_through_link(target, links)!r}'
        links.add(path)
    return None


def check_members(members: Iterable[tarfile.TarInfo], label: str) -> None:
    """Raise ArchiveError naming the first member that may not be extracted."""
    links = set()
    for member in members:
        problem = _member_problem(member, links)
        if problem:
            raise ArchiveError(f'{label}: refused: the member {member.name!r} {problem}; nothing was extracted')


@contextlib.contextmanager
def _open(path, label):
    """The archive open for reading, its read errors turned into one-line ArchiveErrors."""
    try:
        with tarfile.open(path, 'r:*') as tar:
            yield tar
    except tarfile.FilterError as err:
        raise ArchiveError(f'{label}: refused while unpacking: {err}') from err
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        reason = ' '.join(str(err).split())  # tarfile lists each compression it tried on its own line
        raise ArchiveError(f'{label}: not a readable tar archive ({err.__class__.__name__}: {reason}); '
                           'download it again') from err
    except OSError as err:
        raise ArchiveError(f'{label}: could not be unpacked ({err.strerror or err})') from err


def check_archive(path: str, label: str | None = None) -> None:
    """Read the whole archive and check its members; ArchiveError in one line when unreadable or unsafe."""
    label = label or path
    with _open(path, label) as tar:
        check_members(read_members(tar, path, label)[0], label)


def extract_archive(path: str, target: str, label: str | None = None) -> str:
    """Unpack the tar archive `path` (any compression) into the folder `target`, which must not exist.

    The members are checked first; they are extracted into a temporary folder beside `target`
    with tarfile's `data` filter, then that folder is renamed to `target`. On any failure the
    temporary folder is removed and `target` is not created.
    """
    label = label or path
    tmp = temporary_path(target)
    try:
        with _open(path, label) as tar:
            members, total = read_members(tar, path, label)
            check_members(members, label)
            free = free_space(target)
            if total > free:
                raise ArchiveError(f'{label}: needs {total / 1e6:,.1f} MB to unpack, {free / 1e6:,.1f} MB are free '
                                   f'beside {target}; free some space; nothing was extracted')
            tar.extractall(tmp, members=members, filter='data')
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isdir(target):
                raise
            shutil.rmtree(tmp)  # another process unpacked it meanwhile: keep its copy
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(os.path.dirname(target) or '.')
    return target
