"""Every path a run will write, known before any work: checked against the inputs and each other, then claimed.

A command declares what it reads (files, and folders with the files it takes from them) and what
it writes (folders it fills, single files, each input's own outputs, and families of files whose
number is not known beforehand, such as a photo's faces), then calls `check()`: one `UserError`
line when an output would replace or mix with an input, when two outputs (two inputs' results, or
a result and a report) would land on one path, or when an output cannot be written. `claimed()`
then holds the output folders for the run: a second run into the same folder (or one containing
it, or inside it) is refused in one line instead of racing the first, and the temporary files that
killed runs left for the planned outputs are removed (only those whose writer is gone:
`utils.atomic.is_abandoned`). Writes go through `utils.atomic` (temporary name, rename).

Paths are compared once resolved (links, `..`), whether they exist yet or not.
"""
import contextlib
import functools
import logging
import os
import re
import shutil
import stat as stat_module
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from utils.atomic import is_abandoned, part_target
from utils.cli import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent runs into one folder are not detected there
    fcntl = None

log = logging.getLogger('outputs')
OUTPUT_OF = 'the output of'
# Folders this process holds for a run, and how many claims hold each: a run started by another in this process
# (reproduce.py runs test.py) writes inside the folders of the first under its claim.
_held_here: dict[str, int] = {}
_held_here_lock = threading.Lock()


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


def _reads_everything(_path: str) -> bool:
    return True


@dataclass(frozen=True)
class _Input:
    what: str  # '--dataroot in'
    real: str
    is_folder: bool
    reads: Callable[[str], bool]


@dataclass(frozen=True)
class _Family:
    """The files of `folder` named `prefix` + a match of `tail` (a photo's `HQ/NNN.jpg`), all results of `source`."""
    what: str
    source: str
    folder: str  # real path
    prefix: str
    tail: re.Pattern


class OutputPlan:
    """The inputs and outputs of one run (see the module's docstring).

    `what` in messages: a flag and its value (`--save_json m.json`), or `the output of <input>`.
    """

    def __init__(self) -> None:
        self.inputs: list[_Input] = []
        self.folders: list[tuple[str, str, str]] = []  # (what, path as given, real path)
        self.files: dict[str, tuple[str, str]] = {}  # real path -> (what, path as given)
        self.families: dict[tuple[str, str], _Family] = {}  # (real folder, prefix) -> family
        self.problems: list[str] = []  # found while declaring: two outputs on one path
        self.shared: set[str] = set()  # folders not held exclusively
        self.set_aside: dict[str, Callable[[str], str | None]] = {}  # folder -> what moves its earlier contents

    # What the run reads.
    def reads_file(self, flag: str, path: str | None) -> None:
        if path:
            self.inputs.append(_Input(f'{flag} {path}', real_path(path), False, _reads_everything))

    def reads_folder(self, flag: str, path: str | None, reads: Callable[[str], bool] = _reads_everything) -> None:
        """A folder the run reads the files of: those `reads(path)` accepts (by name; they need not exist yet)."""
        if path:
            self.inputs.append(_Input(f'{flag} {path}', real_path(path), True, reads))

    def reads(self, flag: str, path: str | None, reads: Callable[[str], bool] = _reads_everything) -> None:
        """A file or a folder, whichever `path` is (a name that is neither, such as a model name, reads nothing
        here)."""
        if path and os.path.isdir(path):
            self.reads_folder(flag, path, reads)
        elif path and os.path.exists(path):
            self.reads_file(flag, path)

    # What the run writes.
    def writes_folder(self, flag: str, path: str | None, exclusive: bool = True,
                      set_aside: Callable[[str], str | None] | None = None) -> None:
        """A folder the run fills: claimed for the run, no other run writes into it meanwhile (unless not
        `exclusive`: a cache of downloads, where concurrent runs are safe). `set_aside(folder)` moves what an
        earlier run left there out of the way once the folder is held, and returns where (or None)."""
        if path:
            self.folders.append((f'{flag} {path}', path, real_path(path)))
            if not exclusive:
                self.shared.add(real_path(path))
            if set_aside is not None:
                self.set_aside[real_path(path)] = set_aside

    def writes_file(self, flag: str, path: str | None) -> None:
        """One file of a flag (`--report`)."""
        if path:
            self._add_file(f'{flag} {path}', path, real_path(path))

    def writes_files(self, outputs: Iterable[tuple[str, str]]) -> None:
        """(input, its output) pairs: each input's result, none of them on another's path."""
        real_folder = functools.lru_cache(maxsize=4096)(real_path)
        for source, path in outputs:
            folder, name = os.path.split(os.path.abspath(path))
            self._add_file(f'{OUTPUT_OF} {source}', path, os.path.join(real_folder(folder), name))

    def writes_family(self, source: str, folder: str, prefix: str, tail: re.Pattern) -> None:
        """The files of `folder` named `prefix` + a match of `tail`, results of input `source` (how many is not
        known beforehand). Two families overlap when they have the same folder and prefix."""
        family = _Family(f'{OUTPUT_OF} {source}', source, real_path(folder), prefix, tail)
        earlier = self.families.get((family.folder, prefix))
        if earlier is not None:
            self.problems.append(f'{_both(earlier.what, family.what)} would be written into {folder} '
                                 f'({prefix}...); {_advice(earlier.what, family.what)}')
        else:
            self.families[family.folder, prefix] = family

    def _add_file(self, what, path, real):
        earlier = self.files.get(real)
        if earlier is not None:
            self.problems.append(f'{_both(earlier[0], what)} would be written to {path}; {_advice(earlier[0], what)}')
        else:
            self.files[real] = (what, path)

    def family_of(self, real: str) -> _Family | None:
        """The family the file `real` belongs to, if any."""
        folder, name = os.path.split(real)
        for end in range(len(name) + 1):
            family = self.families.get((folder, name[:end]))
            if family is not None and family.tail.fullmatch(name[end:]):
                return family
        return None

    def check(self) -> None:
        """UserError in one line, before any work, for the first output that would harm an input or another
        output, or that cannot be written."""
        self._check_folders()
        if self.problems:
            raise UserError(self.problems[0])
        self._check_families()
        self._check_files()
        for what, path, _ in self.folders:
            check_writable_folder(what.split(' ')[0], path)

    def _check_folders(self):
        for index, (what, _, real) in enumerate(self.folders):
            for item in self.inputs:
                reason = _overlap(real, item.real) if item.is_folder else None
                if reason:
                    raise UserError(f'{what} {reason} {item.what}: outputs would replace or mix with the inputs, '
                                    'and a next run would read them as inputs; choose an output folder outside '
                                    'the inputs')
            for other_what, _, other_real in self.folders[index + 1:]:
                reason = _overlap(real, other_real)
                if reason:
                    raise UserError(f'{what} {reason} {other_what}: the two kinds of outputs would mix; choose two '
                                    'separate folders')

    def _check_families(self):
        for item in self.inputs:
            family = self.family_of(item.real)
            if family is not None:
                own = real_path(family.source) == item.real
                whose = 'its own results' if own else f'the results of {family.source}'
                raise UserError(f'{item.what} is one of the files {whose} replace in {family.folder}; copy it '
                                'elsewhere or choose another output folder')

    def _check_files(self):
        written_into = self._folders_written_into()
        input_files = {_file_id(item.real): item for item in self.inputs if not item.is_folder}
        input_files.pop(None, None)
        by_real = {item.real: item for item in self.inputs}
        input_folders = [item for item in self.inputs if item.is_folder]
        tops = [real for _, _, real in self.folders]
        for real, (what, path) in self.files.items():
            try:
                stat = os.stat(path)
            except OSError:
                stat = None
            if stat is not None and stat_module.S_ISDIR(stat.st_mode):
                raise UserError(f'{what} is a folder; give the path of a file')
            item = by_real.get(real) or (input_files.get((stat.st_dev, stat.st_ino)) if stat else None)
            if item is not None:
                raise UserError(f'{what} is {item.what}: the input would be overwritten; write it elsewhere')
            for item in input_folders:
                if is_within(real, item.real) and item.reads(real):
                    raise UserError(f'{what} is inside {item.what}, where such files are read as inputs; write it '
                                    'outside the input folder')
            if real in written_into:
                raise UserError(f'{what} is also a folder that {written_into[real]} writes into; choose another name')
            family = self.family_of(real)
            if family is not None:
                raise UserError(f'{_both(family.what, what)} would be written to {path}; {_advice(family.what, what)}')
            if not any(is_within(real, top) for top in tops):
                _check_file_folder(what, path)

    def _folders_written_into(self):
        """{real folder: what writes into it}: the output folders, and the folders the run's files and families
        would create."""
        found = {real: what for what, _, real in self.folders}
        owners = [(os.path.dirname(real), what) for real, (what, _) in self.files.items()]
        owners += [(family.folder, family.what) for family in self.families.values()]
        owners += [(os.path.dirname(real), what) for what, _, real in self.folders]
        for folder, what in owners:
            while folder not in found and not os.path.isdir(folder):
                found[folder] = what
                folder = os.path.dirname(folder)
        return found

    @contextlib.contextmanager
    def claimed(self, lock: bool = True) -> Iterator['OutputPlan']:
        """Hold the output folders for the run (`lock`; under torchrun the first process holds them for all),
        creating those missing (removed again if still empty at the end), and remove the temporary files that
        killed runs left for the planned outputs. UserError in one line when another run holds a folder."""
        created, held, held_here = [], [], []
        try:
            for what, path, real in self.folders:
                if real in self.set_aside and os.path.isdir(real):
                    self._set_aside(what, path, real, lock)
                created += _make_folders(real)
                if lock and real not in self.shared:
                    held += _hold_here(what, real, held_here)
            leftovers = self._remove_leftovers()
            if leftovers:
                log.info('removed %d temporary file(s) an interrupted run left, e.g. %s', len(leftovers),
                         leftovers[0])
            yield self
        finally:
            for fd in held:
                os.close(fd)
            _release_here(held_here)
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    os.rmdir(folder)  # only if empty: the run wrote nothing there

    def _set_aside(self, what, path, real, lock):
        """Move the earlier contents of `real` away, holding it meanwhile (refused if another run holds it)."""
        fds, registered = [], []
        try:
            if lock:
                fds = _hold_here(what, real, registered)
            moved = self.set_aside[real](path)
        finally:
            for fd in fds:
                os.close(fd)
            _release_here(registered)
        if moved:
            log.info('%s: what an earlier run left there moved to %s', what, moved)

    def _remove_leftovers(self):
        """Remove the temporary files of planned outputs whose writer is gone; returns their paths."""
        folders = {os.path.dirname(real) for real in self.files} | {folder for folder, _ in self.families}
        removed = []
        for folder in sorted(folders):
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for entry in entries:
                    target = part_target(entry.name) and os.path.join(folder, part_target(entry.name))
                    if target and (target in self.files or self.family_of(target)) and is_abandoned(entry.path):
                        with contextlib.suppress(FileNotFoundError):
                            os.remove(entry.path)
                            removed.append(entry.path)
        return removed


def _both(first, second):
    return f'{first} and {second}'


def _advice(first, second):
    if first.startswith(OUTPUT_OF) and second.startswith(OUTPUT_OF):
        return 'rename one of the two inputs'
    return 'choose another name'


def _overlap(real_a, real_b):
    if real_a == real_b:
        return 'is the same folder as'
    if is_within(real_a, real_b):
        return 'is inside'
    if is_within(real_b, real_a):
        return 'contains'
    return None


def _file_id(path):
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _check_file_folder(what, path):
    """UserError unless the folder of the file `path` exists and can be written in, or can be created."""
    existing = nearest_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(existing):
        raise UserError(f'{what}: cannot be created, {existing} is a file')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f'{what}: no permission to write in {existing}; choose another place')


def _make_folders(real):
    """Create `real` and the folders missing above it; returns those created, outermost first."""
    missing = []
    folder = real
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    os.makedirs(real, exist_ok=True)
    return list(reversed(missing))


def _hold_here(what, real, held_here):
    """`_hold(what, real)`, unless a run of this process holds `real` or a folder above it already; `real` is
    appended to `held_here` (counted in `_held_here`)."""
    with _held_here_lock:
        if not any(is_within(real, folder) for folder in _held_here):
            fds = _hold(what, real)
        else:
            fds = []
        _held_here[real] = _held_here.get(real, 0) + 1
        held_here.append(real)
    return fds


def _release_here(reals):
    with _held_here_lock:
        for real in reals:
            _held_here[real] -= 1
            if not _held_here[real]:
                del _held_here[real]


def _hold(what, real):
    """flock `real` exclusively and every folder above it shared: a run into the same folder, one above or one
    below it then finds a lock. Returns the descriptors to close at the end (none where flock is missing)."""
    if fcntl is None:
        return []
    held = []
    try:
        folder, mode = real, fcntl.LOCK_EX
        while True:
            try:
                fd = os.open(folder, os.O_RDONLY)
            except OSError:
                fd = None  # a folder this user cannot read: not locked
            if fd is not None:
                held.append(fd)
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise UserError(f'{what}: another run is writing into {"it" if folder == real else folder}; '
                                    'wait until it ends, or choose another output folder') from None
                except OSError:
                    pass  # a file system without flock: runs are not told apart there
            parent = os.path.dirname(folder)
            if parent == folder:
                return held
            folder, mode = parent, fcntl.LOCK_SH
    except BaseException:
        for fd in held:
            os.close(fd)
        raise
