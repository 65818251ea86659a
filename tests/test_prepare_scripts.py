"""Dataset preparation scripts: aligned 512 crops, CelebA-style 128 crops, LR test folders."""
import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from faces.align import align_face
from faces.detector import FaceDetector
from helpers.commands import run_in_process, run_script
from metrics.psnr_ssim import psnr
from scripts import align_and_crop_dir, make_lr, make_sample_photo, prepare_celeba
from scripts.prepare_celeba import face_crop, square_box
from utils.cli import UserError


@pytest.fixture(scope='module')
def hog():
    return FaceDetector('hog')


def astronaut_pair():
    astronaut = data.astronaut()
    return np.ascontiguousarray(np.concatenate([astronaut, astronaut[:, ::-1]], axis=1))


@pytest.fixture
def photos(tmp_path):
    """One face, two faces in a subfolder, no face, a broken file and a text file."""
    root = tmp_path / 'photos'
    (root / 'sub').mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(root / 'astronaut.png')
    Image.fromarray(astronaut_pair()).save(root / 'sub' / 'pair.jpg', quality=95)
    Image.fromarray(data.chelsea()).save(root / 'cat.jpg')
    (root / 'broken.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    (root / 'notes.txt').write_text('not an image')
    return root


def read(path):
    return np.asarray(Image.open(path).convert('RGB'))


@pytest.mark.slow
def test_align_and_crop_dir(photos, tmp_path, hog):
    out = tmp_path / 'aligned'
    proc = run_in_process(align_and_crop_dir.main, ['--input_dir', str(photos), '--output_dir', str(out), '--detector',
                                                   'hog'], 'align_and_crop_dir.py')
    assert proc.returncode == 1, proc.stderr  # the broken file failed; the others went on
    written = sorted(str(path.relative_to(out)) for path in out.rglob('*') if path.is_file())
    assert written == ['astronaut.png', 'sub/pair_0.jpg', 'sub/pair_1.jpg']
    expected = align_face(data.astronaut(), hog(data.astronaut())[0].landmarks)[0]
    np.testing.assert_array_equal(read(out / 'astronaut.png'), expected)
    pair = read(photos / 'sub' / 'pair.jpg')
    for index, face in enumerate(hog(pair)):
        crop = read(out / 'sub' / f'pair_{index}.jpg')
        assert crop.shape == (512, 512, 3)
        assert psnr(crop, align_face(pair, face.landmarks)[0], 'rgb') > 35
    # faces numbered left to right: the mirrored face scores ~10 dB; JPEG can move a landmark by its 1 px step
    assert psnr(read(out / 'sub' / 'pair_0.jpg'), expected, 'rgb') > 25
    assert '3 crops written' in proc.stdout and '1 photos without a face' in proc.stdout
    assert 'cat.jpg' in proc.stdout and 'broken.jpg' in proc.stdout and 'not a readable image' in proc.stderr


@pytest.mark.slow
def test_align_and_crop_dir_size_and_format(photos, tmp_path):
    (photos / 'broken.jpg').unlink()
    out = tmp_path / 'aligned'
    proc = run_in_process(align_and_crop_dir.main, ['--input_dir', str(photos), '--output_dir', str(out), '--detector',
                                                   'hog', '--size', '256', '--ext', 'png'], 'align_and_crop_dir.py')
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out / 'sub' / 'pair_1.png').size == (256, 256)


@pytest.mark.parametrize('script', [align_and_crop_dir, prepare_celeba])
def test_crop_scripts_take_the_detection_flags(photos, tmp_path, caplog, script):
    out = tmp_path / 'out'
    code = script.main(['--input_dir', str(photos / 'sub'), '--output_dir', str(out), '--detector', 'hog',
                        '--min_face_size', '200', '--detect_workers', '1'])
    assert code == 1 and not out.exists()
    assert 'pair.jpg: no face found of at least --min_face_size 200 px (skipped)' in caplog.text


def test_square_box_by_hand():
    assert square_box((10, 20, 49, 59), 1.5, 200, 200) == (0, 10, 60)  # 60 px around (29.5, 39.5)
    assert square_box((150, 150, 189, 189), 2.0, 200, 200) == (120, 120, 80)  # moved inside the photo
    assert square_box((0, 0, 99, 99), 3.0, 120, 200) == (0, 0, 120)  # cut to the shorter side


def test_face_crop_drops_small_faces_and_resizes_with_pil_bicubic():
    photo = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    assert face_crop(photo, (100, 100, 179, 179), 1.5, 128, 128) is None  # a 120 px square
    crop = face_crop(photo, (100, 100, 199, 199), 1.3, 128, 128)
    expected = Image.fromarray(photo[85:215, 85:215]).resize((128, 128), Image.BICUBIC)
    np.testing.assert_array_equal(crop, np.asarray(expected))


@pytest.mark.slow
def test_prepare_celeba(tmp_path, hog):
    root = tmp_path / 'celeba'
    root.mkdir()
    big = cv2.resize(data.astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    Image.fromarray(big).save(root / '000001.png')
    Image.fromarray(data.astronaut()).save(root / '000002.png')  # its face box (~90 px x 1.3) is under 128
    out = tmp_path / 'crops'
    argv = ['--input_dir', str(root), '--output_dir', str(out), '--detector', 'hog']
    proc = run_in_process(prepare_celeba.main, argv, 'prepare_celeba.py')
    assert proc.returncode == 0, proc.stderr
    assert sorted(path.name for path in out.iterdir()) == ['000001.png']
    assert '1 crops written, 1 faces dropped' in proc.stdout
    expected = face_crop(big, hog(big)[0].box, 1.3, 128, 128)
    np.testing.assert_array_equal(read(out / '000001.png'), expected)


def test_make_lr(tmp_path):
    hr_dir = tmp_path / 'HR'
    (hr_dir / 'sub').mkdir(parents=True)
    rng = np.random.default_rng(1)
    hr = {'a.png': rng.integers(0, 256, (128, 128, 3), dtype=np.uint8),
          'sub/b.png': rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)}
    for name, image in hr.items():
        Image.fromarray(image).save(hr_dir / name)
    (hr_dir / 'c.png').write_bytes(b'broken')
    proc = run_in_process(make_lr.main, ['--input_dir', str(hr_dir), '--output_dir', str(tmp_path / 'LR'),
                                        '--upsampled_dir', str(tmp_path / 'LR_up')], 'make_lr.py')
    assert proc.returncode == 1 and 'c.png' in proc.stdout
    assert 'not a multiple of 8' in proc.stderr and 'b.png' in proc.stderr
    for name, image in hr.items():
        lr = Image.fromarray(image).resize((round(image.shape[1] / 8),) * 2, Image.BICUBIC)
        np.testing.assert_array_equal(read(tmp_path / 'LR' / name), np.asarray(lr))
        up = lr.resize(image.shape[1::-1], Image.BICUBIC)
        np.testing.assert_array_equal(read(tmp_path / 'LR_up' / name), np.asarray(up))
    assert read(tmp_path / 'LR' / 'a.png').shape == (16, 16, 3)


@pytest.mark.parametrize('script', [align_and_crop_dir, prepare_celeba, make_lr])
def test_missing_input_folder_is_one_clear_line(tmp_path, script):
    proc = run_in_process(script.main, ['--input_dir', str(tmp_path / 'nope'), '--output_dir', str(tmp_path / 'out')],
                          script.__name__)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: --input_dir {str(tmp_path / 'nope')!r}: no such folder"]


@pytest.mark.slow
def test_make_sample_photo(tmp_path, hog):
    # the Makefile's command, as `make demo` runs it
    proc = run_script('-m', 'scripts.make_sample_photo', '--output', str(tmp_path / 'samples' / 'astronaut.jpg'))
    assert proc.returncode == 0, proc.stderr
    photo = read(tmp_path / 'samples' / 'astronaut.jpg')
    assert photo.shape == (512, 512, 3) and len(hog(photo)) == 1


def test_make_sample_group_photo(tmp_path):
    path = tmp_path / 'group.png'
    make_sample_photo.main(['--group', '2x3', '--size', '600x400', '--face_sizes', '40,60', '--output', str(path)])
    photo = read(path)
    assert photo.shape == (400, 600, 3)
    assert len(FaceDetector('hog', min_face_size=40)(photo)) == 6
    with pytest.raises(UserError, match="--group 5x5 --size 300x300 --face_sizes 40,60: .* does not fit|cover"):
        make_sample_photo.main(['--group', '5x5', '--size', '300x300', '--output', str(path)])
    with pytest.raises(UserError, match="--group: expected two numbers separated by 'x', got '5'"):
        make_sample_photo.main(['--group', '5', '--output', str(path)])
