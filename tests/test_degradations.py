"""The SPARNetHD degradation steps, their random plan and the composed pipeline (data/degradations.py)."""
import argparse
import dataclasses

import cv2
import numpy as np
import pytest
import scipy.ndimage
import skimage.data

from data.degradations import (
    BLUR_KINDS,
    INTERPOLATIONS,
    Blur,
    DegradationConfig,
    add_degradation_options,
    add_gaussian_noise,
    apply_blur,
    apply_plan,
    box_blur,
    config_from_options,
    degrade,
    degrade_pair,
    gaussian_blur,
    gaussian_kernel_size,
    jpeg_compress,
    median_blur,
    motion_blur,
    motion_kernel,
    resize,
    sample_plan,
    to_grayscale,
)
from utils.cli import UserError

NO_STEPS = DegradationConfig(gray_prob=0.0, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0)
ALL_STEPS = DegradationConfig(gray_prob=1.0, blur_prob=1.0, noise_prob=1.0, jpeg_prob=1.0)


@pytest.fixture(scope='module')
def face():
    """A real 128x128 face (the astronaut photo, area-downscaled)."""
    return cv2.resize(skimage.data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)


def high_frequency_energy(img):
    """Mean squared Laplacian of the luma: what blurring removes."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(np.mean(cv2.Laplacian(gray, cv2.CV_64F) ** 2))


def vertical_stripes(period, height=20, width=60):
    """Columns 0, 50, 100, ... repeating every `period` columns, same in all channels."""
    row = (np.arange(width) % period) * 50
    return np.repeat(np.tile(row, (height, 1))[:, :, None], 3, axis=2).astype(np.uint8)


def test_grayscale_is_bt601_luma_in_every_channel(face):
    gray = to_grayscale(face)
    assert gray.shape == face.shape and gray.dtype == np.uint8
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    expected = face.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray[..., 0] - expected).max() <= 1.0
    assert np.array_equal(to_grayscale(gray), gray)


@pytest.mark.parametrize('blur', [Blur('gaussian', 3.0), Blur('box', 4), Blur('median', 5), Blur('motion', 7, 30.0)])
def test_blur_keeps_shape_dtype_and_flat_areas(face, blur):
    out = apply_blur(face, blur)
    assert out.shape == face.shape and out.dtype == np.uint8
    flat = np.full((40, 30, 3), 77, np.uint8)
    assert np.array_equal(apply_blur(flat, blur), flat)


@pytest.mark.parametrize('kind,small,large', [('gaussian', 1.0, 4.0), ('box', 3, 9), ('median', 3, 9),
                                              ('motion', 5, 15)])
def test_blur_removes_high_frequencies_more_when_larger(face, kind, small, large):
    energies = [high_frequency_energy(face)] + [high_frequency_energy(apply_blur(face, Blur(kind, size, 20.0)))
                                                for size in (small, large)]
    assert energies[0] > energies[1] > energies[2]
    assert energies[2] < 0.5 * energies[0]


def imgaug_gaussian_size(sigma):
    """imgaug 0.4's kernel side: int(max(k * sigma, 5)) with k 3.3 / 2.9 / 2.6 below 3 / below 5 / above, made odd."""
    factor = 3.3 if sigma < 3.0 else 2.9 if sigma < 5.0 else 2.6
    size = int(max(factor * sigma, 5))
    return size if size % 2 else size + 1


def gaussian_kernel_1d(size, sigma):
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    weights = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    return weights / weights.sum()


@pytest.mark.parametrize('sigma, size', [(0.5, 5), (2.0, 7), (2.99, 9), (3.0, 9), (4.0, 11), (4.99, 15), (5.0, 13),
                                         (7.7, 21), (10.0, 27), (15.0, 39)])
def test_gaussian_kernel_size_is_imgaugs(sigma, size):
    assert gaussian_kernel_size(sigma) == imgaug_gaussian_size(sigma) == size


@pytest.mark.parametrize('sigma', [3.0, 4.2, 7.5, 15.0])
def test_gaussian_blur_kernel_is_the_truncated_gaussian_of_imgaug(face, sigma):
    size = imgaug_gaussian_size(sigma)
    impulse = np.zeros((61, 61), np.float32)
    impulse[30, 30] = 1.0
    response = gaussian_blur(impulse, sigma)
    kernel = np.outer(gaussian_kernel_1d(size, sigma), gaussian_kernel_1d(size, sigma))
    radius = size // 2
    np.testing.assert_allclose(response[30 - radius:31 + radius, 30 - radius:31 + radius], kernel, atol=1e-6)
    assert np.count_nonzero(response) == size * size
    row = gaussian_kernel_1d(size, sigma).astype(np.float32)
    reference = cv2.sepFilter2D(face, -1, row, row, borderType=cv2.BORDER_REFLECT_101)
    assert np.abs(gaussian_blur(face, sigma).astype(int) - reference).max() <= 1  # OpenCV's 8-bit fixed point


def test_box_blur_matches_scipy(face):
    ours = box_blur(face, 5).astype(np.float64)
    reference = scipy.ndimage.uniform_filter(face.astype(np.float64), size=(5, 5, 1), mode='mirror')
    assert np.abs(ours - reference).max() <= 0.5 + 1e-6


def test_median_blur_matches_scipy(face):
    ours = median_blur(face, 5)
    reference = scipy.ndimage.median_filter(face, size=(5, 5, 1), mode='nearest')
    assert np.array_equal(ours, reference)


@pytest.mark.parametrize('step', [lambda img: median_blur(img, 4), lambda img: motion_blur(img, 6, 0.0)])
def test_even_kernel_is_refused_where_a_centre_is_needed(face, step):
    with pytest.raises(ValueError, match='odd kernel size'):
        step(face)


def imgaug_motion_kernel(size, angle, direction):
    """imgaug 0.4's MotionBlur kernel from its formulas: a ramp linspace(t, 1 - t) in the middle column,
    t = (direction + 1) / 2, as uint8 (x 255), rotated with skimage's rotation matrix [[cos, -sin], [sin, cos]]
    about (size / 2 - 0.5, size / 2 - 0.5) by OpenCV bilinear warping (imgaug's backend for uint8), / 255, normalised.
    """
    start = (direction + 1.0) / 2.0
    ramp = np.zeros((size, size), np.float32)
    ramp[:, size // 2] = np.linspace(start, 1.0 - start, size)
    centre = size / 2.0 - 0.5
    theta = np.deg2rad(angle)
    to_centre = np.array([[1, 0, centre], [0, 1, centre], [0, 0, 1]])
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    to_origin = np.array([[1, 0, -centre], [0, 1, -centre], [0, 0, 1]])
    matrix = (to_centre @ rotation @ to_origin)[:2]
    rotated = cv2.warpAffine((ramp * 255).astype(np.uint8), matrix, (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    kernel = rotated.astype(np.float32) / 255.0
    return kernel / kernel.sum()


@pytest.mark.parametrize('size, angle, direction', [(5, 0.0, 0.0), (7, 30.0, -1.0), (9, 45.0, 0.3), (11, 90.0, 0.5),
                                                    (15, 200.0, 1.0), (21, 123.4, -0.25), (25, 333.3, -0.6)])
def test_motion_kernel_and_blur_are_imgaugs(face, size, angle, direction):
    kernel = motion_kernel(size, angle, direction)
    expected = imgaug_motion_kernel(size, angle, direction)
    assert kernel.shape == (size, size) and kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel, expected, atol=1e-7)
    np.testing.assert_array_equal(motion_blur(face, size, angle, direction),
                                  cv2.filter2D(face, -1, expected, borderType=cv2.BORDER_REFLECT_101))


def test_motion_kernel_is_a_ramp_turned_clockwise():
    uniform = motion_kernel(7, 0.0, 0.0)
    assert np.allclose(uniform[:, 3], 1 / 7) and np.allclose(np.delete(uniform, 3, axis=1), 0)
    ramp = motion_kernel(7, 0.0, -1.0)[:, 3]  # linspace(0, 1): nothing at the top, most at the bottom
    assert ramp[0] == 0 and np.all(np.diff(ramp) > 0)
    turned = motion_kernel(7, 90.0, -1.0)  # clockwise: the bottom of the column goes to the left
    assert np.allclose(np.delete(turned, 3, axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(turned[3], ramp[::-1], atol=1e-6)
    diagonal = motion_kernel(9, 45.0, 0.0)
    assert np.allclose(diagonal, diagonal[::-1, ::-1], atol=1e-6)
    anti_diagonal = np.fliplr(np.eye(9, dtype=bool))  # the vertical line turned 45 degrees clockwise: top end right
    assert diagonal[anti_diagonal].sum() > 0.5 and diagonal[np.eye(9, dtype=bool)].sum() < 0.2


def test_motion_blur_smears_along_its_angle_only():
    stripes = vertical_stripes(period=5)
    assert np.array_equal(motion_blur(stripes, 5, 0.0), stripes)
    across = motion_blur(stripes, 5, 90.0)
    assert np.all(across[:, 2:-2] == 100)


def test_resize_nearest_and_area_by_hand():
    img = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    assert np.array_equal(resize(img, 32, 24, 'nearest'), img[::2, ::2])
    block_means = img.reshape(16, 4, 12, 4, 3).mean(axis=(1, 3))
    assert np.array_equal(resize(img, 16, 12, 'area'), np.rint(block_means).astype(np.uint8))


@pytest.mark.parametrize('interpolation', INTERPOLATIONS)
def test_resize_gives_requested_size_and_keeps_same_size_input(face, interpolation):
    out = resize(face, 37, 53, interpolation)
    assert out.shape == (37, 53, 3) and out.dtype == np.uint8
    assert np.array_equal(resize(face, 128, 128, interpolation), face)


@pytest.mark.parametrize('per_channel', [True, False])
def test_noise_has_the_requested_std(per_channel):
    flat = np.full((256, 256, 3), 128, np.uint8)
    out = add_gaussian_noise(flat, 10.0, per_channel, np.random.default_rng(1))
    assert out.shape == flat.shape and out.dtype == np.uint8
    residual = out.astype(np.float64) - 128
    assert residual.std() == pytest.approx(10.0, rel=0.03)
    assert abs(residual.mean()) < 0.1
    correlation = np.corrcoef(residual[..., 0].ravel(), residual[..., 1].ravel())[0, 1]
    if per_channel:
        assert abs(correlation) < 0.02
    else:
        assert np.array_equal(residual[..., 0], residual[..., 1]) and np.array_equal(residual[..., 0],
                                                                                     residual[..., 2])


def test_noise_clips_to_uint8_and_zero_sigma_changes_nothing(face):
    white = np.full((64, 64, 3), 250, np.uint8)
    out = add_gaussian_noise(white, 25.5, True, np.random.default_rng(2))
    assert out.max() == 255 and 100 < out.min() < 250
    assert np.mean(out == 255) == pytest.approx(0.43, abs=0.03)  # P(noise > 4.5) for sigma 25.5
    assert np.array_equal(add_gaussian_noise(face, 0.0, True, np.random.default_rng(2)), face)


def test_jpeg_loses_more_at_lower_quality(face):
    errors = {}
    for quality in (35, 90, 100):
        out = jpeg_compress(face, quality)
        assert out.shape == face.shape and out.dtype == np.uint8
        errors[quality] = np.abs(out.astype(np.float64) - face).mean()
    assert errors[35] > errors[90] > errors[100] > 0
    assert errors[35] > 2 * errors[90]


def test_jpeg_keeps_rgb_order():
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    out = jpeg_compress(red, 90).astype(np.int64)
    assert np.abs(out - red).max() <= 6


def test_plan_frequencies_follow_the_recipe():
    rng = np.random.default_rng(3)
    plans = [sample_plan(rng) for _ in range(4000)]
    assert np.mean([p.grayscale for p in plans]) == pytest.approx(0.3, abs=0.03)
    blurs = [p.blur for p in plans if p.blur]
    assert len(blurs) / len(plans) == pytest.approx(0.5, abs=0.03)
    for kind in BLUR_KINDS:
        assert np.mean([b.kind == kind for b in blurs]) == pytest.approx(0.25, abs=0.04)
    noisy = [p for p in plans if p.noise_sigma is not None]
    assert len(noisy) / len(plans) == pytest.approx(0.2, abs=0.03)
    assert np.mean([p.noise_per_channel for p in noisy]) == pytest.approx(0.5, abs=0.07)
    assert np.mean([p.jpeg_quality is not None for p in plans]) == pytest.approx(0.7, abs=0.03)
    for interpolation in INTERPOLATIONS:
        assert np.mean([p.lr_interpolation == interpolation for p in plans]) == pytest.approx(0.25, abs=0.03)


def test_plan_values_stay_in_their_ranges():
    rng = np.random.default_rng(4)
    plans = [sample_plan(rng, ALL_STEPS) for _ in range(3000)]
    sizes = {p.lr_size for p in plans}
    assert min(sizes) == 32 and max(sizes) == 127
    qualities = {p.jpeg_quality for p in plans}
    assert min(qualities) == 35 and max(qualities) == 90
    sigmas = [p.noise_sigma for p in plans]
    assert 0 <= min(sigmas) < 1 and 24.5 < max(sigmas) <= 25.5
    by_kind = {kind: [p.blur for p in plans if p.blur.kind == kind] for kind in BLUR_KINDS}
    assert all(3 <= b.size <= 15 for b in by_kind['gaussian'])
    assert {b.size for b in by_kind['box']} == set(range(3, 16))
    assert {b.size for b in by_kind['median']} == set(range(3, 16, 2))
    assert {b.size for b in by_kind['motion']} == set(range(5, 26, 2))
    angles = [b.angle for b in by_kind['motion']]
    assert 0 <= min(angles) < 5 and 355 < max(angles) < 360
    directions = [b.direction for b in by_kind['motion']]
    assert -1 <= min(directions) < -0.95 and 0.95 < max(directions) <= 1


def test_probability_zero_never_runs_and_one_always_runs():
    rng = np.random.default_rng(5)
    for plan in (sample_plan(rng, NO_STEPS) for _ in range(300)):
        assert not plan.grayscale and plan.blur is None and plan.noise_sigma is None and plan.jpeg_quality is None
    for plan in (sample_plan(rng, ALL_STEPS) for _ in range(300)):
        assert plan.grayscale and plan.blur and plan.noise_sigma is not None and plan.jpeg_quality is not None
    config = DegradationConfig(blur_prob=1.0, blur_kinds=('median',), noise_prob=1.0, noise_per_channel_prob=0.0)
    for plan in (sample_plan(rng, config) for _ in range(300)):
        assert plan.blur.kind == 'median' and not plan.noise_per_channel


@pytest.mark.parametrize('interpolation', INTERPOLATIONS)
def test_pipeline_with_every_step_off_returns_the_input(face, interpolation):
    config = dataclasses.replace(NO_STEPS, lr_size=(128, 128), lr_interpolations=(interpolation,))
    assert np.array_equal(degrade(face, np.random.default_rng(6), config), face)


def test_gray_target_goes_with_gray_lr(face):
    config = dataclasses.replace(NO_STEPS, gray_prob=1.0)
    target, lr = degrade_pair(face, np.random.default_rng(7), config)
    assert np.array_equal(target, to_grayscale(face))
    assert np.array_equal(lr[..., 0], lr[..., 1]) and np.array_equal(lr[..., 0], lr[..., 2])
    target, _ = degrade_pair(face, np.random.default_rng(7), NO_STEPS)
    assert target is face


@pytest.mark.parametrize('shape', [(512, 512, 3), (96, 80, 3)])
def test_pipeline_output_is_uint8_of_the_input_shape(shape):
    hr = cv2.resize(skimage.data.astronaut(), shape[1::-1], interpolation=cv2.INTER_AREA)
    for seed in range(12):
        lr = degrade(hr, np.random.default_rng(seed), ALL_STEPS if seed % 2 else DegradationConfig())
        assert lr.shape == shape and lr.dtype == np.uint8
    assert high_frequency_energy(degrade(hr, np.random.default_rng(0), ALL_STEPS)) < high_frequency_energy(hr)


def test_same_seed_same_output_and_different_seeds_differ(face):
    first = [degrade(face, np.random.default_rng(8), ALL_STEPS) for _ in range(2)]
    assert np.array_equal(first[0], first[1])
    outputs = [degrade(face, np.random.default_rng(seed), ALL_STEPS) for seed in (9, 10, 11)]
    assert not np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[1], outputs[2])


@pytest.mark.parametrize('bad', [np.zeros((16, 16), np.uint8), np.zeros((16, 16, 3), np.float32),
                                 np.zeros((16, 16, 4), np.uint8)])
def test_pipeline_rejects_non_rgb_uint8(bad):
    with pytest.raises(ValueError, match='expected an HxWx3 uint8 RGB array'):
        degrade(bad, np.random.default_rng(0))


def parse(*args):
    return add_degradation_options(argparse.ArgumentParser()).parse_args(list(args))


def test_options_default_to_the_recipe():
    assert config_from_options(parse()) == DegradationConfig()
    config = config_from_options(parse('--deg_blur_prob', '0.9', '--deg_lr_size', '16', '64',
                                       '--deg_blur_kinds', 'box', 'motion', '--deg_noise_sigma', '1', '5'))
    assert config == DegradationConfig(blur_prob=0.9, lr_size=(16, 64), blur_kinds=('box', 'motion'),
                                       noise_sigma=(1.0, 5.0))
    assert config_from_options(parse()).noise_sigma == pytest.approx((0.0, 25.5))


@pytest.mark.parametrize('args,message', [
    (('--deg_blur_prob', '1.5'), '--deg_blur_prob must be a probability between 0 and 1, got 1.5'),
    (('--deg_jpeg_quality', '90', '35'), '--deg_jpeg_quality must be two values LOW HIGH with LOW <= HIGH'),
    (('--deg_jpeg_quality', '0', '90'), '--deg_jpeg_quality values must be >= 1 and <= 100'),
    (('--deg_blur_gaussian_sigma', '0', '2'), '--deg_blur_gaussian_sigma values must be > 0.0'),
])
def test_bad_option_values_give_one_clear_line(args, message):
    with pytest.raises(UserError) as info:
        config_from_options(parse(*args))
    assert str(info.value).startswith(message) and '\n' not in str(info.value)


def reference_apply_plan(hr, plan, rng):
    """apply_plan as first written: every step on the three channels of the (gray) target."""
    target = np.repeat(cv2.cvtColor(hr, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2) if plan.grayscale else hr
    lr = apply_blur(target, plan.blur) if plan.blur else target
    lr = resize(lr, plan.lr_size, plan.lr_size, plan.lr_interpolation)
    if plan.noise_sigma is not None:
        lr = add_gaussian_noise(lr, plan.noise_sigma, plan.noise_per_channel, rng)
    if plan.jpeg_quality is not None:
        lr = jpeg_compress(lr, plan.jpeg_quality)
    return target, resize(lr, hr.shape[0], hr.shape[1], 'cubic')


@pytest.mark.parametrize('shape', [(128, 128), (96, 80), (77, 131),
                                   pytest.param((512, 512), marks=pytest.mark.slow)])  # the ffhq recipe's size
def test_each_blur_on_the_gray_channel_equals_it_on_three(face, shape):
    gray = cv2.resize(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY), shape[::-1], interpolation=cv2.INTER_AREA)
    three = np.repeat(gray[:, :, None], 3, axis=2)
    rng = np.random.default_rng(12)
    blurs = ([Blur('gaussian', sigma) for sigma in (3.0, 4.99, 5.0, *rng.uniform(3, 15, 6), 15.0)]
             + [Blur('box', size) for size in range(1, 16)] + [Blur('median', size) for size in range(3, 16, 2)]
             + [Blur('motion', size, rng.uniform(0, 360), rng.uniform(-1, 1)) for size in range(5, 26, 2)])
    for blur in blurs:
        np.testing.assert_array_equal(np.repeat(apply_blur(gray, blur)[:, :, None], 3, axis=2),
                                      apply_blur(three, blur), err_msg=str(blur))


@pytest.mark.parametrize('config', [ALL_STEPS, DegradationConfig(),
                                    dataclasses.replace(ALL_STEPS, noise_per_channel_prob=0.0, jpeg_prob=0.0)])
def test_pipeline_equals_its_first_version_step_for_step(face, config):
    for seed in range(40):
        plan = sample_plan(np.random.default_rng(seed), config)
        ours = apply_plan(face, plan, np.random.default_rng(seed))
        reference = reference_apply_plan(face, plan, np.random.default_rng(seed))
        np.testing.assert_array_equal(ours[0], reference[0])
        np.testing.assert_array_equal(ours[1], reference[1], err_msg=str(plan))
