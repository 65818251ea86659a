"""Unpacking a downloaded tar archive so that nothing lands outside its folder, and nothing half-done stays.

Every member is checked before anything is written, so that a bad archive is refused with one
line naming the bad member: absolute paths, `..` climbing out, links pointing out (or written
through: a member below a link, or a link a later member would overwrite), device files and
FIFOs. tarfile's own `data` filter (Python 3.11.4+, PEP 706) then guards the extraction itself.
The archive is unpacked into a temporary folder beside the target, renamed into place only once
complete: the target folder, when it exists, holds a whole archive. A member's data is bounded by
the size its header declares; an archive declaring more than `MAX_EXPANSION` times its own size
(a compression bomb), or more than the target's free space, is refused before anything is written.

Extended headers (PAX records, GNU long names and links) count toward those bounds too, and are
bounded themselves: tarfile reads each one whole into memory, so a few hundred KB of gzip could
declare a header of gigabytes. `_BoundedTarInfo` checks the size a header declares before tarfile
reads it (`MAX_HEADER_BYTES` for one member, `MAX_HEADERS_BYTES` for the archive), and refuses
GNU sparse members, whose maps tarfile reads without a bound (test sets hold none).
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
# PAX records hold a few hundred bytes (a path, times), a GNU long name a path: tarfile reads these whole.
MAX_HEADER_BYTES = 1 << 20  # the extended headers of one member, with the global ones before it
MAX_HEADERS_BYTES = 32 << 20  # those of all the members (tarfile keeps each member's PAX records)
EXTENDED_HEADERS = {tarfile.XHDTYPE: 'a PAX extended header', tarfile.SOLARIS_XHDTYPE: 'a PAX extended header',
                    tarfile.XGLTYPE: 'a PAX global header', tarfile.GNUTYPE_LONGNAME: 'a GNU long name',
                    tarfile.GNUTYPE_LONGLINK: 'a GNU long link name'}


class ArchiveError(UserError):
    """An archive is unsafe or unreadable; nothing of it was written."""


class _HeaderBomb(ArchiveError):
    """Raised inside tarfile's header reading; `_open` adds the archive's name."""


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's member header reader (its comments name `_proc_member` as the method a subclass overrides),
    refusing an extended header whose declared size is over the bounds before tarfile reads it, and GNU sparse
    members."""

    def _proc_member(self, tar):
        if self.type in EXTENDED_HEADERS:
            tar.member_header_bytes += self.size
            tar.header_bytes += self.size
            if self.type == tarfile.XGLTYPE:
                tar.global_header_bytes += self.size
            declared = f'{EXTENDED_HEADERS[self.type]} at byte {self.offset:,} declares {self.size / 1e6:,.1f} MB'
            if tar.member_header_bytes > MAX_HEADER_BYTES:
                raise _HeaderBomb(f'{declared}, more than the {MAX_HEADER_BYTES / 1e6:.1f} MB the headers of a '
                                  'member may take (a header bomb?)')
            if tar.header_bytes > MAX_HEADERS_BYTES:
                raise _HeaderBomb(f"{declared}, bringing the archive's headers over {MAX_HEADERS_BYTES / 1e6:.1f} MB "
                                  '(a header bomb?)')
        elif self.type == tarfile.GNUTYPE_SPARSE:
            self._refuse_sparse()
        else:
            tar.member_header_bytes = tar.global_header_bytes  # the next member's headers start from the global ones
        return super()._proc_member(tar)

    def _proc_gnusparse_10(self, member, pax_headers, tar):
        """GNU sparse 1.0 (PAX): tarfile would read its map from the data without a bound."""
        member._refuse_sparse()

    def _refuse_sparse(self):
        raise _HeaderBomb(f'the member at byte {self.offset:,} is a GNU sparse file, whose map tarfile reads '
                          'without a bound (sparse members are not accepted)')


class _BoundedTarFile(tarfile.TarFile):
    """A TarFile reading its members with `_BoundedTarInfo`; counts the extended headers' bytes."""

    tarinfo = _BoundedTarInfo
    header_bytes = 0  # every extended header's declared bytes so far
    member_header_bytes = 0  # those of the member being read, with the global ones
    global_header_bytes = 0


def _read_members(tar: _BoundedTarFile, path: str, label: str) -> tuple[list[tarfile.TarInfo], int]:
    """(members, bytes their files and extended headers declare), read one by one: ArchiveError as soon as the
    declared bytes exceed `MAX_EXPANSION` times the archive's size, before the rest is decompressed."""
    limit = max(MAX_EXPANSION * os.path.getsize(path), MIN_EXPANSION_BYTES)
    members, files = [], 0
    for member in tar:
        members.append(member)
        files += member.size if member.isfile() else 0
        if files + tar.header_bytes > limit:
            raise ArchiveError(f'{label}: refused: its files and headers would take more than {limit / 1e6:,.0f} '
                               f'MB, {MAX_EXPANSION} times the archive (a compression bomb?); nothing was extracted')
    return members, files + tar.header_bytes


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
        with _BoundedTarFile.open(path, 'r:*') as tar:
            yield tar
    except _HeaderBomb as err:
        raise ArchiveError(f'{label}: refused: {err}; nothing was extracted') from err
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
        check_members(_read_members(tar, path, label)[0], label)


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
            members, total = _read_members(tar, path, label)
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
