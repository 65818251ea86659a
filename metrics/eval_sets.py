"""The test sets of the paper's tables: where they are assumed to be, and finding them in a folder by name.

The original release packs them in `test_dirs.tgz`; its README only says to put the data in
`./test_dirs`, and its scripts read `test_dirs/Helen_test_DIC/LR` (scored against
`test_dirs/Helen_test_DIC/HR`), `test_dirs/CelebA-TestN` and, for FID, `test_dirs/CelebAHQ-Test-HR`.
TEST_SETS holds that layout (the `assumed_*` paths) and the names to look for when a copy is laid
out otherwise: folder names are compared without case, `-`, `_`, spaces and dots, and searched a
few levels deep (an archive may or may not wrap everything in a `test_dirs/` folder).
"""
import fnmatch
import os
from dataclasses import dataclass

from utils.cli import UserError
from utils.image_io import find_images, list_images

SEARCH_DEPTH = 3  # levels of folders below the given one that are searched


class EvalSetNotFound(UserError):
    """A test set's folders are not where they were looked for."""


@dataclass(frozen=True)
class EvalSet:
    """One test set: its inputs, its ground truth, and how to recognise their folders.

    The set's folder is a folder whose name matches `folder_names`; its inputs are a subfolder
    named like `input_names` (or, with `inputs_in_folder`, the folder itself when it has no
    such subfolder), its ground truth a subfolder named like `gt_names`, else a folder anywhere
    named like `gt_elsewhere`. Names are fnmatch patterns on normalised names (`normalized_name`).
    """

    name: str
    label: str
    assumed_inputs: str  # relative to the test_dirs folder, as the original scripts read it
    assumed_gt: str
    input_flag: str  # flags (without --) that give the folders by hand; upper-cased: test.sh's variables
    gt_flag: str
    expected_images: int  # inputs of the published set
    batch_size: int  # default faces per batch (fits a GPU or a laptop's memory)
    folder_names: tuple
    input_names: tuple
    gt_names: tuple
    inputs_in_folder: bool = False
    gt_elsewhere: tuple = ()

    @property
    def flags(self) -> str:
        return f'--{self.input_flag} DIR --{self.gt_flag} DIR'


TEST_SETS = {test_set.name: test_set for test_set in (
    # DICNet's Helen test set: 16x16 LR faces and their 128x128 HR
    EvalSet('helen', 'Helen', 'Helen_test_DIC/LR', 'Helen_test_DIC/HR', 'helen_lr', 'helen_hr', 50, 16,
            folder_names=('helen*',), input_names=('lr', 'lq', 'input*'), gt_names=('hr', 'gt', 'hq')),
    # 512x512 low-quality faces; FID against the (unpaired) CelebA-HQ test faces
    EvalSet('celeba_testn', 'CelebA-TestN', 'CelebA-TestN', 'CelebAHQ-Test-HR', 'celeba_testn', 'celeba_testn_hr',
            1117, 2,
            folder_names=('celebatestn', 'celebatestnlq', 'celebatestnlr'), input_names=('lq', 'lr', 'input*'),
            gt_names=('hr', 'gt', 'hq'), inputs_in_folder=True,
            gt_elsewhere=('celebahqtest*', 'celebatestnhr', 'celebatestngt', 'celebatestnhq', 'celebahq')),
)}


@dataclass(frozen=True)
class EvalSetFolders:
    """Where one test set is: its input and ground-truth folders, and their image counts."""

    test_set: EvalSet
    inputs: str
    gt: str
    input_images: int
    gt_images: int


def normalized_name(name: str) -> str:
    """'Helen_test-DIC ' -> 'helentestdic': names compared without case, '-', '_', spaces and dots."""
    return ''.join(char for char in name.lower() if char not in '-_ .')


def _matches(folder, patterns):
    return any(fnmatch.fnmatchcase(normalized_name(os.path.basename(folder)), pattern) for pattern in patterns)


def _subfolders(folder):
    try:
        return sorted(entry.path for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith('.'))
    except OSError:
        return []


def _folders_below(root, depth=SEARCH_DEPTH):
    """`root` and its subfolders down to `depth` levels, shallowest first (sorted within a level)."""
    level, found = [root], []
    for _ in range(depth + 1):
        found += level
        level = [sub for folder in level for sub in _subfolders(folder)]
    return found


def _has_images(folder):
    return os.path.isdir(folder) and bool(list_images(folder))


def _first_with_images(folders, patterns):
    return next((folder for folder in folders if _matches(folder, patterns) and _has_images(folder)), None)


def _inputs_of(folder, test_set):
    inputs = _first_with_images(_subfolders(folder), test_set.input_names)
    if inputs is None and test_set.inputs_in_folder and _has_images(folder) and not any(
            _matches(sub, test_set.input_names + test_set.gt_names) for sub in _subfolders(folder)):
        inputs = folder
    return inputs


def _listing(root, folders, limit=12):
    names = [os.path.relpath(folder, root) + '/' for folder in folders if folder != root]
    shown = ', '.join(names[:limit]) or 'no folders'
    return shown + (f' (+{len(names) - limit} more)' if len(names) > limit else '')


def discover(test_set: EvalSet, root: str) -> tuple[str, str]:
    """(inputs, ground truth) folders of `test_set` below `root`; EvalSetNotFound in one line when absent."""
    if not os.path.isdir(root):
        raise EvalSetNotFound(f'{root}: no such folder; give the unpacked test sets with --test_dirs DIR')
    folders = _folders_below(root)
    for folder in folders:
        if not _matches(folder, test_set.folder_names):
            continue
        inputs = _inputs_of(folder, test_set)
        gt = _first_with_images(_subfolders(folder), test_set.gt_names) or \
            _first_with_images(folders, test_set.gt_elsewhere)
        if inputs and gt:
            return inputs, gt
    raise EvalSetNotFound(
        f'could not find the {test_set.label} test set (inputs like {test_set.assumed_inputs}, ground truth like '
        f'{test_set.assumed_gt}) in {root}; found: {_listing(root, folders)}. Give the unpacked test sets with '
        f'--test_dirs DIR, or this set\'s folders with {test_set.flags}')


def locate(test_set: EvalSet, root: str | None = None, inputs: str | None = None,
           gt: str | None = None) -> EvalSetFolders:
    """EvalSetFolders of `test_set`: `inputs` / `gt` when given, the rest found below `root`."""
    if not (inputs and gt):
        if root is None:
            raise EvalSetNotFound(f'the {test_set.label} test set is not given: pass --test_dirs DIR or '
                                  f'{test_set.flags}')
        found_inputs, found_gt = discover(test_set, root)
        inputs, gt = inputs or found_inputs, gt or found_gt
    input_images = len(find_images(inputs, f'--{test_set.input_flag}', EvalSetNotFound))
    gt_images = len(find_images(gt, f'--{test_set.gt_flag}', EvalSetNotFound))
    return EvalSetFolders(test_set, os.path.abspath(inputs), os.path.abspath(gt), input_images, gt_images)
