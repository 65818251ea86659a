"""scripts/plot_training.py: learning curves of a tiny real run, from its events and its text log."""
import os

import numpy as np
import pytest
from PIL import Image

from helpers.commands import run_training
from helpers.faces import face_folder
from helpers.training import train_flags
from scripts import plot_training
from training.log_reader import read_events
from utils.cli import UserError

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def lines_of(axis):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axis.get_lines()}


@pytest.mark.slow
def test_curves_of_a_tiny_run_from_its_events_and_its_text_log(tmp_path, capsys):
    face_folder(tmp_path / 'faces', count=4)
    val = face_folder(tmp_path / 'val', count=2, seed=3)
    assert run_training(train_flags(tmp_path, 'sparnet', 'tiny', '--total_epochs', '3', '--val_dataroot', val,
                                    '--val_freq', '2')) == 0  # 6 iterations, validated every 2
    tiny_run = str(tmp_path / 'logs' / 'tiny')
    out = str(tmp_path / 'curves' / 'both.png')
    text_log = os.path.join(tiny_run, 'loss_log.txt')
    assert plot_training.main(['--runs', tiny_run, text_log, '--labels', 'events', 'text', '--out', out]) == 0
    with Image.open(out) as picture:
        assert picture.size == (1500, 360)  # three 5 x 3.6 inch panels (Pix, PSNR, SSIM) at 100 dpi
        assert len(np.unique(np.asarray(picture.convert('L')))) > 20
    assert os.listdir(os.path.dirname(out)) == ['both.png']

    scalars = read_events(tiny_run)[0]
    runs = plot_training.load_runs([tiny_run, text_log], ['events', 'text'])
    assert runs[0] == ('events', scalars)
    for tag, values in scalars.items():  # the text log has 4 significant digits, 4 decimals, 3 for s/it
        assert list(runs[1][1][tag]) == list(values), tag
        assert runs[1][1][tag] == pytest.approx(values, rel=5e-4, abs=5e-4 if tag.startswith('time/') else 5e-5), tag
    assert list(scalars['val/PSNR_G']) == [2, 4, 6]
    bicubic = scalars['val/PSNR_bicubic'][2]
    assert scalars['val/PSNR_bicubic'] == {2: bicubic, 4: bicubic, 6: bicubic}

    figure = plot_training.plot(runs[:1], smooth=0)
    pix_axis, psnr_axis, ssim_axis = figure.axes
    assert [axis.get_title() for axis in figure.axes] == ['Pix', 'validation PSNR (dB)', 'validation SSIM']
    assert lines_of(pix_axis)['events'] == (list(range(1, 7)), [scalars['loss/Pix'][s] for s in range(1, 7)])
    drawn = lines_of(psnr_axis)
    assert drawn['events G'] == ([2, 4, 6], [scalars['val/PSNR_G'][s] for s in (2, 4, 6)])
    assert drawn['events bicubic'][1] == [bicubic, bicubic]  # a horizontal line across the panel

    table = capsys.readouterr().out
    gain = scalars['val/PSNR_G'][6] - bicubic
    assert (f"| events | G | 6 | {scalars['val/PSNR_G'][6]:.4f} | {scalars['val/SSIM_G'][6]:.4f} | "
            f"{bicubic:.4f} | {scalars['val/SSIM_bicubic'][6]:.4f} | {gain:.2f} |") in table
    assert f'learning curves written to {out}' in table

    assert plot_training.main(['--runs', tiny_run, '--source', 'text']) == 0
    assert os.path.getsize(os.path.join(tiny_run, 'training_curves.png')) > 10000


def test_a_run_without_validation_has_only_loss_panels():
    figure = plot_training.plot([('a', {'loss/Pix': {1: 1.0, 2: 0.5}, 'loss/G': {1: -1.0, 2: 1.0}})])
    assert [axis.get_title() for axis in figure.axes] == ['G', 'Pix']
    assert [axis.get_yscale() for axis in figure.axes] == ['linear', 'log']


def test_smoothing_as_tensorboard():
    assert plot_training.smoothed([1.0, 2.0], 0.5) == pytest.approx([1.0, 5 / 3])
    assert plot_training.smoothed([3.0, 1.0], 0) == [3.0, 1.0]


def test_bad_runs_and_flags_are_user_errors(tmp_path):
    text_log = tmp_path / 'loss_log.txt'
    text_log.write_text('epoch 1/1 iter 1 | Pix 0.5 | 1.000 s/it | ETA 0:00:00\n', encoding='utf-8')
    with pytest.raises(UserError, match='--labels gives 1 names for 2 runs'):
        plot_training.main(['--runs', str(text_log), str(text_log), '--labels', 'a'])
    with pytest.raises(SystemExit):  # --smooth must be a number 0 or more and below 1
        plot_training.main(['--runs', str(text_log), '--smooth', '1'])
    with pytest.raises(UserError, match='absent: no such log folder or file'):
        plot_training.main(['--runs', str(tmp_path / 'absent')])
    text_log.write_text('nothing logged\n', encoding='utf-8')
    with pytest.raises(UserError, match='no losses or validation scores logged yet'):
        plot_training.main(['--runs', str(text_log)])
