"""SPARNet training end to end on the CPU: loss, checkpoints, logs, validation, bad data, non-finite loss."""
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from archs.generator_spec import GeneratorSpec
from data.base_dataset import resize_square
from data.celeba_dataset import bicubic_lr, bicubic_reduce
from helpers.commands import check_test_script_output, run_training
from helpers.faces import face_folder
from helpers.training import train_flags
from metrics.psnr_ssim import psnr, ssim
from models.sparnet_model import SPARNetModel
from training.log_reader import read_events, read_text_log
from utils.cli import UserError
from weights.checkpoint import load_train_state

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.mark.slow
def test_tiny_sparnet_learns_saves_logs_and_loads_in_test_py(tmp_path, caplog):
    face_folder(tmp_path / 'faces', count=6)
    (tmp_path / 'faces' / 'broken.png').write_bytes(b'\x89PNG not an image')
    val = face_folder(tmp_path / 'val', count=2, seed=3)
    flags = train_flags(tmp_path, 'sparnet', 'tiny', '--total_epochs', '9', '--batch_size', '2',
                        '--save_latest_freq', '10', '--save_iter_freq', '20', '--visual_freq', '15',
                        '--val_dataroot', val, '--val_freq', '27')
    with caplog.at_level(logging.INFO):
        assert run_training(flags) == 0

    scalars, images = read_events(tmp_path / 'logs' / 'tiny')
    pix = [scalars['loss/Pix'][step] for step in range(1, 28)]  # 7 images, batch 2: 3 iterations per epoch
    assert np.mean(pix[-5:]) < 0.7 * np.mean(pix[:5])
    assert list(scalars['lr/lr_G'].values()) == pytest.approx([0.0005] * 27)
    assert len(scalars['time/seconds_per_iteration']) == 27
    assert images == {'images/LR-SR-HR': [15], 'val/grid': [27]}
    assert set(scalars) >= {'val/PSNR_G', 'val/SSIM_G'} and list(scalars['val/PSNR_G']) == [27]
    check_bicubic_baseline_and_grid(tmp_path, scalars, 27)
    assert 'epoch 9/9 iter 27 | Pix' in caplog.text and 'ETA 0:00:00' in caplog.text
    broken = [r for r in caplog.records if 'broken.png' in r.getMessage()]
    assert len(broken) == 1 and 'skipped' in broken[0].getMessage()

    save_dir = tmp_path / 'checkpoints' / 'tiny'
    assert sorted(os.listdir(save_dir)) == ['epoch_9_net_G.pth', 'iter_20_net_G.pth', 'latest_net_G.pth',
                                            'latest_train_state.pth']
    state = load_train_state(str(save_dir / 'latest_train_state.pth'))
    assert (state['iteration'], state['epoch'], state['batch_in_epoch']) == (27, 8, 3)
    for name, value in torch.load(save_dir / 'latest_net_G.pth', weights_only=True).items():
        assert torch.equal(value, state['model']['networks']['G'][name])

    spec = GeneratorSpec('sparnet', 1, 'spar', 'bn')
    check_test_script_output(['--model', 'sparnet', '--res_depth', '1', '--name', 'tiny', '--checkpoints_dir',
                              str(tmp_path / 'checkpoints'), '--epoch', '9'], save_dir / 'epoch_9_net_G.pth', spec,
                             tmp_path)


def check_bicubic_baseline_and_grid(tmp_path, scalars, iteration):
    """The baseline is the 8x bicubic LR against HR, published protocol; the grid shows LR | bicubic | G | HR."""
    hrs = [resize_square(Image.open(tmp_path / 'val' / f'face_{i:02d}.png'), 64) for i in range(2)]
    lrs = [np.asarray(bicubic_lr(hr, 8)) for hr in hrs]
    assert scalars['val/PSNR_bicubic'][iteration] == pytest.approx(
        np.mean([psnr(lr, np.asarray(hr)) for lr, hr in zip(lrs, hrs)]), abs=1e-4)
    assert scalars['val/SSIM_bicubic'][iteration] == pytest.approx(
        np.mean([ssim(lr, np.asarray(hr)) for lr, hr in zip(lrs, hrs)]), abs=1e-6)
    logged = read_text_log(tmp_path / 'logs' / 'tiny' / 'loss_log.txt')
    for tag in ('val/PSNR_G', 'val/SSIM_G', 'val/PSNR_bicubic', 'val/SSIM_bicubic'):
        assert logged[tag][iteration] == pytest.approx(scalars[tag][iteration], abs=6e-5)

    grid = np.asarray(Image.open(tmp_path / 'logs' / 'tiny' / f'val_grid_{iteration}.png'))
    assert grid.shape == (14 + 2 * 66 + 2, 4 * 66 + 2, 3)  # 2 faces of 64 px, 4 columns, 2 px apart
    tile = lambda row, col: grid[16 + row * 66:16 + row * 66 + 64, 2 + col * 66:2 + col * 66 + 64]  # noqa: E731
    for row, (lr, hr) in enumerate(zip(lrs, hrs)):
        small = np.asarray(bicubic_reduce(hr, 8))
        np.testing.assert_array_equal(tile(row, 0), small.repeat(8, 0).repeat(8, 1))
        np.testing.assert_array_equal(tile(row, 1), lr)
        np.testing.assert_array_equal(tile(row, 3), np.asarray(hr))
    assert not [name for name in os.listdir(tmp_path / 'logs' / 'tiny') if name.endswith('.part')]


@pytest.mark.slow
def test_new_run_of_same_name_needs_overwrite_archives_old_logs_and_finished_run_does_nothing(tmp_path, caplog):
    face_folder(tmp_path / 'faces', count=2)
    flags = train_flags(tmp_path, 'sparnet', 'again', '--total_epochs', '1')
    assert run_training(flags) == 0
    before = (tmp_path / 'checkpoints' / 'again' / 'latest_train_state.pth').read_bytes()
    with pytest.raises(UserError, match=r'holds the checkpoints of an earlier run of --name again '
                                        r'\(latest_train_state\.pth, latest_net_G\.pth\): resume it with '
                                        r'--continue_train, or start a new run over it with --overwrite') as err:
        run_training(flags)
    assert '\n' not in str(err.value)
    assert (tmp_path / 'checkpoints' / 'again' / 'latest_train_state.pth').read_bytes() == before
    assert os.listdir(tmp_path / 'logs') == ['again']
    with pytest.raises(UserError, match='choose one'):
        run_training([*flags, '--overwrite', '--continue_train'])
    assert run_training([*flags, '--overwrite']) == 0
    archived = [d for d in os.listdir(tmp_path / 'logs') if d.startswith('again_archived_')]
    assert len(archived) == 1 and read_events(tmp_path / 'logs' / archived[0])[0]['loss/Pix']
    with caplog.at_level(logging.INFO):
        assert run_training([*flags, '--continue_train']) == 0
    assert 'has already trained 1 epochs' in caplog.text


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, caplog):
    """The save of iteration 3 is dropped: the loss of iteration 4 was computed with its weights."""
    face_folder(tmp_path / 'faces', count=4)
    real_step = SPARNetModel.optimize_parameters
    calls = []

    def step_going_nan(self):
        real_step(self)
        calls.append(1)
        if len(calls) == 4:
            self.losses['Pix'] = torch.tensor(float('nan'))
    monkeypatch.setattr(SPARNetModel, 'optimize_parameters', step_going_nan)
    flags = train_flags(tmp_path, 'sparnet', 'nan', '--total_epochs', '3', '--save_latest_freq', '1')
    assert run_training(flags) == 1
    assert len(calls) == 4
    assert ('non-finite loss at iteration 4 (Pix nan): stopped without saving; `latest` keeps iteration 2 (the one '
            'staged at iteration 3 was dropped: its weights led here)') in caplog.text
    save_dir = tmp_path / 'checkpoints' / 'nan'
    assert load_train_state(str(save_dir / 'latest_train_state.pth'))['iteration'] == 2
    assert sorted(os.listdir(save_dir)) == ['latest_net_G.pth', 'latest_train_state.pth']


def test_bad_training_flags_refused(tmp_path, capsys):
    face_folder(tmp_path / 'faces', count=2)
    with pytest.raises(UserError, match='--dataset_name single holds no HR targets'):
        run_training(['--gpus', '0', '--dataroot', str(tmp_path / 'faces'), '--dataset_name', 'single'])
    for flag, value in (('--print_freq', '0'), ('--batch_size', '-1'), ('--lr', '-1'), ('--beta1', '1')):
        with pytest.raises(SystemExit) as exit_info:
            run_training(train_flags(tmp_path, 'sparnet', 'bad', flag, value))
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith(f"error: argument {flag}: must be ")
    with pytest.raises(UserError, match='no training state to resume from'):
        run_training(train_flags(tmp_path, 'sparnet', 'never_trained', '--continue_train'))


@pytest.mark.slow
@pytest.mark.parametrize('extra, epochs', [((), 2), (('--published_epochs',), 3)])
def test_epoch_count_of_a_tiny_run(tmp_path, extra, epochs):
    face_folder(tmp_path / 'faces', count=4)  # batch 2: 2 iterations per epoch
    assert run_training(train_flags(tmp_path, 'sparnet', 'count', '--total_epochs', '2', *extra)) == 0
    save_dir = tmp_path / 'checkpoints' / 'count'
    state = load_train_state(str(save_dir / 'latest_train_state.pth'))
    assert (state['iteration'], state['epoch']) == (2 * epochs, epochs - 1)
    assert f'epoch_{epochs}_net_G.pth' in os.listdir(save_dir)
    assert sorted(read_events(tmp_path / 'logs' / 'count')[0]['loss/Pix']) == list(range(1, 2 * epochs + 1))


@pytest.mark.slow
def test_debug_run_and_verbose_networks(tmp_path, capsys):
    face_folder(tmp_path / 'faces', count=4)
    assert run_training(train_flags(tmp_path, 'sparnet', 'debug', '--total_epochs', '50', '--debug', '--verbose')) == 0
    state = load_train_state(str(tmp_path / 'checkpoints' / 'debug' / 'latest_train_state.pth'))
    assert (state['iteration'], state['epoch'], state['batch_in_epoch']) == (7, 6, 1)  # 7 epochs of one batch
    assert sorted(read_events(tmp_path / 'logs' / 'debug')[0]['loss/Pix']) == list(range(1, 8))
    parameters = sum(p.numel() for p in GeneratorSpec('sparnet', 1, 'spar', 'bn').build().parameters())
    out = capsys.readouterr().out
    assert f'[Network G] {parameters:,} parameters' in out and 'SPARNet(' in out


@pytest.mark.slow
def test_new_run_starts_at_resume_epoch_and_iter_with_that_learning_rate(tmp_path, caplog):
    face_folder(tmp_path / 'faces', count=4)
    flags = train_flags(tmp_path, 'sparnet', 'late', '--total_epochs', '3', '--resume_epoch', '1', '--resume_iter', '1',
                        '--lr_policy', 'linear', '--n_epochs_decay', '3')
    with caplog.at_level(logging.INFO):
        assert run_training(flags) == 0
    assert 'starting at epoch 2, iteration 3 (new weights, --resume_epoch/--resume_iter)' in caplog.text
    scalars, _ = read_events(tmp_path / 'logs' / 'late')
    assert sorted(scalars['loss/Pix']) == [4, 5, 6]
    assert scalars['lr/lr_G'][4] == pytest.approx(0.0005 * (1 - 4 / 6))  # linear to 0 over the 6 iterations of the run
