"""scripts/benchmark_end_to_end.py: the output comparisons it reports (the timing needs no test)."""
import numpy as np
from PIL import Image

from metrics import psnr_ssim
from scripts import benchmark_end_to_end as benchmark


def save(folder, name, array):
    folder.mkdir(exist_ok=True)
    Image.fromarray(array).save(folder / name)


def test_level_difference_counts_values_beyond_one_level(tmp_path):
    a = np.zeros((2, 5, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0], b[0, 1, 1], b[1, 4, 2] = 1, 2, 7  # 30 values: 27 equal, 2 beyond one level, at most 7
    save(tmp_path / 'a', 'x.png', a)
    save(tmp_path / 'b', 'x.png', b)
    same, beyond_one, largest = benchmark.level_difference(tmp_path / 'a', tmp_path / 'b', ['x.png'])
    assert (same, beyond_one, largest) == (27 / 30, 2 / 30, 7)


def test_quality_report_scores_each_output_against_hr(tmp_path):
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (16, 16, 3), np.uint8)
    published = np.clip(hr.astype(int) + rng.integers(-20, 21, hr.shape), 0, 255).astype(np.uint8)
    published[0, 0] = 100
    bf16 = published.copy()
    bf16[0, 0] = 103  # three values three levels off
    save(tmp_path / 'hr', 'f.png', hr)
    save(tmp_path / 'published_0', 'f.png', published)
    save(tmp_path / 'test.py_fp32_0', 'f.png', published)
    save(tmp_path / 'test.py_bf16_0', 'f.png', bf16)
    lines = benchmark.quality_report(tmp_path, tmp_path / 'hr', ['f.png'], ['fp32', 'bf16'])
    expected = psnr_ssim.psnr(published, hr)
    assert lines[0] == (f'published loop: PSNR {expected:.4f} dB, SSIM {psnr_ssim.ssim(published, hr):.5f} '
                        'against the HR faces')
    assert lines[1].startswith(f'test.py fp32: PSNR {expected:.4f} dB')
    assert lines[2].startswith(f'test.py bf16: PSNR {psnr_ssim.psnr(bf16, hr):.4f} dB')
    assert lines[3] == ('test.py fp32 vs published outputs: 100.00 % of the pixel values identical, '
                        '0.0000 % more than one level apart, at most 0 levels apart')
    assert lines[4] == (f'test.py bf16 vs published outputs: {100 * 765 / 768:.2f} % of the pixel values '
                        f'identical, {100 * 3 / 768:.4f} % more than one level apart, at most 3 levels apart')
