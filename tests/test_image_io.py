"""Reading every image mode as 8-bit RGB, walking folders, and writing results without half-written files."""
import os

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from data.single_dataset import read_face
from helpers.faces import face_images
from scripts import make_lr
from utils import image_io
from utils.image_io import (
    ImageReadError,
    is_image_file,
    list_images,
    output_name,
    read_rgb,
    read_rgb_array,
    save_rgb,
)


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


def test_a_float_image_holding_nan_or_infinity_is_a_broken_file(tmp_path):
    """A float TIFF of NaN was read as black (infinity as white) and scored, run or trained on; every reader (test.py's
    read_face, the datasets' and metrics' read_rgb_array) refuses it in one line now. Finite floats still read."""
    Image.fromarray(np.array([[0.4, 254.6], [-3, 100]], np.float32)).save(tmp_path / 'finite.tif')
    np.testing.assert_array_equal(read_rgb_array(tmp_path / 'finite.tif')[..., 0], [[0, 255], [0, 100]])
    for value in (np.nan, np.inf, -np.inf):
        path = tmp_path / f'{value}.tif'
        Image.fromarray(np.full((4, 4), value, np.float32)).save(path)
        for read in (read_rgb, read_rgb_array, lambda path: read_face(str(path), 16)):
            with pytest.raises(ImageReadError) as err:
                read(path)
            assert str(err.value) == (f'{path}: not a readable image (a float image holding NaN or infinite values: '
                                      'a broken file)')


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


def test_failed_image_write_keeps_the_old_file_and_leaves_no_part(tmp_path, monkeypatch):
    path = tmp_path / 'out.png'
    old = np.zeros((8, 8, 3), np.uint8)
    save_rgb(old, str(path))

    def disk_full(self, handle, **kwargs):
        handle.write(b'\x89PNG half')
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(Image.Image, 'save', disk_full)
    with pytest.raises(OSError, match='No space left'):
        save_rgb(np.ones((8, 8, 3), np.uint8), str(path))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_rgb_array(path), old)
    assert os.listdir(tmp_path) == ['out.png']


def make_linked_tree(tmp_path):
    """root/a.png, root/sub/b.png, and links: a loop, to folders inside and outside root, to a file outside."""
    root, elsewhere = tmp_path / 'root', tmp_path / 'elsewhere'
    (root / 'sub').mkdir(parents=True)
    elsewhere.mkdir()
    for path in (root / 'a.png', root / 'sub' / 'b.png', elsewhere / 'c.png'):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    (root / 'sub' / 'up').symlink_to('..')                 # a loop
    (root / 'alias').symlink_to('sub')                     # a folder inside root
    (root / 'far').symlink_to(elsewhere)                   # a folder outside root
    (root / 'picked.png').symlink_to(elsewhere / 'c.png')  # a file outside root
    return root


def test_walk_lists_each_real_folder_once_and_stays_in_the_root(tmp_path, caplog):
    root = make_linked_tree(tmp_path)
    assert list_images(str(root)) == ['a.png', 'picked.png', 'sub/b.png']
    warnings = [record.getMessage() for record in caplog.records if record.levelname == 'WARNING']
    assert len(warnings) == 1
    assert warnings[0] == (f'{root}: left out 2 link(s) to folders inside it, whose files are listed under their '
                           'real path: alias, sub/up; 1 link(s) leading outside it (give their target itself to '
                           'process it): far')
    assert list_images(str(root / 'alias')) == ['b.png']  # a link given as the root itself is walked


def test_folder_with_links_gives_one_output_per_real_image(tmp_path):
    root = make_linked_tree(tmp_path)
    assert make_lr.main(['--input_dir', str(root), '--output_dir', str(tmp_path / 'LR'), '--scale', '2']) == 0
    written = sorted(str(path.relative_to(tmp_path / 'LR')) for path in (tmp_path / 'LR').rglob('*'))
    assert written == ['a.png', 'picked.png', 'sub', 'sub/b.png']


def test_gif_first_frame_read_and_written_as_png(tmp_path):
    gifs = tmp_path / 'gifs'
    gifs.mkdir()
    frames = [np.full((6, 6, 3), value, np.uint8) for value in (10, 200)]
    frames[0][0, 0] = (255, 0, 0)
    Image.fromarray(frames[0]).save(gifs / 'anim.gif', save_all=True,
                                    append_images=[Image.fromarray(frames[1])])
    palette = Image.fromarray(frames[0]).convert('P', palette=Image.ADAPTIVE, colors=4)
    palette.save(gifs / 'clear.gif', transparency=palette.getpixel((0, 0)))
    assert is_image_file('anim.GIF') and list_images(str(gifs)) == ['anim.gif', 'clear.gif']
    np.testing.assert_array_equal(read_rgb_array(gifs / 'anim.gif'), frames[0])
    clear = read_rgb_array(gifs / 'clear.gif')
    assert tuple(clear[0, 0]) == (255, 255, 255) and tuple(clear[1, 1]) == (10, 10, 10)  # transparency on white
    assert output_name('sub/anim.gif') == 'sub/anim.png' and output_name('x.JPG') == 'x.JPG'
    assert output_name('x.gif', 'jpg') == 'x.jpg'
    assert make_lr.main(['--input_dir', str(gifs), '--output_dir', str(tmp_path / 'LR'), '--scale', '2']) == 0
    assert sorted(os.listdir(tmp_path / 'LR')) == ['anim.png', 'clear.png']
    np.testing.assert_array_equal(read_rgb_array(tmp_path / 'LR' / 'anim.png'),
                                  np.asarray(Image.fromarray(frames[0]).resize((3, 3), Image.BICUBIC)))


def common_files(folder):
    """A real face as the files OpenCV decodes for read_rgb_array: JPEG (4:2:0, 4:4:4, progressive, gray,
    EXIF without a turn) and 8-bit PNG (RGB, gray, with a gamma chunk, with text)."""
    face = Image.fromarray(face_images(1, size=(72, 61))[0])
    exif = face.getexif()
    exif[0x0112] = 1
    files = {'420.jpg': (face, {'quality': 90}), '444.jpg': (face, {'quality': 95, 'subsampling': 0}),
             'progressive.jpg': (face, {'progressive': True}), 'gray.jpg': (face.convert('L'), {}),
             'exif.jpg': (face, {'exif': exif}), 'rgb.png': (face, {}), 'gray.png': (face.convert('L'), {})}
    gamma, text = PngImagePlugin.PngInfo(), PngImagePlugin.PngInfo()
    gamma.add(b'gAMA', (45455 * 2).to_bytes(4, 'big'))
    text.add_text('Software', 'a camera')
    files['gamma.png'] = (face, {'pnginfo': gamma})
    files['text.png'] = (face, {'pnginfo': text})
    for name, (img, options) in files.items():
        img.save(folder / name, **options)
    return list(files)


@pytest.mark.parametrize('rgb_flag', [True, False])  # newer OpenCVs decode to RGB, older ones to BGR
def test_opencv_decodes_common_files_to_pils_pixels(tmp_path, monkeypatch, rgb_flag):
    if not rgb_flag:
        monkeypatch.delattr(cv2, 'IMREAD_COLOR_RGB', raising=False)
    names = common_files(tmp_path)
    expected = {name: np.asarray(read_rgb(tmp_path / name)) for name in names}
    monkeypatch.setattr(image_io, '_upright_rgb', None)  # what read_rgb_array gives is not PIL's decoding
    for name in names:
        np.testing.assert_array_equal(read_rgb_array(tmp_path / name), expected[name], err_msg=name)


def test_pil_decodes_what_opencv_would_decode_otherwise(tmp_path):
    face = face_images(1, size=(40, 30))[0]
    Image.fromarray(face).save(tmp_path / 'face.jpg')
    data = (tmp_path / 'face.jpg').read_bytes()
    (tmp_path / 'truncated.jpg').write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageReadError, match=r'truncated\.jpg: not a readable image'):
        read_rgb_array(tmp_path / 'truncated.jpg')
    cv2.imwrite(str(tmp_path / 'deep.png'), face[..., ::-1].astype(np.uint16) * 257)  # 16-bit RGB
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 9, np.uint8)])).save(tmp_path / 'rgba.png')
    Image.fromarray(face).convert('P').save(tmp_path / 'palette.png')
    img = Image.fromarray(face)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / 'turned.jpg', exif=exif)
    img.save(tmp_path / 'turned.png', exif=exif)
    xmp = PngImagePlugin.PngInfo()
    xmp.add_itxt('XML:com.adobe.xmp', '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
                 '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff='
                 '"http://ns.adobe.com/tiff/1.0/" tiff:Orientation="8"/></rdf:RDF></x:xmpmeta>')
    img.save(tmp_path / 'turned_xmp.png', pnginfo=xmp)
    for name in ('deep.png', 'rgba.png', 'palette.png', 'turned.jpg', 'turned.png', 'turned_xmp.png'):
        with open(tmp_path / name, 'rb') as f, Image.open(tmp_path / name) as opened:
            assert not image_io._opencv_decodes_alike(opened, f.read()), name
        np.testing.assert_array_equal(read_rgb_array(tmp_path / name), np.asarray(read_rgb(tmp_path / name)))
