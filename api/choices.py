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
from utils.devices import PRECISIONS, check_precision, native_bf16_cpu, select_device

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
DEFAULT_BATCH_SIZE = {('cpu', 'fp32'): 4, ('cpu', 'bf16'): 8, ('cpu', 'int8'): 8, 'cuda': 16}
# Inference precisions: the float ones, int8 (SPARNets on the CPU, models.int8) and auto (the fastest this device runs
# natively within the quality bounds: `auto_precision`).
INFERENCE_PRECISIONS = (*PRECISIONS, 'int8', 'auto')
# The models whose int8 holds the quality bounds (docs/speed.md, "Quality on trained weights"), which auto may pick:
# SPARNet's int8 is within 0.1 dB / 0.002 SSIM of fp32 on 500 LFW faces; SPARNetHD's is 36.9 dB from fp32 on real
# aligned faces, below the 38 dB bound.
INT8_AUTO_MODELS = ('sparnet',)

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
CHOICES: dict[str, Sequence[str]] = {'precision': INFERENCE_PRECISIONS, 'detector': DETECTORS}


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
    if precision == 'auto':
        return
    if precision == 'int8':
        if device.type != 'cpu':
            raise UserError(f'--precision int8 runs on the CPU (ONNX Runtime), not on {device}: use --precision '
                            'fp16 or bf16 there, or auto')
        return
    try:
        check_precision(device, precision)
    except ValueError as err:
        raise UserError(f'--precision {precision}: {err}') from err


def auto_precision(device: torch.device, int8: bool = True) -> tuple[str, str]:
    """(precision, why) of --precision auto on `device`: the fastest it runs natively that holds the quality bounds
    (docs/speed.md): bf16 on GPUs that have it, else fp16; on CPUs bf16 where it is native (AVX512-BF16, AMX), else
    int8 (`int8`: for a network that can be quantized, a SPARNet), else fp32."""
    if device.type == 'cuda':
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return 'bf16', 'this GPU has bf16'
        return 'fp16', 'this GPU has no bf16'
    if device.type != 'cpu':
        return 'fp32', f'reduced precisions run on CPUs and CUDA GPUs, not {device.type}'
    if native_bf16_cpu():
        return 'bf16', 'this CPU has AVX512-BF16 or AMX'
    if int8:
        return 'int8', 'this CPU has no native bf16'
    return 'fp32', 'this CPU has no native bf16, and int8 holds the quality bounds for SPARNet only'


def float_precision(device: torch.device, precision: str) -> str:
    """The precision of a network that runs in floating point only (the background upsampler, other projects'
    models) for the run's `precision`: int8 -> fp32, auto -> what auto picks without int8."""
    if precision == 'int8':
        return 'fp32'
    if precision == 'auto':
        return auto_precision(device, int8=False)[0]
    return precision


def default_batch_size(device: torch.device, precision: str) -> int:
    """Faces per batch of the network when not given (DEFAULT_BATCH_SIZE; auto: of what it picks for a SPARNet)."""
    if device.type == 'cuda':
        return DEFAULT_BATCH_SIZE['cuda']
    if precision == 'auto':
        precision = auto_precision(device)[0]
    return DEFAULT_BATCH_SIZE.get(('cpu', precision), DEFAULT_BATCH_SIZE['cpu', 'fp32'])
