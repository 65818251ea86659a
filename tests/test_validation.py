"""training.validation: network and bicubic-baseline scores (published protocol), measured once, and the face grid."""
import numpy as np
import pytest
import torch
from PIL import Image

from helpers.faces import face_images
from metrics.psnr_ssim import psnr, ssim
from training import validation
from training.validation import Validator, labelled_grid
from utils.tensor_image import uint8_to_tensor

SCALE, SIZE = 4, 32


def small(hr):
    return np.asarray(Image.fromarray(hr).resize((SIZE // SCALE, SIZE // SCALE), Image.BICUBIC))


def enlarge(face):
    return np.asarray(Image.fromarray(face).resize((SIZE, SIZE), Image.BICUBIC))


@pytest.fixture
def faces():
    """5 (LR, HR) pairs as SPARNet's: the LR input is the 8x8 face bicubic-enlarged to 32x32."""
    hrs = face_images(5, seed=4, size=(SIZE, SIZE))
    return [enlarge(small(hr)) for hr in hrs], hrs


def loader(lrs, hrs, batch_size=3):
    return [{'LR': uint8_to_tensor(np.stack(lrs[i:i + batch_size])),
             'HR': uint8_to_tensor(np.stack(hrs[i:i + batch_size]))} for i in range(0, len(hrs), batch_size)]


class Gray(torch.nn.Module):
    """Outputs 0 in [-1, 1]: 127.5, truncated to the 8-bit level 127. Records its modes."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return torch.zeros_like(x)


class HalfLevelUp(torch.nn.Module):
    """The input plus half an 8-bit level: truncated, exactly the input again."""

    def forward(self, x):
        return x + 1 / 255


def test_scores_of_the_networks_and_of_the_baseline_measured_once(faces, monkeypatch):
    lrs, hrs = faces
    calls = []
    monkeypatch.setattr(validation, 'psnr', lambda *args, **kwargs: calls.append(1) or psnr(*args, **kwargs))
    gray, same = Gray().train(), HalfLevelUp().train()
    validator = Validator(loader(lrs, hrs), 'cpu')

    metrics, _ = validator.run({'G': gray, 'H': same})
    assert list(metrics) == ['PSNR_G', 'SSIM_G', 'PSNR_H', 'SSIM_H', 'PSNR_bicubic', 'SSIM_bicubic']
    flat = np.full((SIZE, SIZE, 3), 127, np.uint8)
    assert metrics['PSNR_G'] == pytest.approx(np.mean([psnr(flat, hr) for hr in hrs]), abs=1e-12)
    assert metrics['SSIM_G'] == pytest.approx(np.mean([ssim(flat, hr) for hr in hrs]), abs=1e-12)
    assert metrics['PSNR_bicubic'] == pytest.approx(np.mean([psnr(lr, hr) for lr, hr in zip(lrs, hrs)]), abs=1e-12)
    assert metrics['SSIM_bicubic'] == pytest.approx(np.mean([ssim(lr, hr) for lr, hr in zip(lrs, hrs)]), abs=1e-12)
    assert (metrics['PSNR_H'], metrics['SSIM_H']) == (metrics['PSNR_bicubic'], metrics['SSIM_bicubic'])
    assert 15 < metrics['PSNR_bicubic'] < 40
    assert len(calls) == 3 * len(hrs)
    assert gray.modes == [False, False] and gray.training and same.training

    calls.clear()
    again, _ = validator.run({'G': gray, 'H': same})
    assert again == metrics and len(calls) == 2 * len(hrs)  # the baseline is not measured again


def test_float_y_option_reaches_the_scores(faces):
    lrs, hrs = faces
    metrics, _ = Validator(loader(lrs, hrs), 'cpu', y_quantization='float').run({'G': HalfLevelUp()})
    expected = np.mean([psnr(lr, hr, y_quantization='float') for lr, hr in zip(lrs, hrs)])
    assert metrics['PSNR_bicubic'] == pytest.approx(expected, abs=1e-12)
    assert metrics['PSNR_bicubic'] != pytest.approx(np.mean([psnr(lr, hr) for lr, hr in zip(lrs, hrs)]), abs=1e-4)


def test_grid_shows_the_first_faces_lr_bicubic_networks_hr(faces):
    lrs, hrs = faces
    _, grid = Validator(loader(lrs, hrs), 'cpu', small_lr=small, grid_faces=4).run({'G': Gray()})
    step = SIZE + 2
    assert grid.shape == (14 + 4 * step + 2, 4 * step + 2, 3)  # 4 faces (over two batches), 4 columns

    def tile(row, col):
        return grid[16 + row * step:16 + row * step + SIZE, 2 + col * step:2 + col * step + SIZE]
    for row in range(4):
        np.testing.assert_array_equal(tile(row, 0), small(hrs[row]).repeat(SCALE, 0).repeat(SCALE, 1))
        np.testing.assert_array_equal(tile(row, 1), lrs[row])
        assert (tile(row, 2) == 127).all()
        np.testing.assert_array_equal(tile(row, 3), hrs[row])
    assert (grid[:14] < 128).any()  # the column titles


def test_grid_without_a_small_lr_face_shows_the_input_as_lr(faces):
    lrs, hrs = faces
    _, grid = Validator(loader(lrs[:2], hrs[:2]), 'cpu', small_lr=lambda hr: None).run({'G': Gray(), 'H': Gray()})
    assert grid.shape == (14 + 2 * (SIZE + 2) + 2, 4 * (SIZE + 2) + 2, 3)  # LR | G | H | HR
    np.testing.assert_array_equal(grid[16:16 + SIZE, 2:2 + SIZE], lrs[0])


def test_labelled_grid_by_hand():
    red, blue = np.zeros((3, 2, 3), np.uint8), np.zeros((3, 2, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    grid = labelled_grid({'a': [red], 'b': [blue]}, padding=1)
    assert grid.shape == (14 + 3 + 2, 2 * 3 + 1, 3)
    np.testing.assert_array_equal(grid[15:18, 1:3], red)
    np.testing.assert_array_equal(grid[15:18, 4:6], blue)
    assert (grid[14] == 255).all() and (grid[15:18, 3] == 255).all()  # white padding between tiles
