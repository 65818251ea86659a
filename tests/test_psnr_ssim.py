"""PSNR / SSIM of the paper's protocol (Y truncated to uint8, as published) and of float Y, against
hand-computed values, a slow window-by-window reference and skimage."""
import math
import warnings

import numpy as np
import pytest
import skimage.data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from metrics.psnr_ssim import describe_protocol, psnr, rgb_to_y, ssim, y_channel

WHITE, BLACK, RED = (255, 255, 255), (0, 0, 0), (255, 0, 0)
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def image(*pixels):
    return np.array([pixels], dtype=np.uint8)


def test_y_by_hand():
    # 16 + (65.481 R + 128.553 G + 24.966 B) / 255; the three weights add up to 219.
    y = rgb_to_y(np.array([[WHITE, BLACK, RED, (0, 255, 0), (0, 0, 255), (10, 200, 30)]], dtype=np.uint8))
    expected = [235.0, 16.0, 81.481, 144.553, 40.966, 16 + (654.81 + 25710.6 + 748.98) / 255]
    assert y.dtype == np.float64
    np.testing.assert_allclose(y[0], expected, rtol=0, atol=1e-12)


def test_y_is_not_rounded():
    assert rgb_to_y(image((1, 0, 0)))[0, 0] == pytest.approx(16.25678823529, abs=1e-10)


def hand_y(rgb):
    """Y by the formula, written out, then truncated: the published protocol, independently."""
    r, g, b = np.moveaxis(np.asarray(rgb, dtype=np.float64), -1, 0)
    return np.floor(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255)


def test_y_channel_truncates_to_uint8_by_default():
    pixels = image(WHITE, BLACK, RED, (10, 200, 30), (3, 0, 0), (254, 254, 254))
    # Y 235, 16, 81.481, 122.331, 16.770, 234.141: truncated, not rounded (16.770 -> 16, not 17).
    y = y_channel(pixels)
    assert y.dtype == np.uint8 and y[0].tolist() == [235, 16, 81, 122, 16, 234]
    np.testing.assert_array_equal(y, hand_y(pixels))
    np.testing.assert_array_equal(y_channel(pixels, 'float'), rgb_to_y(pixels))


def test_psnr_on_y_by_hand():
    # Y: white 235 vs red 81.481 (uint8: 81) in one of two pixels, black = black in the other.
    assert psnr(image(RED, BLACK), image(WHITE, BLACK)) == pytest.approx(
        10 * math.log10(255 ** 2 / (154 ** 2 / 2)), abs=1e-9)
    value = psnr(image(RED, BLACK), image(WHITE, BLACK), y_quantization='float')
    assert value == pytest.approx(10 * math.log10(255 ** 2 / (153.519 ** 2 / 2)), abs=1e-9)
    assert value == pytest.approx(7.4179, abs=1e-4)


def test_truncation_changes_psnr_by_hand():
    # Y of the result: 16.770 and 235; of the truth: 16 and 234.141.
    result, gt = image((3, 0, 0), WHITE), image(BLACK, (254, 254, 254))
    # uint8 (truncated) Y: 16 vs 16 and 235 vs 234 -> MSE 1/2.
    assert psnr(result, gt) == pytest.approx(10 * math.log10(255 ** 2 / 0.5), abs=1e-9)
    assert psnr(result, gt) == pytest.approx(51.1411, abs=1e-4)
    # Rounded Y would give 17 vs 16 and 235 vs 234 -> MSE 1, 48.1308 dB: truncation is not rounding.
    assert psnr(result, gt) != pytest.approx(10 * math.log10(255 ** 2), abs=1e-3)
    # Float Y: differences 0.770365 and 0.858824.
    float_mse = ((3 * 65.481 / 255) ** 2 + (235 - (16 + 219 * 254 / 255)) ** 2) / 2
    assert psnr(result, gt, y_quantization='float') == pytest.approx(10 * math.log10(255 ** 2 / float_mse), abs=1e-9)
    assert psnr(result, gt, y_quantization='float') == pytest.approx(49.8992, abs=1e-4)


def test_truncation_can_make_different_images_identical():
    # Y 16.770 and 16 both truncate to 16: the published protocol sees no difference.
    result, gt = np.full((16, 16, 3), (3, 0, 0), np.uint8), np.zeros((16, 16, 3), np.uint8)
    assert psnr(result, gt) == math.inf and ssim(result, gt) == pytest.approx(1.0, abs=1e-12)
    mu = 16 + 3 * 65.481 / 255  # flat images: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    assert ssim(result, gt, 'float') == pytest.approx((2 * mu * 16 + C1) / (mu ** 2 + 16 ** 2 + C1), abs=1e-12)
    assert ssim(result, gt, 'float') < 1


def test_psnr_on_rgb_by_hand():
    # Two of the six values differ by 255: MSE = 255^2 / 3, PSNR = 10 log10(3).
    assert psnr(image(RED, BLACK), image(WHITE, BLACK), 'rgb') == pytest.approx(10 * math.log10(3), abs=1e-12)


def test_psnr_agrees_with_skimage():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (32, 24, 3), dtype=np.uint8)
    result = np.clip(gt + rng.normal(0, 12, gt.shape), 0, 255).astype(np.uint8)
    assert psnr(result, gt, 'rgb') == pytest.approx(peak_signal_noise_ratio(gt, result, data_range=255), abs=1e-10)
    assert psnr(result, gt, y_quantization='float') == pytest.approx(
        peak_signal_noise_ratio(rgb_to_y(gt), rgb_to_y(result), data_range=255), abs=1e-10)
    assert psnr(result, gt) == pytest.approx(
        peak_signal_noise_ratio(hand_y(gt), hand_y(result), data_range=255), abs=1e-10)


def test_identical_images_give_inf_psnr_and_ssim_one_without_warning():
    gt = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert psnr(gt.copy(), gt) == math.inf
        assert psnr(gt.copy(), gt, 'rgb') == math.inf
        assert ssim(gt.copy(), gt) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_flat_images_by_hand():
    # No variance anywhere: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) with Y 235 and 16.
    gt, result = np.full((16, 16, 3), 255, np.uint8), np.zeros((16, 16, 3), np.uint8)
    assert ssim(result, gt) == pytest.approx((2 * 235 * 16 + C1) / (235 ** 2 + 16 ** 2 + C1), abs=1e-12)


def slow_ssim(x, y, radius=5, sigma=1.5):
    """Wang et al. window by window: Gaussian-weighted means, population (co)variances, mean over
    the positions where the whole 11x11 window lies inside the image."""
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma ** 2))
    weights /= weights.sum()
    scores = []
    for i in range(radius, x.shape[0] - radius):
        for j in range(radius, x.shape[1] - radius):
            wx = x[i - radius:i + radius + 1, j - radius:j + radius + 1]
            wy = y[i - radius:i + radius + 1, j - radius:j + radius + 1]
            mx, my = (weights * wx).sum(), (weights * wy).sum()
            vx, vy = (weights * (wx - mx) ** 2).sum(), (weights * (wy - my) ** 2).sum()
            cov = (weights * (wx - mx) * (wy - my)).sum()
            scores.append((2 * mx * my + C1) * (2 * cov + C2) / ((mx ** 2 + my ** 2 + C1) * (vx + vy + C2)))
    return np.mean(scores)


def test_ssim_matches_a_window_by_window_reference():
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 256, (23, 19, 3), dtype=np.uint8)
    result = np.clip(gt * 0.7 + rng.normal(30, 20, gt.shape), 0, 255).astype(np.uint8)
    expected = slow_ssim(hand_y(gt), hand_y(result))
    expected_float = slow_ssim(rgb_to_y(gt), rgb_to_y(result))
    assert 0.2 < expected < 0.95 and abs(expected - expected_float) > 1e-4
    assert ssim(result, gt) == pytest.approx(expected, abs=1e-10)
    assert ssim(result, gt, 'float') == pytest.approx(expected_float, abs=1e-10)


def test_unknown_y_quantization_is_refused():
    with pytest.raises(ValueError, match="y_quantization must be one of \\('uint8', 'float'\\), got 'round'"):
        psnr(image(WHITE), image(BLACK), y_quantization='round')


def test_protocol_description_names_the_quantization():
    assert 'truncated to uint8' in describe_protocol() and 'PSNR on Y' in describe_protocol()
    assert 'float64' in describe_protocol('rgb', 'float') and 'PSNR on RGB' in describe_protocol('rgb', 'float')


def test_ssim_needs_an_11_pixel_window():
    small = np.zeros((8, 12, 3), np.uint8)
    with pytest.raises(ValueError, match='at least 11x11 pixels, found 12x8'):
        ssim(small, small)


def test_shapes_must_match():
    with pytest.raises(ValueError, match='differ in shape'):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_default_is_the_published_recipe_on_a_real_face():
    """The published psnr_ssim.py's steps, written out: Y cast to uint8, skimage SSIM on the uint8 Y."""
    gt = skimage.data.astronaut()[30:158, 170:298]
    result = np.clip(gt + np.random.default_rng(3).normal(0, 6, gt.shape), 0, 255).astype(np.uint8)
    weights = np.array([65.481, 128.553, 24.966]) / 255.0
    gt_y, result_y = ((16 + np.matmul(x, weights)).astype(np.uint8) for x in (gt, result))
    published_psnr = 10 * np.log10(255 ** 2 / np.mean((gt_y.astype(float) - result_y.astype(float)) ** 2))
    published_ssim = structural_similarity(gt_y, result_y, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False)
    assert psnr(result, gt) == pytest.approx(published_psnr, abs=1e-10)
    assert ssim(result, gt) == pytest.approx(published_ssim, abs=1e-12)
    assert abs(psnr(result, gt, y_quantization='float') - published_psnr) > 1e-3
