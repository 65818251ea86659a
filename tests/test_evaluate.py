"""scripts/evaluate.py and psnr_ssim.py: pairing by name, clear errors, CSV / JSON / Markdown reports."""
import csv
import json
import math
import os

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

import psnr_ssim as psnr_ssim_script
from helpers.commands import run_script
from metrics.identity import FaceIdentity
from metrics.pairing import PairingError, match_by_name, unmatched_message
from metrics.psnr_ssim import psnr, ssim
from scripts import evaluate
from utils.cli import UserError


def random_image(seed, size=(32, 32)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def noisy(image, seed, sigma=10):
    return np.clip(image + np.random.default_rng(seed).normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def save(folder, name, image):
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def read_csv(path):
    with open(path, newline='') as handle:
        return {row['name']: row for row in csv.DictReader(handle)}


def strict_json(path):
    """JSON as the standard defines it: Python's Infinity / NaN extensions are refused."""
    def refuse(token):
        raise ValueError(f'non-standard JSON constant {token}')
    with open(path) as handle:
        return json.loads(handle.read(), parse_constant=refuse)


def folders(tmp_path):
    return str(tmp_path / 'results'), str(tmp_path / 'gt')


def test_pairs_are_matched_by_name_not_by_sorted_position(tmp_path, caplog):
    results, gt = folders(tmp_path)
    images = {name: random_image(seed) for seed, name in enumerate('abc')}
    for name, image in images.items():
        save(results, f'{name}.png', image)
    save(gt, 'b.bmp', images['b'])  # another extension: same name
    save(gt, 'c.png', images['c'])
    with pytest.raises(PairingError) as err:
        evaluate.main(['--results_dir', results, '--gt_dir', gt])
    assert '1 result(s) in' in str(err.value) and 'a.png' in str(err.value) and '--skip_unmatched' in str(err.value)
    assert f"no ground truth for {os.path.join(results, 'a.png')}" in caplog.text

    json_path = str(tmp_path / 'means.json')
    assert evaluate.main(['--results_dir', results, '--gt_dir', gt, '--skip_unmatched',
                          '--save_json', json_path]) == 0
    rows = read_csv(os.path.join(results, 'metrics.csv'))
    assert sorted(rows) == ['b', 'c']  # by position, a.png would have been compared with b.bmp
    assert rows['b']['psnr'] == 'inf' and float(rows['b']['ssim']) == pytest.approx(1.0)
    assert rows['b']['gt'] == os.path.join(gt, 'b.bmp')


def test_unmatched_names_are_listed_on_both_sides(tmp_path):
    results, gt = folders(tmp_path)
    for name in ('x', 'only_result', 'sub/y'):
        save(results, f'{name}.png', random_image(0))
    for name in ('x', 'only_gt1', 'only_gt2', 'sub/y'):
        save(gt, f'{name}.jpg', random_image(0))
    pairing = match_by_name(results, gt)
    assert [pair.name for pair in pairing.pairs] == ['sub/y', 'x']
    assert pairing.results_without_gt == ['only_result.png']
    assert pairing.gt_without_result == ['only_gt1.jpg', 'only_gt2.jpg']
    message = unmatched_message(pairing, results, gt)
    assert f'1 result(s) in {results} have no ground truth of the same name in {gt}: only_result.png' in message
    assert f'2 ground-truth image(s) in {gt} have no result of the same name in {results}: ' \
           'only_gt1.jpg, only_gt2.jpg' in message


def test_ambiguous_names_and_empty_folders_are_refused(tmp_path):
    results, gt = folders(tmp_path)
    save(results, 'a.png', random_image(0))
    save(results, 'a.jpg', random_image(0))
    save(gt, 'a.png', random_image(0))
    with pytest.raises(PairingError, match="a.jpg and a.png have the same name 'a'"):
        match_by_name(results, gt)
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(PairingError, match='--gt_dir .*empty: no images found'):
        match_by_name(gt, str(tmp_path / 'empty'))
    with pytest.raises(PairingError, match="--results_dir .*missing': no such folder"):
        match_by_name(str(tmp_path / 'missing'), gt)


def test_size_mismatch_is_a_clear_error_unless_results_are_resized(tmp_path, caplog):
    results, gt = folders(tmp_path)
    small, large = random_image(0, (32, 48)), random_image(1, (64, 96))
    result_path, gt_path = save(results, 'face.png', small), save(gt, 'face.png', large)
    save(results, 'ok.png', noisy(large, 2))
    save(gt, 'ok.png', large)
    assert evaluate.main(['--results_dir', results, '--gt_dir', gt]) == 1
    expected = (f'{result_path}: result is 48x32 but its ground truth {gt_path} is 96x64; '
                'pass --resize_result to resize results to the ground-truth size (bicubic)')
    assert expected in caplog.text
    rows = read_csv(os.path.join(results, 'metrics.csv'))
    assert rows['face']['psnr'] == '' and rows['face']['note'] == f'error: {expected}'
    assert float(rows['ok']['psnr']) == pytest.approx(psnr(noisy(large, 2), large))

    assert evaluate.main(['--results_dir', results, '--gt_dir', gt, '--resize_result']) == 0
    resized = np.asarray(Image.fromarray(small).resize((96, 64), Image.BICUBIC))
    assert float(read_csv(os.path.join(results, 'metrics.csv'))['face']['psnr']) == \
        pytest.approx(psnr(resized, large), abs=1e-9)


@pytest.fixture(scope='module')
def face_folders(tmp_path_factory):
    """Ground truth: a face, a second face, an image without a face. Results: the face blurred,
    the second face unchanged (PSNR inf), the third with noise."""
    root = tmp_path_factory.mktemp('faces')
    astronaut = np.asarray(Image.fromarray(data.astronaut()[39:213, 135:309]).resize((160, 160), Image.BICUBIC))
    second = np.asarray(Image.fromarray(data.astronaut()[39:213, 135:309][:, ::-1]).resize((160, 160)))
    no_face = cv2.GaussianBlur(random_image(5, (160, 160)), (0, 0), 3)
    gt = {'face': astronaut, 'mirrored': second, 'no_face': no_face}
    out = {'face': cv2.GaussianBlur(astronaut, (0, 0), 1.2), 'mirrored': second.copy(), 'no_face': noisy(no_face, 6)}
    for name in gt:
        save(str(root / 'gt'), f'{name}.png', gt[name])
        save(str(root / 'results'), f'{name}.png', out[name])
    return str(root / 'results'), str(root / 'gt'), out, gt


@pytest.mark.slow
def test_reports_of_psnr_ssim_and_identity(face_folders, tmp_path, capsys):
    results, gt, out, truth = face_folders
    csv_path, json_path = str(tmp_path / 'scores.csv'), str(tmp_path / 'means.json')
    assert evaluate.main(['--results_dir', results, '--gt_dir', gt, '--metrics', 'ssim, psnr,id',
                          '--save_csv', csv_path, '--save_json', json_path]) == 0
    rows = read_csv(csv_path)
    assert list(rows) == ['face', 'mirrored', 'no_face']
    identity = FaceIdentity()
    for name in rows:
        expected_psnr = psnr(out[name], truth[name])
        assert (rows[name]['psnr'] == 'inf') if math.isinf(expected_psnr) else \
            float(rows[name]['psnr']) == pytest.approx(expected_psnr, abs=1e-9)
        assert float(rows[name]['ssim']) == pytest.approx(ssim(out[name], truth[name]), abs=1e-12)
    face_scores = [identity.compare(out[name], truth[name]) for name in ('face', 'mirrored')]
    assert float(rows['face']['id_cos']) == pytest.approx(face_scores[0][0], abs=1e-9)
    assert float(rows['face']['id_dist']) == pytest.approx(face_scores[0][1], abs=1e-9)
    assert rows['no_face']['id_cos'] == '' and rows['no_face']['note'] == 'no face found in the ground truth'

    means = strict_json(json_path)
    finite = [psnr(out[name], truth[name]) for name in ('face', 'no_face')]
    assert means['psnr'] == pytest.approx(np.mean(finite), abs=1e-9)
    assert means['psnr_identical'] == 1
    assert means['ssim'] == pytest.approx(np.mean([ssim(out[n], truth[n]) for n in truth]), abs=1e-12)
    assert means['id_cos'] == pytest.approx(np.mean([s[0] for s in face_scores]), abs=1e-9)
    assert means['id_dist'] == pytest.approx(np.mean([s[1] for s in face_scores]), abs=1e-9)
    assert means['id_no_face'] == 1 and means['pairs'] == 3 and means['fid'] is None
    assert means['y_quantization'] == 'uint8' and 'truncated to uint8' in means['protocol']

    table = capsys.readouterr().out
    assert '| metric | mean | over |' in table
    assert (f"| PSNR (Y uint8, dB) | {means['psnr']:.4f} | 3 pairs (1 identical pairs, PSNR inf, not in the mean) |"
            in table)
    assert f"| SSIM (Y uint8) | {means['ssim']:.4f} | 3 pairs |" in table
    assert f"| identity cosine similarity | {means['id_cos']:.4f} | 2 pairs (1 without a face found" in table


def test_identical_folders_give_inf_as_a_json_string(tmp_path, capsys):
    results, gt = folders(tmp_path)
    for seed in range(2):
        save(results, f'{seed}.png', random_image(seed))
        save(gt, f'{seed}.png', random_image(seed))
    json_path = str(tmp_path / 'means.json')
    assert evaluate.main(['--results_dir', results, '--gt_dir', gt, '--save_json', json_path]) == 0
    means = strict_json(json_path)
    assert means['psnr'] == 'inf' and float(means['psnr']) == math.inf
    assert means['ssim'] == pytest.approx(1.0) and means['psnr_identical'] == 2
    assert '| PSNR (Y uint8, dB) | inf |' in capsys.readouterr().out


def test_rgb_psnr_option(tmp_path):
    results, gt = folders(tmp_path)
    truth = random_image(0)
    save(gt, 'a.png', truth)
    save(results, 'a.png', noisy(truth, 1))
    json_path = str(tmp_path / 'means.json')
    assert evaluate.main(['--results_dir', results, '--gt_dir', gt, '--metrics', 'psnr',
                          '--psnr_channels', 'rgb', '--save_json', json_path]) == 0
    means = strict_json(json_path)
    assert means['psnr'] == pytest.approx(psnr(noisy(truth, 1), truth, 'rgb'), abs=1e-9)
    assert means['psnr'] != pytest.approx(psnr(noisy(truth, 1), truth), abs=1e-3)
    assert means['ssim'] is None


def test_float_y_option_is_used_and_reported(face_folders, tmp_path, capsys):
    results, gt, out, truth = face_folders
    json_path = str(tmp_path / 'means.json')
    assert evaluate.main(['--results_dir', results, '--gt_dir', gt, '--y_quantization', 'float',
                          '--save_json', json_path]) == 0
    means = strict_json(json_path)
    finite = [psnr(out[name], truth[name], y_quantization='float') for name in ('face', 'no_face')]
    assert means['psnr'] == pytest.approx(np.mean(finite), abs=1e-9)
    assert means['psnr'] != pytest.approx(np.mean([psnr(out[n], truth[n]) for n in ('face', 'no_face')]), abs=1e-3)
    assert means['ssim'] == pytest.approx(np.mean([ssim(out[n], truth[n], 'float') for n in truth]), abs=1e-12)
    assert means['y_quantization'] == 'float' and 'Y in float64' in means['protocol']
    table = capsys.readouterr().out
    assert f"| PSNR (Y float, dB) | {means['psnr']:.4f} |" in table and '| SSIM (Y float) |' in table
    assert f"PSNR/SSIM protocol: {means['protocol']}." in table


def test_a_broken_file_is_reported_and_the_rest_evaluated(tmp_path, caplog):
    results, gt = folders(tmp_path)
    for name in ('a', 'b'):
        save(gt, f'{name}.png', random_image(0))
    save(results, 'a.png', noisy(random_image(0), 1))
    with open(os.path.join(results, 'b.png'), 'wb') as handle:
        handle.write(b'not a png')
    json_path = str(tmp_path / 'means.json')
    assert evaluate.main(['--results_dir', results, '--gt_dir', gt, '--save_json', json_path]) == 1
    assert f"{os.path.join(results, 'b.png')}: not a readable image" in caplog.text
    rows = read_csv(os.path.join(results, 'metrics.csv'))
    assert rows['b']['note'].startswith('error: ') and rows['b']['ssim'] == ''
    means = strict_json(json_path)
    assert means['pairs'] == 1 and means['failed_pairs'] == 1
    assert means['psnr'] == pytest.approx(float(rows['a']['psnr']))


def test_a_float_image_of_nan_fails_its_pair_and_the_rest_is_evaluated(tmp_path, caplog):
    """Once scored silently (PSNR 6.75, as a black image): now one line, the pair listed as failed."""
    results, gt = folders(tmp_path)
    for name in ('a', 'b'):
        save(gt, f'{name}.png', random_image(0))
    save(results, 'a.png', noisy(random_image(0), 1))
    Image.fromarray(np.full((32, 32), np.nan, np.float32)).save(os.path.join(results, 'b.tif'))
    json_path = str(tmp_path / 'means.json')
    assert evaluate.main(['--results_dir', results, '--gt_dir', gt, '--save_json', json_path]) == 1
    message = f"{os.path.join(results, 'b.tif')}: not a readable image (a float image holding NaN or infinite values"
    assert message in caplog.text
    rows = read_csv(os.path.join(results, 'metrics.csv'))
    assert rows['b']['note'].startswith(f'error: {message}') and rows['b']['psnr'] == rows['b']['ssim'] == ''
    means = strict_json(json_path)
    assert means['pairs'] == 1 and means['failed_pairs'] == 1
    assert means['psnr'] == pytest.approx(float(rows['a']['psnr']))


def test_bad_flags_are_user_errors(tmp_path):
    results, gt = folders(tmp_path)
    save(results, 'a.png', random_image(0))
    save(gt, 'a.png', random_image(0))
    with pytest.raises(UserError, match="--metrics 'psnr,lpips': .*; unknown: lpips"):
        evaluate.main(['--results_dir', results, '--gt_dir', gt, '--metrics', 'psnr,lpips'])
    missing = str(tmp_path / 'inception.pth')
    with pytest.raises(UserError, match=f'{missing}: FID Inception weights not found'):
        evaluate.main(['--results_dir', results, '--gt_dir', gt, '--metrics', 'fid', '--gpus', '0',
                       '--inception_weights', missing])


def test_psnr_ssim_script_prints_the_same_means(face_folders, capsys):
    results, gt, out, truth = face_folders
    assert psnr_ssim_script.main(['--results_dir', results, '--gt_dir', gt]) == 0
    table = capsys.readouterr().out
    finite = np.mean([psnr(out[name], truth[name]) for name in ('face', 'no_face')])
    assert f'| PSNR (Y uint8, dB) | {finite:.4f} |' in table
    assert f"| SSIM (Y uint8) | {np.mean([ssim(out[n], truth[n]) for n in truth]):.4f} | 3 pairs |" in table
    assert 'PSNR/SSIM protocol: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, Y truncated to uint8' in table


@pytest.mark.slow
def test_command_line_exit_code_and_one_line_error(tmp_path):
    results, gt = folders(tmp_path)
    save(results, 'a.png', random_image(0))
    save(gt, 'b.png', random_image(0))
    run = run_script('-m', 'scripts.evaluate', '--results_dir', results, '--gt_dir', gt, timeout=120)
    assert run.returncode == 2
    last_line = run.stderr.strip().splitlines()[-1]
    assert last_line.startswith('error: no image of') and 'matched by file name' in last_line
    assert 'Traceback' not in run.stderr


def test_several_results_folders_give_one_table_with_a_row_per_method(tmp_path, capsys):
    gt = str(tmp_path / 'gt')
    truths = [random_image(seed) for seed in range(3)]
    methods = {'mild': 5, 'strong': 25}  # noise sigma of each method's results
    for index, truth in enumerate(truths):
        save(gt, f'{index}.png', truth)
        for method, sigma in methods.items():
            save(str(tmp_path / method), f'{index}.png', noisy(truth, index, sigma))
    table, json_path = str(tmp_path / 'table.csv'), str(tmp_path / 'means.json')
    assert evaluate.main(['--results_dir', f'gentle={tmp_path / "mild"}', str(tmp_path / 'strong'), '--gt_dir', gt,
                          '--save_table', table, '--save_json', json_path]) == 0
    printed = capsys.readouterr().out
    with open(table, newline='') as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ['method', 'PSNR (dB)', 'SSIM', 'pairs']
    assert [row[0] for row in rows[1:]] == ['gentle', 'strong']
    for row, sigma in zip(rows[1:], methods.values()):
        results = [noisy(truth, index, sigma) for index, truth in enumerate(truths)]
        assert float(row[1]) == pytest.approx(np.mean([psnr(r, t) for r, t in zip(results, truths)]), abs=1e-4)
        assert float(row[2]) == pytest.approx(np.mean([ssim(r, t) for r, t in zip(results, truths)]), abs=1e-4)
        assert row[3] == '3'
        assert f"| {' | '.join(row)} |" in printed
    assert '| method | PSNR (dB) | SSIM | pairs |\n|---|---:|---:|---:|' in printed
    assert float(rows[1][1]) > float(rows[2][1]) + 5
    assert set(strict_json(json_path)) == {'gentle', 'strong'}
    assert os.path.isfile(tmp_path / 'mild' / 'metrics.csv') and os.path.isfile(tmp_path / 'strong' / 'metrics.csv')


def test_several_results_folders_with_the_same_name_are_refused(tmp_path):
    with pytest.raises(UserError, match="two folders are named 'out'; name them as NAME=FOLDER"):
        evaluate.main(['--results_dir', str(tmp_path / 'a' / 'out'), str(tmp_path / 'b' / 'out'),
                       '--gt_dir', str(tmp_path)])
