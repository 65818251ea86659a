"""Training datasets (celeba, ffhq) and the resumable, shardable train loader."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from data import create_dataset, create_train_dataloader
from data.base_dataset import resize_square
from data.celeba_dataset import random_resized_crop_box
from data.degradations import DegradationConfig, degrade_pair
from helpers.faces import face_folder, face_images
from options.train_options import TrainOptions
from utils.cli import UserError
from utils.tensor_image import tensor_to_uint8


def options(root, dataset='celeba', *extra):
    model = 'sparnet' if dataset == 'celeba' else 'sparnethd'
    return TrainOptions().parse(['--gpus', '0', '--model', model, '--dataset_name', dataset, '--dataroot', str(root),
                                 '--load_size', '64', '--batch_size', '2', '--num_threads', '0', *extra])


def to_uint8(tensor):
    return tensor_to_uint8(tensor[None], round_output=True)[0]


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return face_folder(tmp_path_factory.mktemp('faces'), count=6)


def test_celeba_lr_is_pil_bicubic_down_and_up_of_hr(faces):
    dataset = create_dataset(options(faces, 'celeba'))
    sample = dataset[3]
    assert sample['LR'].shape == sample['HR'].shape == (3, 64, 64) and sample['errors'] == []
    assert sample['LR'].dtype == torch.float32 and -1 <= sample['HR'].min() and sample['HR'].max() <= 1
    hr = Image.fromarray(to_uint8(sample['HR']))
    expected = hr.resize((8, 8), Image.BICUBIC).resize((64, 64), Image.BICUBIC)
    np.testing.assert_array_equal(to_uint8(sample['LR']), np.asarray(expected))


def test_samples_depend_only_on_seed_epoch_and_index(faces):
    dataset = create_dataset(options(faces, 'celeba'))
    first = [dataset[i]['HR'] for i in range(4)]
    again = create_dataset(options(faces, 'celeba'))
    assert all(torch.equal(a, again[i]['HR']) for i, a in enumerate(first))
    again.set_epoch(1)
    assert not all(torch.equal(a, again[i]['HR']) for i, a in enumerate(first))
    other_seed = create_dataset(options(faces, 'celeba', '--seed', '7'))
    assert not all(torch.equal(a, other_seed[i]['HR']) for i, a in enumerate(first))


def test_random_resized_crop_boxes_follow_the_recipe():
    rng = np.random.default_rng(0)
    for width, height in [(178, 218), (128, 128), (300, 200)]:
        boxes = {random_resized_crop_box(width, height, rng) for _ in range(200)}
        assert len(boxes) > 100
        for left, top, right, bottom in boxes:
            w, h = right - left, bottom - top
            assert 0 <= left and 0 <= top and right <= width and bottom <= height
            assert 0.7 - 0.02 <= w * h / (width * height) <= 1.0
            assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02


@pytest.mark.parametrize('size, box', [((400, 40), (173, 0, 226, 40)), ((40, 400), (0, 173, 40, 226))])
def test_crop_falls_back_to_central_crop_of_allowed_aspect(size, box):
    # no box of area >= 70% fits with an aspect in [3/4, 4/3]: torchvision's central fallback
    assert random_resized_crop_box(*size, np.random.default_rng(0)) == box


def test_any_size_and_mode_gives_square_pairs(tmp_path):
    face = face_images(1)[0]
    Image.fromarray(face).convert('L').save(tmp_path / 'gray.png')
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 200, np.uint8)])).save(tmp_path / 'rgba.png')
    Image.fromarray(face).convert('P').save(tmp_path / 'palette.png')
    Image.fromarray(face[:30, :40]).save(tmp_path / 'tiny.jpg')
    Image.fromarray(face[..., 0].astype(np.uint16) * 257).save(tmp_path / 'deep16.png')
    for dataset_name in ('celeba', 'ffhq'):
        dataset = create_dataset(options(tmp_path, dataset_name))
        assert len(dataset) == 5
        for index in range(len(dataset)):
            sample = dataset[index]
            assert sample['LR'].shape == sample['HR'].shape == (3, 64, 64) and sample['errors'] == []


def test_ffhq_pair_is_the_degradation_of_the_resized_face(faces):
    opt = options(faces, 'ffhq', '--seed', '5')
    dataset = create_dataset(opt)
    dataset.set_epoch(2)
    sample = dataset[1]
    img = Image.open(os.path.join(faces, dataset.paths[1])).convert('RGB')
    hr, lr = degrade_pair(np.asarray(resize_square(img, 64)), np.random.default_rng([5, 2, 1]), DegradationConfig())
    np.testing.assert_array_equal(to_uint8(sample['HR']), hr)
    np.testing.assert_array_equal(to_uint8(sample['LR']), lr)
    assert not np.array_equal(hr, lr)


def test_ffhq_degradation_flags_reach_the_dataset(faces):
    dataset = create_dataset(options(faces, 'ffhq', '--deg_gray_prob', '1', '--deg_jpeg_prob', '0'))
    hr = to_uint8(dataset[0]['HR'])
    assert np.array_equal(hr[..., 0], hr[..., 1]) and np.array_equal(hr[..., 1], hr[..., 2])
    with pytest.raises(UserError, match='--deg_'):
        create_dataset(options(faces, 'ffhq', '--deg_noise_prob', '1.5'))


@pytest.mark.parametrize('broken', ['png', 'nan_tiff'])
def test_unreadable_file_is_replaced_by_the_next_and_reported(tmp_path, broken):
    """A broken PNG, or a float TIFF of NaN (once trained on as a black face)."""
    face_folder(tmp_path, count=3)
    if broken == 'png':
        (tmp_path / 'face_00.png').write_bytes(b'\x89PNG broken')
    else:
        os.unlink(tmp_path / 'face_00.png')
        Image.fromarray(np.full((64, 64), np.nan, np.float32)).save(tmp_path / 'face_00.tif')
    name = f"face_00.{'png' if broken == 'png' else 'tif'}"
    dataset = create_dataset(options(tmp_path))
    dataset.check_readable()
    sample = dataset[0]
    assert sample['HR_paths'] == 'face_01.png'
    assert [path for path, _ in sample['errors']] == [name]
    assert f'{name}: not a readable image' in sample['errors'][0][1]
    batch = dataset.collate([sample, dataset[1]])
    assert batch['HR'].shape == (2, 3, 64, 64) and len(batch['errors']) == 1


@pytest.mark.parametrize('setup, message', [
    (lambda root: None, 'no such folder'),
    (lambda root: os.makedirs(root), 'no images found'),
    (lambda root: (os.makedirs(root), open(os.path.join(root, 'a.png'), 'wb').write(b'x')), 'none of the 1 images'),
])
def test_bad_training_folders_fail_in_one_line(tmp_path, setup, message):
    root = str(tmp_path / 'data')
    setup(root)
    with pytest.raises(UserError, match=message) as err:
        create_dataset(options(root)).check_readable()
    assert '\n' not in str(err.value)


def batches_of(loader, epoch, start=0):
    return [(batch['HR_paths'], batch['HR']) for batch in loader.epoch(epoch, start)]


def test_loader_repeatable_with_workers_and_resumable_mid_epoch(faces):
    opt = options(faces)
    loader = create_train_dataloader(create_dataset(opt), opt)
    assert loader.batches_per_epoch == 3
    epoch1 = batches_of(loader, 1)
    opt_workers = options(faces, 'celeba', '--num_threads', '2')
    with_workers = batches_of(create_train_dataloader(create_dataset(opt_workers), opt_workers), 1)
    resumed = batches_of(create_train_dataloader(create_dataset(opt), opt), 1, start=2)
    for (paths, hr), (paths_w, hr_w) in zip(epoch1, with_workers):
        assert paths == paths_w and torch.equal(hr, hr_w)
    assert len(resumed) == 1 and resumed[0][0] == epoch1[2][0] and torch.equal(resumed[0][1], epoch1[2][1])
    assert [paths for paths, _ in batches_of(loader, 2)] != [paths for paths, _ in epoch1]


def test_ranks_share_out_each_global_batch(faces):
    opt = options(faces, 'celeba', '--batch_size', '4')
    single = batches_of(create_train_dataloader(create_dataset(opt), opt), 0)
    ranks = [batches_of(create_train_dataloader(create_dataset(opt), opt, rank, 2), 0) for rank in (0, 1)]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 1
    assert sorted(ranks[0][0][0] + ranks[1][0][0]) == sorted(single[0][0])
    assert not set(ranks[0][0][0]) & set(ranks[1][0][0])
    with pytest.raises(UserError, match='--batch_size 4 must be a multiple of the 3 processes'):
        create_train_dataloader(create_dataset(opt), opt, 0, 3)


def test_fewer_images_than_a_batch_refused(faces):
    opt = options(faces, 'celeba', '--batch_size', '8')
    with pytest.raises(UserError, match='fewer than one batch'):
        create_train_dataloader(create_dataset(opt), opt)



def test_serial_batches_take_the_sorted_images_in_order_every_epoch(faces):
    opt = options(faces, 'celeba', '--serial_batches')
    loader = create_train_dataloader(create_dataset(opt), opt)
    expected = [['face_00.png', 'face_01.png'], ['face_02.png', 'face_03.png'], ['face_04.png', 'face_05.png']]
    for epoch in (0, 3):
        assert [paths for paths, _ in batches_of(loader, epoch)] == expected
    assert [paths for paths, _ in batches_of(loader, 0, start=1)] == expected[1:]


def test_max_dataset_size_limits_the_training_folder_not_the_validation_one(faces):
    opt = options(faces, 'celeba', '--max_dataset_size', '3')
    dataset = create_dataset(opt)
    assert dataset.paths == ['face_00.png', 'face_01.png', 'face_02.png']
    assert len(type(dataset)(opt, faces, augment=False)) == 6


def test_debug_epochs_are_one_batch_long(faces):
    opt = options(faces, 'celeba', '--debug')
    loader = create_train_dataloader(create_dataset(opt), opt)
    assert loader.batches_per_epoch == 1 and [len(batches_of(loader, epoch)) for epoch in range(3)] == [1, 1, 1]
    assert batches_of(loader, 0, start=1) == []


def test_max_dataset_size_and_ntest_limit_the_test_folder(faces):
    from options.test_options import TestOptions
    for extra, count in ((), 6), (('--max_dataset_size', '4'), 4), (('--max_dataset_size', '4', '--ntest', '2'), 2):
        opt = TestOptions().parse(['--gpus', '0', '--dataroot', str(faces), *extra])
        assert create_dataset(opt).paths == [f'face_{i:02d}.png' for i in range(count)]
