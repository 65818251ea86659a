"""The choices of a restoration, their defaults and their checks: one definition for the Python API and the
command line (whose flags take these kinds as their argparse `type=`), so that a bad value gives the same line in
both: `argument --batch_size: must be an integer 1 or more, got '0'`.
"""
import argparse
from collections.abc import Callable, Sequence
from typing import Any

import torch

from faces.detector import DETECTORS
from faces.search_plan import OVERLAP
from utils.cli import UserError, non_negative_int, number_type, positive_int
from utils.devices import PRECISIONS, check_precision, select_device

MAX_UPSCALE = 8
MAX_CRF = 51  # x264's range: 0 lossless, 51 worst
# --start / --end: 31 years, past any video, yet in every container's ticks (time bases down to 1/4.29e9 s in MP4
# and AVI, 1/1e9 in Matroska) it fits the 64-bit seek target (9.2e18): beyond, the seek would overflow
MAX_SECONDS = 10 ** 9
# The largest image a run takes (test.py: --load_size squared; whole photos: the photo after --test_upscale), as
# the web page's limit: beyond it memory, not the flag, would stop the run. --max_pixels raises it.
DEFAULT_MAX_PIXELS = 50_000_000
# Faces per batch of the network when not given: on the CPU what measured fastest per image for SPARNet
# (batches 2-16 measured; larger ones fall out of the caches), on GPUs larger.
DEFAULT_BATCH_SIZE = {('cpu', 'fp32'): 4, ('cpu', 'bf16'): 8, 'cuda': 16}

# The kinds of the values, as argparse types (their messages name the accepted range).
KINDS: dict[str, Callable[[str], Any]] = {
    'batch_size': positive_int,
    'face_batch_size': positive_int,
    'load_size': positive_int,
    'test_upscale': number_type(int, low=1, high=MAX_UPSCALE),
    'bg_tile': non_negative_int,
    'max_pixels': positive_int,
    'codeformer_fidelity': number_type(float, low=0, high=1),
    'min_face_size': positive_int,
    'detect_min_score': number_type(float),
    'detect_tile_size': number_type(int, low=2 * OVERLAP),
    'detect_workers': non_negative_int,
    'crf': number_type(int, low=0, high=MAX_CRF),
    'start': number_type(float, low=0, high=MAX_SECONDS),
    'end': number_type(float, low=0, high=MAX_SECONDS),
}
CHOICES: dict[str, Sequence[str]] = {'precision': tuple(PRECISIONS), 'detector': DETECTORS}


def checked(flag: str, value: Any) -> Any:
    """`value` of the flag `--<flag>` (None: not given, kept), checked as the command line checks it; UserError with
    the command line's line otherwise."""
    if value is None or flag not in KINDS and flag not in CHOICES:
        return value
    if flag in CHOICES:
        if value not in CHOICES[flag]:
            raise UserError(f"argument --{flag}: invalid choice: {value!r} (choose from "
                            f"{', '.join(map(repr, CHOICES[flag]))})")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f'argument --{flag}: must be {KINDS[flag].__name__}, got {value!r}')
    try:
        return KINDS[flag](repr(value))
    except argparse.ArgumentTypeError as err:
        raise UserError(f'argument --{flag}: {err}') from None


def device_of(device: torch.device | str | None) -> torch.device:
    """`device` as a torch.device; None: the GPU with the most free memory, else the CPU (as --gpus 1)."""
    if device is None:
        return select_device(1)[0]
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UserError(f'device {device!r}: not a device ({err}); give cpu, cuda or cuda:N') from None


def check_device_precision(device: torch.device, precision: str) -> None:
    """UserError unless `device` runs `precision` natively (the command line's --precision line)."""
    checked('precision', precision)
    try:
        check_precision(device, precision)
    except ValueError as err:
        raise UserError(f'--precision {precision}: {err}') from err


def default_batch_size(device: torch.device, precision: str) -> int:
    """Faces per batch of the network when not given (DEFAULT_BATCH_SIZE)."""
    if device.type == 'cuda':
        return DEFAULT_BATCH_SIZE['cuda']
    return DEFAULT_BATCH_SIZE.get(('cpu', precision), DEFAULT_BATCH_SIZE['cpu', 'fp32'])
