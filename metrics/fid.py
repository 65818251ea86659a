"""FID exactly as pytorch-fid defines it, with its Inception weights read from a local file.

pytorch-fid's `InceptionV3` fetches its weights each time it is built unless torch hub has them;
here the same network (torchvision's Inception v3 with pytorch-fid's FID blocks) is built without
download and `pt_inception-2015-12-05-6726825d.pth` is loaded into it: the given file, or
pytorch-fid's copy in the torch hub cache, or ours in the weights cache (`INCEPTION_WEIGHTS`,
downloaded on first use). Features, statistics and distance follow `pytorch_fid.fid_score`:
images as RGB in [0, 1], bilinear resize to 299x299, the 2048-d final average pool, sample mean
and covariance (`np.cov`), Fréchet distance. Unlike pytorch-fid, which reads only the top level
of a folder, every image below it is used.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from pytorch_fid.inception import FID_WEIGHTS_URL, FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2
from scipy import linalg

from utils.image_io import ImageReadError, read_rgb_array
from utils.progress import progress
from weights.download import RemoteFile
from weights.state_dict import WeightsError, check_finite, load_tensors, shape_differences, tensor_shapes

FID_WEIGHTS_NAME = 'pt_inception-2015-12-05-6726825d.pth'
FEATURE_DIMS = 2048


def default_inception_weights_path() -> str:
    """Where pytorch-fid's download lands: `<torch hub dir>/checkpoints/` (honours $TORCH_HOME)."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints', FID_WEIGHTS_NAME)



def _fid_inception_v3():
    """torchvision's Inception v3 with pytorch-fid's patched blocks (as `fid_inception_v3`), no weights."""
    inception = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False,
                                                init_weights=False)
    inception.Mixed_5b = FIDInceptionA(192, pool_features=32)
    inception.Mixed_5c = FIDInceptionA(256, pool_features=64)
    inception.Mixed_5d = FIDInceptionA(288, pool_features=64)
    inception.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    inception.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    inception.Mixed_7b = FIDInceptionE_1(1280)
    inception.Mixed_7c = FIDInceptionE_2(2048)
    return inception


def read_inception_weights(path, label=None):
    """pytorch-fid's Inception state dict in `path`, checked (keys, shapes, finite); WeightsError in one line."""
    label = label or path
    if not os.path.exists(path):
        raise WeightsError(
            f"{label}: FID Inception weights not found. FID needs pytorch-fid's {FID_WEIGHTS_NAME} (from "
            f"{FID_WEIGHTS_URL}): pass its path with --inception_weights, or leave the flag out to use the copy in "
            f"{os.path.dirname(default_inception_weights_path())}/ or the weights cache (downloaded on first use)")
    state_dict = load_tensors(path, label)
    if not isinstance(state_dict, dict):
        raise WeightsError(f'{label}: expected a state dict, found {type(state_dict).__name__}')
    with torch.device('meta'):
        expected = tensor_shapes(_fid_inception_v3().state_dict())
    differences = shape_differences(state_dict, expected)
    if differences:
        raise WeightsError(f"{label}: not pytorch-fid's Inception weights ({FID_WEIGHTS_NAME}): "
                           f"{differences.summary()}")
    check_finite(state_dict, label)
    return state_dict


INCEPTION_WEIGHTS = RemoteFile(
    'fid_inception', FID_WEIGHTS_NAME, FID_WEIGHTS_URL, "pytorch-fid's Inception v3, for FID",
    read_inception_weights, other_places=lambda: (default_inception_weights_path(),))


class FIDInception(torch.nn.Module):
    """pytorch-fid's `InceptionV3([3])`: [0, 1] RGB NCHW -> (N, 2048) final average-pool features."""

    def __init__(self, weights_path: str) -> None:
        super().__init__()
        inception = _fid_inception_v3()
        state_dict = read_inception_weights(weights_path)
        inception.load_state_dict(state_dict)
        self.blocks = torch.nn.Sequential(
            inception.Conv2d_1a_3x3, inception.Conv2d_2a_3x3, inception.Conv2d_2b_3x3,
            torch.nn.MaxPool2d(kernel_size=3, stride=2),
            inception.Conv2d_3b_1x1, inception.Conv2d_4a_3x3,
            torch.nn.MaxPool2d(kernel_size=3, stride=2),
            inception.Mixed_5b, inception.Mixed_5c, inception.Mixed_5d, inception.Mixed_6a,
            inception.Mixed_6b, inception.Mixed_6c, inception.Mixed_6d, inception.Mixed_6e,
            inception.Mixed_7a, inception.Mixed_7b, inception.Mixed_7c,
            torch.nn.AdaptiveAvgPool2d(output_size=(1, 1)))
        self.eval().requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(299, 299), mode='bilinear', align_corners=False)
        return self.blocks(2 * x - 1).flatten(1)


def _same_size_batches(paths, batch_size, errors):
    """(paths, uint8 NHWC array) batches of consecutive same-size images; unreadable files go to `errors`."""
    batch_paths, batch = [], []
    for path in paths:
        try:
            image = read_rgb_array(path)
        except ImageReadError as err:
            errors.append((path, str(err)))
            continue
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield batch_paths, np.stack(batch)
            batch_paths, batch = [], []
        batch_paths.append(path)
        batch.append(image)
    if batch:
        yield batch_paths, np.stack(batch)


@torch.no_grad()
def inception_features(model, paths, device, batch_size=50, desc='FID features'):
    """(N, 2048) float64 features of the readable images among `paths`, and [(path, error)]."""
    errors, features = [], []
    with progress(total=len(paths), desc=desc, unit='image') as bar:
        for batch_paths, images in _same_size_batches(paths, batch_size, errors):
            tensor = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255.0
            features.append(model(tensor).cpu().numpy().astype(np.float64))
            bar.update(len(batch_paths))
    return (np.concatenate(features) if features else np.empty((0, FEATURE_DIMS))), errors


def feature_statistics(features):
    """Mean and sample covariance (N - 1 normalisation, as `np.cov`) of (N, D) features."""
    if len(features) < 2:
        raise ValueError(f'FID needs at least 2 images per folder, found {len(features)}')
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """`||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrt(S1 S2))`, pytorch-fid's distance.

    With S1 = B B^T (B from S1's eigenvectors of non-zero eigenvalue), S1 S2 has the non-zero
    eigenvalues of the symmetric B^T S2 B, and Tr(sqrt(S1 S2)) is the sum of their square roots.
    pytorch-fid takes the trace of `scipy.linalg.sqrtm(S1 S2)`: the same number (tests check
    it), but this route stays real and accurate when the covariances are singular (fewer images
    than 2048), where `sqrtm` can fail with an "Imaginary component" error, and is faster.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f'statistics differ in size: {mu1.shape} vs {mu2.shape}')
    eigenvalues, eigenvectors = linalg.eigh(sigma1)
    nonzero = eigenvalues > eigenvalues.max() * len(eigenvalues) * np.finfo(np.float64).eps
    root1 = eigenvectors[:, nonzero] * np.sqrt(eigenvalues[nonzero])
    product = root1.T @ sigma2 @ root1
    product_eigenvalues = np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(product_eigenvalues).sum())


def fid_from_features(features1, features2):
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))
