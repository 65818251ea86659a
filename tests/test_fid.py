"""FID: the Fréchet distance against direct computations, and the whole pipeline against
pytorch-fid's own code, with a random-weight Inception saved in pytorch-fid's format."""
import json
import os
import warnings

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from scipy import linalg
from skimage import data

from metrics.fid import (
    FID_WEIGHTS_NAME,
    INCEPTION_WEIGHTS,
    FIDInception,
    default_inception_weights_path,
    feature_statistics,
    fid_from_features,
    frechet_distance,
)
from scripts import evaluate
from utils.cli import UserError
from weights.download import DownloadError
from weights.state_dict import WeightsError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sqrtm_frechet(mu1, sigma1, mu2, sigma2):
    """The textbook formula with SciPy's matrix square root of the product (pytorch-fid's route)."""
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(linalg.sqrtm(sigma1 @ sigma2).real)


def eigvals_frechet(mu1, sigma1, mu2, sigma2):
    """Tr sqrt(S1 S2) from the (real, non-negative) eigenvalues of the non-symmetric product."""
    eigenvalues = np.clip(linalg.eigvals(sigma1 @ sigma2).real, 0, None)
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(eigenvalues).sum()


def random_statistics(n_samples, dims, seed):
    rng = np.random.default_rng(seed)
    features1 = rng.normal(0, 1, (n_samples, dims)) @ rng.normal(0, 1, (dims, dims))
    features2 = rng.normal(0.5, 2, (n_samples, dims))
    return features1, features2, (*feature_statistics(features1), *feature_statistics(features2))


def test_frechet_distance_of_1d_gaussians_by_hand():
    # N(0, 1) vs N(3, 4): 3^2 + 1 + 4 - 2 sqrt(1 * 4) = 10
    assert frechet_distance(np.array([0.0]), np.array([[1.0]]), np.array([3.0]), np.array([[4.0]])) == \
        pytest.approx(10.0, abs=1e-12)


def test_frechet_distance_to_a_point_mass_by_hand():
    # A folder of identical images has zero covariance: 3 * 1^2 + 0 + Tr(I) - 0 = 6
    assert frechet_distance(np.zeros(3), np.zeros((3, 3)), np.ones(3), np.eye(3)) == pytest.approx(6.0, abs=1e-12)


def test_frechet_distance_of_diagonal_covariances_by_hand():
    # Commuting covariances: Tr sqrt(S1 S2) = sqrt(1*9) + sqrt(4*1) = 5; ||mu1 - mu2||^2 = 1 + 4
    value = frechet_distance(np.array([1.0, 0.0]), np.diag([1.0, 4.0]), np.array([0.0, 2.0]), np.diag([9.0, 1.0]))
    assert value == pytest.approx(5 + 5 + 10 - 2 * 5, abs=1e-12)


def test_frechet_distance_matches_scipy_sqrtm_on_random_features():
    features1, features2, stats = random_statistics(200, 12, seed=0)
    np.testing.assert_allclose(stats[1], np.cov(features1.T), rtol=1e-12)
    np.testing.assert_allclose(stats[0], features1.mean(axis=0), rtol=1e-12)
    assert fid_from_features(features1, features2) == pytest.approx(sqrtm_frechet(*stats), rel=1e-9)


def test_frechet_distance_with_fewer_samples_than_dimensions():
    features1, features2, stats = random_statistics(6, 20, seed=1)
    assert fid_from_features(features1, features2) == pytest.approx(eigvals_frechet(*stats), rel=1e-6)


def test_frechet_distance_matches_pytorch_fid_function():
    from pytorch_fid.fid_score import calculate_frechet_distance
    _, _, stats = random_statistics(50, 10, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            expected = calculate_frechet_distance(*stats)
        except TypeError as err:  # pytorch-fid 0.3.0 passes disp=, which SciPy >= 1.18 no longer takes
            pytest.skip(f'pytorch-fid does not run on this SciPy: {err}')
    assert frechet_distance(*stats) == pytest.approx(expected, rel=1e-9)


def test_fid_needs_two_images_per_side():
    with pytest.raises(ValueError, match='at least 2 images'):
        fid_from_features(np.ones((1, 4)), np.ones((3, 4)))


@pytest.fixture(scope='module')
def image_folders(tmp_path_factory):
    """Two folders of three 64x64 images: astronaut crops and their noisy versions."""
    root = tmp_path_factory.mktemp('fid_images')
    rng = np.random.default_rng(0)
    astronaut = data.astronaut()
    for folder in ('results', 'gt'):
        (root / folder).mkdir()
    for index, (top, left) in enumerate([(60, 150), (0, 0), (300, 100)]):
        crop = np.asarray(Image.fromarray(astronaut[top:top + 160, left:left + 160]).resize((64, 64)))
        noisy = np.clip(crop + rng.normal(0, 25, crop.shape), 0, 255).astype(np.uint8)
        Image.fromarray(crop).save(root / 'gt' / f'{index}.png')
        Image.fromarray(noisy).save(root / 'results' / f'{index}.png')
    return root / 'results', root / 'gt'


def low_rank_frechet(features1, features2):
    """FID straight from n < d samples: with centred X1, X2 and S = X^T X / (n - 1), the non-zero
    eigenvalues of S1 S2 are the squared singular values of X1 X2^T / (n - 1), so
    Tr sqrt(S1 S2) is the nuclear norm of X1 X2^T / (n - 1) (n x n instead of 2048 x 2048)."""
    n = len(features1)
    assert len(features2) == n
    centred1, centred2 = features1 - features1.mean(0), features2 - features2.mean(0)
    diff = features1.mean(0) - features2.mean(0)
    traces = (np.sum(centred1 ** 2) + np.sum(centred2 ** 2)) / (n - 1)
    return diff @ diff + traces - 2 * np.linalg.norm(centred1 @ centred2.T, 'nuc') / (n - 1)


def test_low_rank_reference_agrees_with_the_eigenvalue_route():
    features1, features2, stats = random_statistics(6, 20, seed=3)
    assert low_rank_frechet(features1, features2) == pytest.approx(eigvals_frechet(*stats), rel=1e-8)


def pytorch_fid_value(folders, state_dict, monkeypatch):
    """FID of two folders from the features of pytorch-fid's own code (its weight download
    replaced by our file); its sqrtm distance fails on 3 images in 2048-d, hence `low_rank_frechet`."""
    import pytorch_fid.inception
    from pytorch_fid.fid_score import IMAGE_EXTENSIONS, get_activations
    monkeypatch.setattr(pytorch_fid.inception, 'load_state_dict_from_url', lambda *args, **kwargs: state_dict)
    model = pytorch_fid.inception.InceptionV3([3])
    features = [get_activations(sorted(p for p in folder.iterdir() if p.suffix[1:] in IMAGE_EXTENSIONS),
                                model, batch_size=50, dims=2048, device='cpu', num_workers=0)
                for folder in folders]
    assert np.ptp(features[0].mean(0)) > 1  # the random network's features are not degenerate
    return low_rank_frechet(*features)


@pytest.mark.slow
def test_evaluate_fid_equals_pytorch_fid(inception_file, image_folders, monkeypatch, tmp_path):
    """`--metrics fid` without --inception_weights finds the file where pytorch-fid's download
    puts it, and gives pytorch-fid's number."""
    monkeypatch.setenv('TORCH_HOME', str(inception_file.parents[2]))
    assert default_inception_weights_path() == str(inception_file)
    results, gt = image_folders
    json_path = tmp_path / 'means.json'
    assert evaluate.main(['--results_dir', str(results), '--gt_dir', str(gt), '--metrics', 'fid',
                          '--gpus', '0', '--fid_batch_size', '2', '--save_json', str(json_path)]) == 0
    means = json.loads(json_path.read_text())
    expected = pytorch_fid_value(image_folders, torch.load(inception_file, weights_only=True), monkeypatch)
    assert expected > 1
    assert means['fid'] == pytest.approx(expected, rel=1e-5)
    assert means['fid_images'] == [3, 3]
    assert means['psnr'] is None and means['id_cos'] is None
    assert not (results / 'metrics.csv').exists()  # FID alone has no per-pair rows


def test_missing_weights_name_the_file_and_its_source(tmp_path):
    missing = tmp_path / FID_WEIGHTS_NAME
    with pytest.raises(UserError) as err:
        FIDInception(str(missing))
    message = str(err.value)
    assert str(missing) in message and 'not found' in message
    assert 'github.com/mseitzer/pytorch-fid/releases' in message and '--inception_weights' in message


def test_other_weights_are_refused(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match="not pytorch-fid's Inception weights"):
        FIDInception(str(path))
    path.write_bytes(b'not a checkpoint')
    with pytest.raises(WeightsError, match='not a readable PyTorch weights file'):
        FIDInception(str(path))


def test_inception_weights_come_from_pytorch_fid_s_copy_or_the_cache(inception_file, weights_server, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home_without_it'))
    weights_server.add(str(inception_file), FID_WEIGHTS_NAME)
    cached = os.path.join(weights_server.cache, FID_WEIGHTS_NAME)
    assert INCEPTION_WEIGHTS.fetch() == cached and INCEPTION_WEIGHTS.fetch() == cached
    assert weights_server.requests == [f'/{FID_WEIGHTS_NAME}']
    monkeypatch.setenv('TORCH_HOME', str(inception_file.parents[2]))
    assert INCEPTION_WEIGHTS.fetch() == str(inception_file)  # where pytorch-fid keeps it comes first


def test_inception_download_of_other_weights_is_refused(weights_server, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home_without_it'))
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / 'resnet.pth')
    weights_server.add(str(tmp_path / 'resnet.pth'), FID_WEIGHTS_NAME)
    with pytest.raises(DownloadError, match="was refused and deleted: .*not pytorch-fid's Inception weights"):
        INCEPTION_WEIGHTS.fetch()
    assert not os.path.exists(weights_server.cache) or os.listdir(weights_server.cache) == []
