"""PSNR and SSIM as in the paper's tables: on the luminance Y, SSIM with a Gaussian window.

Both take HxWx3 RGB arrays on the 0-255 scale (uint8 or float). By default Y is truncated to
uint8 before scoring, as the published `psnr_ssim.py` did, so the numbers compare with the
paper's; `y_quantization='float'` keeps Y in float64 (a few hundredths of a dB apart).
"""
import argparse
import math

import numpy as np
from skimage.metrics import structural_similarity

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11  # skimage's Gaussian window: 2 * int(3.5 * sigma + 0.5) + 1 pixels wide
Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
PSNR_CHANNELS = ('y', 'rgb')
Y_QUANTIZATIONS = ('uint8', 'float')
PUBLISHED_Y_QUANTIZATION = 'uint8'


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Luma of an HxWx3 0-255 RGB image, `16 + (65.481 R + 128.553 G + 24.966 B) / 255`.

    MATLAB's `rgb2ycbcr` Y (BT.601, studio range 16-235), in float64, with the published
    code's expression (so its rare float round-offs just below an integer are the same).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'expected an HxWx3 RGB image, found shape {image.shape}')
    return 16.0 + image @ Y_WEIGHTS


def y_channel(image: np.ndarray, y_quantization: str = PUBLISHED_Y_QUANTIZATION) -> np.ndarray:
    """Y as the metrics compare it: truncated to uint8 (`'uint8'`, numpy's `astype(np.uint8)` as
    the published `psnr_ssim.py`; Y of 0-255 RGB lies in 16-235) or kept in float64 (`'float'`)."""
    if y_quantization not in Y_QUANTIZATIONS:
        raise ValueError(f'y_quantization must be one of {Y_QUANTIZATIONS}, got {y_quantization!r}')
    y = rgb_to_y(image)
    return np.clip(y, 0, 255).astype(np.uint8) if y_quantization == 'uint8' else y


def describe_protocol(psnr_channels: str = 'y', y_quantization: str = PUBLISHED_Y_QUANTIZATION) -> str:
    """One line naming how PSNR and SSIM were computed, for reports."""
    y = ('Y truncated to uint8, as the published psnr_ssim.py' if y_quantization == 'uint8'
         else 'Y in float64 (not quantised)')
    psnr_on = 'RGB' if psnr_channels == 'rgb' else 'Y'
    return (f'Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, {y}; PSNR on {psnr_on}; '
            f'SSIM on Y, Gaussian window sigma {SSIM_SIGMA}, population covariance, data range 255')


def _check_same_shape(result, gt):
    if np.shape(result) != np.shape(gt):
        raise ValueError(f'result and ground truth differ in shape: {np.shape(result)} vs {np.shape(gt)}')


def psnr(result: np.ndarray, gt: np.ndarray, channels: str = 'y',
         y_quantization: str = PUBLISHED_Y_QUANTIZATION) -> float:
    """PSNR in dB over Y (`channels='y'`, the paper's protocol) or all RGB values (`'rgb'`).

    Identical images give `math.inf` (returned directly, without dividing by zero).
    """
    if channels not in PSNR_CHANNELS:
        raise ValueError(f'channels must be one of {PSNR_CHANNELS}, got {channels!r}')
    _check_same_shape(result, gt)
    if channels == 'y':
        result, gt = y_channel(result, y_quantization), y_channel(gt, y_quantization)
    mse = np.mean(np.square(np.asarray(result, dtype=np.float64) - np.asarray(gt, dtype=np.float64)))
    if mse == 0:
        return math.inf
    return float(10.0 * np.log10(DATA_RANGE ** 2 / mse))


def ssim(result: np.ndarray, gt: np.ndarray, y_quantization: str = PUBLISHED_Y_QUANTIZATION) -> float:
    """SSIM of Wang et al. (2004) on Y: 11x11 Gaussian window of sigma 1.5, population
    covariance, data range 255, mean over the positions where the window fits inside.

    The published `psnr_ssim.py` called skimage with these same settings on uint8 Y.
    """
    _check_same_shape(result, gt)
    gt_y, result_y = y_channel(gt, y_quantization), y_channel(result, y_quantization)
    if min(gt_y.shape) < SSIM_WINDOW:
        raise ValueError(f'SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, '
                         f'found {gt_y.shape[1]}x{gt_y.shape[0]}')
    return float(structural_similarity(gt_y, result_y, gaussian_weights=True, sigma=SSIM_SIGMA,
                                       use_sample_covariance=False, data_range=DATA_RANGE))


def add_y_quantization_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`--y_quantization uint8|float`, shared by the evaluation commands and train.py's validation."""
    parser.add_argument('--y_quantization', default=PUBLISHED_Y_QUANTIZATION, choices=Y_QUANTIZATIONS,
                        help='uint8 (default): Y truncated to 8 bits before PSNR and SSIM, as the published '
                             "psnr_ssim.py, so numbers compare with the paper's tables; float: Y kept in float64")
    return parser
