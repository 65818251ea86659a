"""Training logs written by TrainLogger and read back by training.log_reader: events, loss_log.txt, resume."""
import os

import numpy as np
import pytest
from tensorboardX import SummaryWriter

from training.log_reader import RunLogError, event_files, read_events, read_run, read_text_log
from training.logger import TrainLogger, validation_line

GRID = np.zeros((20, 30, 3), np.uint8)


def log_iterations(logger, steps, pix, validate_at=()):
    for step in steps:
        logger.progress(1, 2, step, {'Pix': pix(step)}, {'lr_G': 2e-4}, 0.25, 10)
        logger.scalars(step, {'Pix': pix(step)}, 'loss')
        if step in validate_at:
            logger.validation(step, {'PSNR_G': 20 + step, 'SSIM_G': 0.5, 'PSNR_bicubic': 19.5, 'SSIM_bicubic': 0.25},
                              GRID)


def test_a_resumed_run_reads_as_tensorboard_shows_it(tmp_path):
    """Interrupted after iteration 4 with `latest` saved at 2: iterations 3-4 are logged again after the
    resume, so what the first run logged after 2 is dropped, in the events and in the text log alike."""
    folder = str(tmp_path / 'run')
    first = TrainLogger(folder)
    log_iterations(first, range(1, 5), lambda step: 1.0 / step, validate_at=(2, 4))
    first.close()
    resumed = TrainLogger(folder, resume_iteration=2)
    log_iterations(resumed, range(3, 6), lambda step: 10.0 * step, validate_at=(3,))
    resumed.close()

    scalars, images = read_events(folder)
    expected_pix = {1: 1.0, 2: 0.5, 3: 30.0, 4: 40.0, 5: 50.0}
    assert scalars['loss/Pix'] == pytest.approx(expected_pix)
    assert scalars['val/PSNR_G'] == pytest.approx({2: 22.0, 3: 23.0})
    assert scalars['val/PSNR_bicubic'] == pytest.approx({2: 19.5, 3: 19.5})
    assert images == {'val/grid': [2, 3]}
    assert len(event_files(folder)) == 2

    logged = read_text_log(os.path.join(folder, 'loss_log.txt'))
    assert logged['loss/Pix'] == pytest.approx(expected_pix)
    assert logged['lr/lr_G'] == pytest.approx(dict.fromkeys(range(1, 6), 2e-4))
    assert logged['time/seconds_per_iteration'] == pytest.approx(dict.fromkeys(range(1, 6), 0.25))
    for tag in ('val/PSNR_G', 'val/SSIM_G', 'val/PSNR_bicubic', 'val/SSIM_bicubic'):
        assert logged[tag] == pytest.approx(scalars[tag]), tag
    assert sorted(name for name in os.listdir(folder) if name.endswith('.png')) == [
        'val_grid_2.png', 'val_grid_3.png', 'val_grid_4.png']
    assert read_run(folder) == scalars and read_run(folder, 'text') == logged
    assert read_run(os.path.join(folder, 'loss_log.txt')) == logged


def test_validation_line_states_the_gain_over_bicubic():
    line = validation_line(7, {'PSNR_G': 25.25, 'SSIM_G': 0.75, 'PSNR_H': 24.0, 'SSIM_H': 0.7,
                               'PSNR_bicubic': 23.5, 'SSIM_bicubic': 0.65})
    assert line == ('validation at iteration 7: PSNR_G 25.2500 SSIM_G 0.7500 PSNR_H 24.0000 SSIM_H 0.7000 '
                    'PSNR_bicubic 23.5000 SSIM_bicubic 0.6500 | G +1.75 dB, H +0.50 dB over bicubic')


def test_text_log_lines_by_hand(tmp_path):
    path = tmp_path / 'loss_log.txt'
    path.write_text('epoch 1/3 iter 10 | Pix 0.5 PCP 2.25 G -0.125 lr_G 0.0001 lr_D 0.0004 | 1.500 s/it | ETA 0:01:00\n'
                    'some other line\n'
                    'epoch 1/3 iter 20 | Pix nan lr_G 0.0001 | 1.250 s/it | ETA 0:00:30\n'
                    'validation at iteration 20: PSNR_G 21.0000 SSIM_G 0.6000 PSNR_bicubic 20.0000 '
                    'SSIM_bicubic 0.5000 | G +1.00 dB over bicubic\n', encoding='utf-8')
    logged = read_text_log(path)
    assert logged['loss/Pix'][10] == 0.5 and np.isnan(logged['loss/Pix'][20])
    assert logged['loss/PCP'] == {10: 2.25} and logged['loss/G'] == {10: -0.125}
    assert logged['lr/lr_D'] == {10: 0.0004} and logged['time/seconds_per_iteration'] == {10: 1.5, 20: 1.25}
    assert logged['val/PSNR_G'] == {20: 21.0} and logged['val/SSIM_bicubic'] == {20: 0.5}


def test_a_record_cut_short_by_a_crash_ends_the_file(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    for step in range(1, 4):
        writer.add_scalar('loss/Pix', step / 10, step)
    writer.close()
    (path,) = event_files(tmp_path)
    with open(path, 'rb') as handle:
        data = handle.read()
    with open(path, 'wb') as handle:
        handle.write(data[:-7])
    assert read_events(tmp_path)[0] == {'loss/Pix': pytest.approx({1: 0.1, 2: 0.2})}


def test_unreadable_logs_are_clear_errors(tmp_path):
    with pytest.raises(RunLogError, match='missing: no such log folder or file'):
        read_run(str(tmp_path / 'missing'))
    with pytest.raises(RunLogError, match=r'no training logs found \(looked for events.out.tfevents.\* or '):
        read_run(str(tmp_path))
    (tmp_path / 'loss_log.txt').write_text('', encoding='utf-8')
    with pytest.raises(RunLogError, match=r'looked for events.out.tfevents.\*\)'):
        read_run(str(tmp_path), 'events')
    (tmp_path / 'events.out.tfevents.1.host').write_bytes(b'\x05' + b'\x00' * 11 + b'\xff' * 5 + b'\x00' * 4)
    with pytest.raises(RunLogError, match='not a TensorBoard event file'):
        read_events(tmp_path)
