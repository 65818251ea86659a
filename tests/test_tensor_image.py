"""utils/tensor_image.py: the training samples' fast conversion gives uint8_to_tensor's values bit for bit."""
import numpy as np
import pytest
import torch

from helpers.faces import face_images
from utils.tensor_image import uint8_image_to_tensor, uint8_to_tensor


@pytest.mark.parametrize('shape', [(1, 256, 3), (64, 64, 3), (88, 80, 3), (512, 512, 3)])
def test_image_to_tensor_equals_uint8_to_tensor_and_is_contiguous(shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    image.reshape(-1)[:256] = np.arange(256)  # every level at least once
    fast = uint8_image_to_tensor(image)
    assert fast.shape == (3, *shape[:2]) and fast.dtype == torch.float32 and fast.is_contiguous()
    assert torch.equal(fast, uint8_to_tensor(image))


def test_image_to_tensor_of_a_real_face_and_views():
    face = face_images(1, size=(128, 128))[0]
    assert torch.equal(uint8_image_to_tensor(face), uint8_to_tensor(face))
    crop = face[10:70, 5:90]  # not contiguous
    assert torch.equal(uint8_image_to_tensor(crop), uint8_to_tensor(crop))


@pytest.mark.parametrize('bad', [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                 np.zeros((8, 8, 3), np.float32)])
def test_image_to_tensor_refuses_other_arrays(bad):
    with pytest.raises(ValueError, match='expected an HxWx3 uint8 array'):
        uint8_image_to_tensor(bad)
