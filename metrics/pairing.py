"""Pairing results with their ground truth by name, never by sorted position.

A pair's key is the image's path relative to its folder without the extension, so
`results/sub/0001.png` pairs with `gt/sub/0001.jpg`.
"""
import logging
import os
from dataclasses import dataclass, field

from utils.cli import UserError
from utils.image_io import find_images


class PairingError(UserError):
    """The two folders cannot be paired: a folder is empty or missing, or a name is ambiguous."""


@dataclass(frozen=True)
class ImagePair:
    name: str
    result_path: str
    gt_path: str


@dataclass
class Pairing:
    pairs: list = field(default_factory=list)
    results_without_gt: list = field(default_factory=list)
    gt_without_result: list = field(default_factory=list)

    @property
    def unmatched(self) -> bool:
        return bool(self.results_without_gt or self.gt_without_result)


def name_key(rel_path: str) -> str:
    return os.path.splitext(rel_path)[0].replace(os.sep, '/')


def _index_by_name(rel_paths, folder):
    """{name key: relative path}; two files with one name (`a.png`, `a.jpg`) cannot be paired."""
    index = {}
    for rel_path in rel_paths:
        key = name_key(rel_path)
        if key in index:
            raise PairingError(f'{folder}: {index[key]} and {rel_path} have the same name {key!r}, '
                               'so it is unclear which one to compare; keep one of them')
        index[key] = rel_path
    return index


def list_folder_images(folder: str, flag: str) -> list[str]:
    """Relative image paths below `folder`; a clear error when it is missing or holds no image."""
    return find_images(folder, flag, PairingError)


def match_by_name(results_dir: str, gt_dir: str) -> Pairing:
    """Pairs of same-named images, plus the names found in only one of the folders."""
    results = _index_by_name(list_folder_images(results_dir, '--results_dir'), results_dir)
    gts = _index_by_name(list_folder_images(gt_dir, '--gt_dir'), gt_dir)
    pairing = Pairing()
    for key in sorted(results):
        if key in gts:
            pairing.pairs.append(ImagePair(key, os.path.join(results_dir, results[key]),
                                           os.path.join(gt_dir, gts[key])))
        else:
            pairing.results_without_gt.append(results[key])
    pairing.gt_without_result = sorted(gts[key] for key in gts if key not in results)
    return pairing


def _listing(names, limit=5):
    shown = ', '.join(names[:limit])
    return shown + (f' (+{len(names) - limit} more)' if len(names) > limit else '')


def unmatched_message(pairing: Pairing, results_dir: str, gt_dir: str) -> str:
    """One line naming what has no partner (the first few of each side)."""
    parts = []
    if pairing.results_without_gt:
        parts.append(f'{len(pairing.results_without_gt)} result(s) in {results_dir} have no ground truth '
                     f'of the same name in {gt_dir}: {_listing(pairing.results_without_gt)}')
    if pairing.gt_without_result:
        parts.append(f'{len(pairing.gt_without_result)} ground-truth image(s) in {gt_dir} have no result '
                     f'of the same name in {results_dir}: {_listing(pairing.gt_without_result)}')
    return '; '.join(parts)


def pair_folders(results_dir: str, gt_dir: str, skip_unmatched: bool = False,
                 log: logging.Logger | None = None) -> list[ImagePair]:
    """The matched pairs. Unmatched names are logged one by one; they stop the run unless
    `skip_unmatched`, and having no pair at all always does."""
    pairing = match_by_name(results_dir, gt_dir)
    if log is not None:
        level = log.warning if skip_unmatched else log.error
        for rel_path in pairing.results_without_gt:
            level('no ground truth for %s', os.path.join(results_dir, rel_path))
        for rel_path in pairing.gt_without_result:
            level('no result for %s', os.path.join(gt_dir, rel_path))
    if not pairing.pairs:
        raise PairingError(f'no image of {results_dir} has a ground truth of the same name in {gt_dir} '
                           '(pairs are matched by file name without the extension)')
    if pairing.unmatched and not skip_unmatched:
        raise PairingError(unmatched_message(pairing, results_dir, gt_dir)
                           + '. Pass --skip_unmatched to evaluate the matched pairs only')
    return pairing.pairs
