"""Every path a run will write, known before any work: checked against the inputs and each other, then claimed.

A command declares what it reads (files, and folders with the files it takes from them) and what
it writes (folders it fills, single files, and each input's own outputs), then calls `check()`:
one `UserError` line when an output would replace or mix with an input, when two outputs (two
inputs' results, or a result and a report) would land on one path, or when an output cannot be
written. `claimed()` then holds the output folders for the run: a second run into the same folder
(or one containing it, or inside it) is refused in one line instead of racing the first, and the
temporary files that killed runs left for the planned outputs are removed (those whose writer is
gone: `utils.atomic.is_abandoned`). Writes go through `utils.atomic` (temporary name, rename).
"""
import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from utils.atomic import remove_family_leftovers, remove_leftover_parts
from utils.cli import UserError
from utils.paths import check_writable_folder, is_within, real_path

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent runs into one folder are not detected
    fcntl = None

log = logging.getLogger('outputs')


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
    """Files of one folder whose names match `names` (a photo's `HQ/NNN.jpg`): owned by one input's results."""
    what: str
    source: str  # the input, as given
    folder: str  # real path
    names: re.Pattern


@dataclass
class OutputPlan:
    """The inputs and outputs of one run (see the module's docstring).

    `what` in messages: a flag and its value (`--save_json m.json`), or `the output of <input>`.
    """

    inputs: list[_Input] = field(default_factory=list)
    folders: list[tuple[str, str, str]] = field(default_factory=list)  # (what, path as given, real path)
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # real path -> (what, path as given)
    families: list[_Family] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # found while declaring (two outputs on one path)

    # Declaring what the run reads.
    def reads_file(self, flag: str, path: str | None) -> None:
        if path:
            self.inputs.append(_Input(f'{flag} {path}', real_path(path), False, _reads_everything))

    def reads_folder(self, flag: str, path: str | None, reads: Callable[[str], bool] = _reads_everything) -> None:
        """A folder the run reads the files of: those `reads(path)` accepts (by name; they need not exist yet)."""
        if path:
            self.inputs.append(_Input(f'{flag} {path}', real_path(path), True, reads))

    def reads(self, flag: str, path: str | None, reads: Callable[[str], bool] = _reads_everything) -> None:
        """A file or a folder, whichever `path` is."""
        if path and os.path.isdir(path):
            self.reads_folder(flag, path, reads)
        else:
            self.reads_file(flag, path)

    # Declaring what the run writes.
    def writes_folder(self, flag: str, path: str | None) -> None:
        """A folder the run fills (claimed for the run: no other run writes into it meanwhile)."""
        if path:
            self.folders.append((f'{flag} {path}', path, real_path(path)))

    def writes_file(self, what: str, path: str | None) -> None:
        """One file; `what` is the flag (`--report`) or `the output of <input>`."""
        if not path:
            return
        real = real_path(path)
        label = what if what.startswith('the output of') else f'{what} {path}'
        earlier = self.files.get(real)
        if earlier is not None:
            self.problems.append(f'{_both(earlier[0], label)} would be written to {path}; '
                                 + _advice(earlier[0], label))
            return
        self.files[real] = (label, path)

    def writes_files(self, outputs: Iterable[tuple[str, str]]) -> None:
        """(input, its output) pairs: each input's result, none of them on another's path."""
        for source, path in outputs:
            self.writes_file(f'the output of {source}', path)

    def writes_family(self, source: str, folder: str, names: re.Pattern) -> None:
        """The files of `folder` named as `names` matches, all results of input `source` (their number unknown)."""
        self.families.append(_Family(f'the output of {source}', source, real_path(folder), names))

    def check(self) -> None:
        """UserError in one line, before any work, for the first output that would harm an input or another
        output, or that cannot be written."""
        if self.problems:
            raise UserError(self.problems[0])
        self._check_folders()
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
        seen = {}
        for family in self.families:
            key = (family.folder, family.names.pattern)
            if key in seen:
                raise UserError(f'{_both(seen[key], family.what)} would be written into {family.folder}; '
                                + _advice(seen[key], family.what))
            seen[key] = family.what
            for item in self.inputs:
                folder, name = os.path.split(item.real)
                if folder == family.folder and family.names.fullmatch(name):
                    whose = ('its own results' if real_path(family.source) == item.real
                             else f'the results of {family.source}')
                    raise UserError(f'{item.what} is one of the files {whose} replace in {family.folder}; copy it '
                                    'elsewhere or choose another output folder')

    def _check_files(self):
        written_into = self._folders_written_into()
        for real, (what, path) in self.files.items():
            if os.path.isdir(path):
                raise UserError(f'{what} is a folder; give the path of a file')
            for item in self.inputs:
                if real == item.real or _same_file(real, item.real):
                    raise UserError(f'{what} is {item.what}: the input would be overwritten; write it elsewhere')
                if item.is_folder and is_within(real, item.real) and item.reads(real):
                    raise UserError(f'{what} is inside {item.what}, where such files are read as inputs; write it '
                                    'outside the input folder')
            if real in written_into:
                raise UserError(f'{what} is also a folder that {written_into[real]} writes into; choose another name')
            family = self._family_of(real)
            if family is not None:
                raise UserError(f'{_both(family.what, what)} would be written to {path}; '
                                + _advice(family.what, what))
            if not any(is_within(real, folder) for _, _, folder in self.folders):
                _check_file_folder(what, path)

    def _family_of(self, real):
        folder, name = os.path.split(real)
        return next((family for family in self.families if family.folder == folder and family.names.fullmatch(name)),
                    None)

    def _folders_written_into(self):
        """{real folder: what writes into it}: the output folders and the folders the run's files and families
        would create."""
        found = {real: what for what, _, real in self.folders}
        owners = [(os.path.dirname(real), what) for real, (what, _) in self.files.items()]
        owners += [(family.folder, family.what) for family in self.families]
        for folder, what in owners:
            while folder not in found and not os.path.isdir(folder):
                found[folder] = what
                folder = os.path.dirname(folder)
        return found

    def planned_files(self) -> list[str]:
        """The single files of the plan, as given."""
        return [path for _, path in self.files.values()]

    @contextlib.contextmanager
    def claimed(self, lock: bool = True) -> Iterator['OutputPlan']:
        """Hold the output folders for the run (`lock`; under torchrun the first process holds them for all),
        creating those missing (removed again if still empty at the end), and remove the temporary files that
        killed runs left for the planned outputs. UserError in one line when another run holds a folder."""
        created, held = [], []
        try:
            for what, _, real in self.folders:
                created += _make_folders(real)
                if lock:
                    held += _hold(what, real)
            leftovers = remove_leftover_parts(path for _, path in self.files.values())
            leftovers += [path for family in self.families for path in remove_family_leftovers(family.folder,
                                                                                                family.names)]
            if leftovers:
                log.info('removed %d temporary file(s) an interrupted run left, e.g. %s', len(leftovers),
                         leftovers[0])
            yield self
        finally:
            for fd in held:
                os.close(fd)
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    os.rmdir(folder)  # only if empty: the run wrote nothing there


def _both(first, second):
    return f'{first} and {second}' if first != second else first


def _advice(first, second):
    if first.startswith('the output of') and second.startswith('the output of'):
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


def _check_file_folder(what, path):
    """UserError unless the folder of the file `path` exists and can be written in, or can be created."""
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f'{what}: cannot be created, {existing} is a file')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f'{what}: no permission to write in {existing}; choose another place')


def _same_file(real_a, real_b):
    try:
        return os.path.samefile(real_a, real_b)
    except OSError:
        return False


def _make_folders(real):
    """Create `real` and the folders missing above it; returns those created, outermost first."""
    missing = []
    folder = real
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    os.makedirs(real, exist_ok=True)
    return list(reversed(missing))


def _hold(what, real):
    """flock `real` exclusively and every folder above it shared: a run into the same folder, one above or one
    below it then finds a lock. Returns the descriptors to close at the end (none where flock is missing)."""
    if fcntl is None:
        return []
    held = []
    try:
        folder, mode = real, fcntl.LOCK_EX
        while True:
            with contextlib.suppress(OSError):
                fd = os.open(folder, os.O_RDONLY)
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
