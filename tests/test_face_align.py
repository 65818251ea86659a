"""FFHQ alignment and feathered paste-back, on synthetic images whose answer is known."""
import cv2
import numpy as np
import pytest
from skimage import data
from skimage.transform import SimilarityTransform

from faces.align import (
    FFHQ_TEMPLATE_1024,
    align_face,
    feather_mask,
    ffhq_template,
    paste_faces,
    similarity_transform,
    transform_points,
    warp_affine,
)
from metrics.psnr_ssim import psnr


def similarity(angle_deg, scale, tx, ty):
    angle = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(angle), -scale * np.sin(angle), tx],
                     [scale * np.sin(angle), scale * np.cos(angle), ty]])


def landmarks_for(crop_to_photo):
    """Where the template's points sit in a photo that the 2x3 map `crop_to_photo` places the crop in."""
    return transform_points(crop_to_photo, ffhq_template())


def blob_photo(points, shape, sigma):
    """A gray photo with a dark Gaussian blob centred on each point."""
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
    dark = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)) for x, y in points)
    return np.clip(np.rint(200 - 180 * dark), 0, 255).astype(np.uint8)[..., None].repeat(3, axis=2)


def blob_centres(image, points, radius):
    """Intensity-weighted centre of the darkness around each expected point."""
    dark = 200.0 - image[..., 0].astype(np.float64)
    centres = []
    for x, y in np.rint(points).astype(int):
        window = dark[y - radius:y + radius + 1, x - radius:x + radius + 1].clip(0)
        yy, xx = np.mgrid[y - radius:y + radius + 1, x - radius:x + radius + 1]
        centres.append([(window * xx).sum() / window.sum(), (window * yy).sum() / window.sum()])
    return np.array(centres)


def smooth_photo(height, width, seed=0):
    """Random low-frequency RGB content: warps of it are comparable pixel to pixel."""
    noise = np.random.default_rng(seed).uniform(0, 255, (height // 16 + 4, width // 16 + 4, 3)).astype(np.float32)
    big = cv2.resize(noise, (width + 64, height + 64), interpolation=cv2.INTER_CUBIC)[32:32 + height, 32:32 + width]
    return np.clip(np.rint(cv2.GaussianBlur(big, (0, 0), 6)), 0, 255).astype(np.uint8)


def test_template_is_the_ffhq_one_at_half_size():
    template = ffhq_template(512)
    np.testing.assert_allclose(template, FFHQ_TEMPLATE_1024 / 2)
    # eyes level, left-right order of dlib's points, nose below and between the eyes
    assert template[0, 0] > template[1, 0] > template[3, 0] > template[2, 0]
    assert abs(template[:4, 1] - 245).max() < 3
    assert template[2, 0] < template[4, 0] < template[0, 0] and template[4, 1] > 330


def test_similarity_transform_recovers_a_known_map():
    true = similarity(30, 2.5, 40.0, -12.0)
    src = np.random.default_rng(1).uniform(0, 200, (5, 2))
    np.testing.assert_allclose(similarity_transform(src, transform_points(true, src)), true, atol=1e-9)


def test_similarity_transform_is_skimage_least_squares_on_noisy_points():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 300, (5, 2))
    dst = transform_points(similarity(-17, 0.7, 5.0, 9.0), src) + rng.normal(0, 3, (5, 2))
    reference = SimilarityTransform.from_estimate(src, dst).params[:2]
    np.testing.assert_allclose(similarity_transform(src, dst), reference, atol=1e-9)


# photo -> crop scales: large faces shrunk through the pyramid, a small face enlarged
@pytest.mark.slow
@pytest.mark.parametrize('scale', [0.25, 0.4, 3.0])
def test_aligned_landmarks_land_on_the_template(scale):
    crop_to_photo = similarity(20, 1 / scale, 35.0, 50.0)
    photo_size = int(np.ceil(transform_points(crop_to_photo, [[511, 511], [0, 511]]).max())) + 40
    points = landmarks_for(crop_to_photo)
    photo = blob_photo(points, (photo_size, photo_size), sigma=6 / scale)
    crop, matrix = align_face(photo, points)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(transform_points(matrix, points), ffhq_template(), atol=1e-6)
    assert np.abs(blob_centres(crop, ffhq_template(), radius=12) - ffhq_template()).max() < 0.15


def test_shrinking_warp_does_not_alias():
    """A one-pixel checkerboard shrunk 4x must average to mid-gray, not keep every other pixel."""
    checker = (np.indices((2048, 2048)).sum(axis=0) % 2 * 255).astype(np.uint8)
    photo = np.repeat(checker[..., None], 3, axis=2)
    crop, _ = align_face(photo, landmarks_for(similarity(0, 4.0, 0.0, 0.0)))
    assert abs(crop.mean() - 127.5) < 2 and crop.std() < 3
    plain = cv2.warpAffine(photo, similarity(0, 0.25, 0.0, 0.0), (512, 512), flags=cv2.INTER_CUBIC)
    assert abs(plain.mean() - 127.5) > 100  # plain bicubic sampling picks one colour of the two


def test_pyramid_warp_matches_a_direct_warp_on_smooth_content():
    photo = smooth_photo(1400, 1300)
    matrix = similarity(-25, 0.3, 60.0, 300.0)
    direct = cv2.warpAffine(photo, matrix, (384, 384), flags=cv2.INTER_CUBIC)
    assert psnr(warp_affine(photo, matrix, (384, 384)), direct, 'rgb') > 40


def test_feather_mask_is_zero_on_the_border_one_inside_and_smooth():
    mask = feather_mask(512)
    assert mask.dtype == np.float32 and mask.shape == (512, 512)
    assert mask[0].max() == 0 and mask[:, -1].max() == 0 and mask[:10, :].max() == 0
    assert mask[64:-64, 64:-64].min() == 1
    np.testing.assert_array_equal(mask, mask.T)
    np.testing.assert_array_equal(mask, mask[::-1, ::-1])
    assert np.abs(np.diff(mask, axis=0)).max() < 1.6 / (0.1 * 512)


def test_paste_blends_without_a_seam():
    """A bright face pasted on a flat photo: full brightness inside, untouched outside, no step."""
    photo = np.full((400, 300, 3), 100, np.uint8)
    matrix = np.linalg.inv(np.vstack([similarity(15, 0.45, 60.0, 70.0), [0, 0, 1]]))[:2]
    face = np.full((512, 512, 3), 200, np.uint8)
    result = paste_faces(photo, [face], [matrix]).astype(np.float64)
    center = transform_points(cv2.invertAffineTransform(matrix), [[256, 256]])[0].round().astype(int)
    assert result[center[1], center[0]].tolist() == [200, 200, 200]
    crop_of_pixels = transform_points(matrix, np.argwhere(result[..., 0] != 100)[:, ::-1])
    assert crop_of_pixels.min() > -2 and crop_of_pixels.max() < 513
    steps = max(np.abs(np.diff(result, axis=0)).max(), np.abs(np.diff(result, axis=1)).max())
    assert steps < 12  # a hard square paste would step by 100
    assert (result[..., 0] == 100).any() and (result[..., 0] == 200).any()


def test_round_trip_with_an_identity_enhancer_keeps_the_photo():
    photo = smooth_photo(480, 640, seed=3)
    points = landmarks_for(similarity(-10, 0.35, 200.0, 90.0))
    crop, matrix = align_face(photo, points)
    result = paste_faces(photo, [crop], [matrix])
    assert result.shape == photo.shape and result.dtype == np.uint8
    assert psnr(result, photo, 'rgb') > 45
    untouched = paste_faces(np.zeros_like(photo), [np.full_like(crop, 255)], [matrix]) == 0
    np.testing.assert_array_equal(result[untouched], photo[untouched])


@pytest.mark.parametrize('upscale', [2, 3])
def test_paste_at_test_upscale_lines_up_with_the_enlarged_photo(upscale):
    photo = data.astronaut()
    crop, matrix = align_face(photo, landmarks_for(similarity(5, 0.3, 150.0, 40.0)))
    result = paste_faces(photo, [crop], [matrix], upscale=upscale)
    enlarged = cv2.resize(photo, (512 * upscale, 512 * upscale), interpolation=cv2.INTER_CUBIC)
    assert result.shape == enlarged.shape
    assert psnr(result, enlarged, 'rgb') > 50  # off by half a pixel it would be ~40


def test_faces_partly_outside_the_photo():
    photo = smooth_photo(200, 200, seed=5)
    points = landmarks_for(similarity(0, 0.5, -100.0, 50.0))  # the crop's left half is beyond the edge
    crop, matrix = align_face(photo, points)
    assert crop.shape == (512, 512, 3)
    result = paste_faces(photo, [crop], [matrix])
    assert psnr(result, photo, 'rgb') > 40
