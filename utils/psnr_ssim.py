"""PSNR and SSIM as in the paper's tables: on the luminance Y, SSIM with a Gaussian window.

Both take HxWx3 RGB arrays on the 0-255 scale (uint8 or float) and compare them in float64.
"""
import math

import numpy as np
from skimage.metrics import structural_similarity

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11  # skimage's Gaussian window: 2 * int(3.5 * sigma + 0.5) + 1 pixels wide
Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
PSNR_CHANNELS = ('y', 'rgb')


def rgb_to_y(image):
    """Luma of an HxWx3 0-255 RGB image, `16 + (65.481 R + 128.553 G + 24.966 B) / 255`.

    MATLAB's `rgb2ycbcr` Y (BT.601, studio range 16-235), computed in float64 and
    neither rounded nor clipped, so no quantisation enters the metrics.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'expected an HxWx3 RGB image, found shape {image.shape}')
    return 16.0 + image @ Y_WEIGHTS


def _check_same_shape(result, gt):
    if np.shape(result) != np.shape(gt):
        raise ValueError(f'result and ground truth differ in shape: {np.shape(result)} vs {np.shape(gt)}')


def psnr(result, gt, channels='y'):
    """PSNR in dB over Y (`channels='y'`, the paper's protocol) or all RGB values (`'rgb'`).

    Identical images give `math.inf` (returned directly, without dividing by zero).
    """
    if channels not in PSNR_CHANNELS:
        raise ValueError(f'channels must be one of {PSNR_CHANNELS}, got {channels!r}')
    _check_same_shape(result, gt)
    if channels == 'y':
        result, gt = rgb_to_y(result), rgb_to_y(gt)
    mse = np.mean(np.square(np.asarray(result, dtype=np.float64) - np.asarray(gt, dtype=np.float64)))
    if mse == 0:
        return math.inf
    return float(10.0 * np.log10(DATA_RANGE ** 2 / mse))


def ssim(result, gt):
    """SSIM of Wang et al. (2004) on Y: 11x11 Gaussian window of sigma 1.5, population
    covariance, data range 255, mean over the positions where the window fits inside.

    The published `psnr_ssim.py` called skimage with these same settings.
    """
    _check_same_shape(result, gt)
    gt_y, result_y = rgb_to_y(gt), rgb_to_y(result)
    if min(gt_y.shape) < SSIM_WINDOW:
        raise ValueError(f'SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, '
                         f'found {gt_y.shape[1]}x{gt_y.shape[0]}')
    return float(structural_similarity(gt_y, result_y, gaussian_weights=True, sigma=SSIM_SIGMA,
                                       use_sample_covariance=False, data_range=DATA_RANGE))
