"""Reading every image mode as 8-bit RGB, and writing results without half-written files."""
import numpy as np
import pytest
from PIL import Image

from utils.image_io import ImageReadError, list_images, read_rgb_array, save_rgb


def test_modes_become_rgb(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(gray).save(tmp_path / 'gray.png')
    np.testing.assert_array_equal(read_rgb_array(tmp_path / 'gray.png'), np.dstack([gray] * 3))

    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(deep).save(tmp_path / 'deep.png')
    np.testing.assert_array_equal(read_rgb_array(tmp_path / 'deep.png')[..., 0], np.rint(deep / 257).astype(np.uint8))

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 100, 0, 255)  # opaque: kept
    rgba[0, 1] = (200, 100, 0, 0)    # transparent: white
    rgba[1, 0] = (0, 0, 0, 128)      # half: halfway to white
    Image.fromarray(rgba).save(tmp_path / 'rgba.png')
    out = read_rgb_array(tmp_path / 'rgba.png')
    assert tuple(out[0, 0]) == (200, 100, 0) and tuple(out[0, 1]) == (255, 255, 255)
    assert all(abs(int(v) - 127) <= 1 for v in out[1, 0])


def test_exif_rotation_applied(tmp_path):
    img = Image.fromarray(np.zeros((4, 8, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    img.save(tmp_path / 'rotated.jpg', exif=exif)
    assert read_rgb_array(tmp_path / 'rotated.jpg').shape == (8, 4, 3)


def test_unreadable_file_named(tmp_path):
    (tmp_path / 'x.png').write_bytes(b'nope')
    with pytest.raises(ImageReadError, match=r'x\.png: not a readable image'):
        read_rgb_array(tmp_path / 'x.png')


def test_save_is_atomic_and_keeps_format(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    save_rgb(image, str(tmp_path / 'a' / 'b.png'))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'a' / 'b.png')), image)
    assert sorted(p.name for p in (tmp_path / 'a').iterdir()) == ['b.png']
    with pytest.raises(ValueError, match='unknown image extension'):
        save_rgb(image, str(tmp_path / 'c.xyz'))
    assert list_images(str(tmp_path)) == ['a/b.png']
