"""SPARNetHD training end to end on the CPU: GAN losses, EMA generator, checkpoints, logs, test.py."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from archs.generator_spec import GeneratorSpec
from helpers.commands import check_test_script_output, run_training
from helpers.faces import face_folder
from helpers.training import train_flags
from training.log_reader import read_events
from utils.cli import UserError

pytestmark = pytest.mark.usefixtures('one_torch_thread', 'narrow_sparnethd')


@pytest.mark.slow
def test_tiny_sparnethd_learns_saves_logs_and_its_ema_loads_in_test_py(tmp_path):
    face_folder(tmp_path / 'faces', count=4)
    val = face_folder(tmp_path / 'val', count=1, seed=3)
    flags = train_flags(tmp_path, 'sparnethd', 'tiny_hd', '--total_epochs', '4', '--batch_size', '1',
                        '--lambda_pcp', '0', '--vgg_weights', str(tmp_path / 'absent.pth'), '--g_lr', '0.0005',
                        '--visual_freq', '16', '--val_dataroot', val, '--val_freq', '16', '--save_latest_freq', '16')
    assert run_training(flags) == 0

    scalars, images = read_events(tmp_path / 'logs' / 'tiny_hd')
    pix = [scalars['loss/Pix'][step] for step in range(1, 17)]
    assert np.mean(pix[-4:]) < 0.7 * np.mean(pix[:4])
    expected_tags = {'loss/FM', 'loss/G', 'loss/D', 'lr/lr_G', 'lr/lr_D', 'val/PSNR_G', 'val/PSNR_H', 'val/SSIM_H',
                     'val/PSNR_bicubic', 'val/SSIM_bicubic'}
    assert expected_tags <= set(scalars)
    assert 'loss/PCP' not in scalars and scalars['lr/lr_D'][16] == pytest.approx(0.0004)
    assert images == {'images/LR-SR-SR_EMA-HR': [16], 'val/grid': [16]}
    # The degraded input is the baseline: its LR | G | H | HR grid has no separate bicubic column.
    grid = np.asarray(Image.open(tmp_path / 'logs' / 'tiny_hd' / 'val_grid_16.png'))
    assert grid.shape == (14 + 66 + 2, 4 * 66 + 2, 3)

    save_dir = tmp_path / 'checkpoints' / 'tiny_hd'
    assert sorted(os.listdir(save_dir)) == sorted(f'{tag}_net_{net}.pth' for tag in ('epoch_4', 'latest')
                                                  for net in 'GHD') + ['latest_train_state.pth']
    G, H = (torch.load(save_dir / f'latest_net_{net}.pth', weights_only=True) for net in 'GH')
    assert G.keys() == H.keys() and any(k.endswith('weight_orig') for k in H)
    assert not all(torch.equal(G[k], H[k]) for k in G)
    errors = sigma_errors(H)  # H's vectors, power-iterated on H's weights as published, give its sigma
    assert len(errors) > 100 and max(errors) < 0.1 and np.median(errors) < 0.03

    check_test_script_output(['--model', 'sparnethd', '--res_depth', '1', '--name', 'tiny_hd', '--checkpoints_dir',
                              str(tmp_path / 'checkpoints')], save_dir / 'latest_net_H.pth',
                             GeneratorSpec('sparnethd', 1, 'spar', 'in'), tmp_path)


def sigma_errors(state_dict):
    """Per spectral-normalised conv: |u . W v - largest singular value of W| / that value, W = weight_orig."""
    errors = []
    for key, weight in state_dict.items():
        if key.endswith('weight_orig'):
            matrix, prefix = weight.flatten(1).double(), key[:-len('orig')]
            implied = state_dict[prefix + 'u'].double() @ matrix @ state_dict[prefix + 'v'].double()
            largest = torch.linalg.matrix_norm(matrix, ord=2)
            errors.append(float(abs(implied - largest) / largest))
    return errors


def test_missing_vgg_weights_stop_before_training(tmp_path):
    face_folder(tmp_path / 'faces', count=2)
    with pytest.raises(UserError, match='vgg19-dcbb9e9d.pth: no such file') as err:
        run_training(train_flags(tmp_path, 'sparnethd', 'no_vgg',
                                 '--vgg_weights', str(tmp_path / 'vgg19-dcbb9e9d.pth')))
    assert 'download.pytorch.org' in str(err.value) and not os.path.exists(tmp_path / 'checkpoints' / 'no_vgg')
