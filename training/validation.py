"""Validation during training: PSNR/SSIM of the networks and of the bicubic baseline on the
validation faces, and a picture of the first few (LR | bicubic | networks | HR).

The baseline scores the network's own input against HR: for SPARNet the HR face bicubic-reduced
and enlarged back, for SPARNetHD the degraded face. It never changes during a run, so it is
measured once, at the first validation of the process, and kept.
"""
import numpy as np
import torch
from PIL import Image, ImageDraw

from metrics.psnr_ssim import PUBLISHED_Y_QUANTIZATION, psnr, ssim
from training.log_reader import BASELINE
from utils.tensor_image import tensor_to_uint8

GRID_FACES = 4
GRID_PADDING = 2


def labelled_grid(columns, padding=GRID_PADDING):
    """{title: [HxWx3 uint8 faces]} -> one HxWx3 uint8 picture: a column per title, named on top."""
    titles = list(columns)
    rows = len(columns[titles[0]])
    height, width = columns[titles[0]][0].shape[:2]
    label_height = 14
    grid = np.full((label_height + rows * (height + padding) + padding,
                    len(titles) * (width + padding) + padding, 3), 255, np.uint8)
    for col, title in enumerate(titles):
        left = padding + col * (width + padding)
        for row, face in enumerate(columns[title]):
            top = label_height + padding + row * (height + padding)
            grid[top:top + height, left:left + width] = face
    picture = Image.fromarray(grid)
    draw = ImageDraw.Draw(picture)
    for col, title in enumerate(titles):
        draw.text((padding + col * (width + padding) + 2, 1), title, fill=(0, 0, 0))
    return np.asarray(picture)


class Validator:
    """Scores networks on a validation loader (unshuffled, so the grid faces are always the same).

    `small_lr(hr)` gives the LR face at its own size when the input is its enlargement (shown
    nearest-enlarged in the grid's LR column, the input then being the bicubic column), or None.
    """

    def __init__(self, loader, device, small_lr=None, y_quantization=PUBLISHED_Y_QUANTIZATION,
                 grid_faces=GRID_FACES):
        self.loader, self.device, self.small_lr = loader, device, small_lr
        self.y_quantization, self.grid_faces = y_quantization, grid_faces
        self.baseline = None

    def _score(self, images, targets, scores):
        for image, target in zip(images, targets):
            scores[0].append(psnr(image, target, y_quantization=self.y_quantization))
            scores[1].append(ssim(image, target, self.y_quantization))

    def _input_columns(self, lr, hr):
        """The grid's LR (and bicubic) columns of these faces."""
        small = [self.small_lr(face) for face in hr] if self.small_lr else [None]
        if small[0] is None:
            return {'LR': list(lr)}
        enlarged = [np.asarray(Image.fromarray(face).resize(target.shape[1::-1], Image.NEAREST))
                    for face, target in zip(small, hr)]
        return {'LR': enlarged, BASELINE: list(lr)}

    @torch.no_grad()
    def run(self, networks):
        """Scores of `networks` ({name: module}, run in eval mode, then put back in their mode) and the
        baseline, as {'PSNR_<name>': dB, 'SSIM_<name>': ..., 'PSNR_bicubic': ..., 'SSIM_bicubic': ...},
        and the grid of the first faces (HxWx3 uint8)."""
        modes = {name: net.training for name, net in networks.items()}
        scores = {name: ([], []) for name in networks}
        if self.baseline is None:
            scores[BASELINE] = ([], [])
        columns = {}
        try:
            for net in networks.values():
                net.eval()
            for batch in self.loader:
                lr = tensor_to_uint8(batch['LR'], round_output=True)
                hr = tensor_to_uint8(batch['HR'], round_output=True)
                inputs = batch['LR'].to(self.device)
                outputs = {name: tensor_to_uint8(net(inputs).clamp(-1, 1)) for name, net in networks.items()}
                for name, images in outputs.items():
                    self._score(images, hr, scores[name])
                if BASELINE in scores:
                    self._score(lr, hr, scores[BASELINE])
                wanted = self.grid_faces - len(columns.get('HR', []))
                if wanted > 0:
                    batch_columns = {**self._input_columns(lr[:wanted], hr[:wanted]),
                                     **{name: list(images[:wanted]) for name, images in outputs.items()},
                                     'HR': list(hr[:wanted])}
                    for title, faces in batch_columns.items():
                        columns.setdefault(title, []).extend(faces)
        finally:
            for name, net in networks.items():
                net.train(modes[name])
        metrics = {}
        for name, (psnrs, ssims) in scores.items():
            metrics[f'PSNR_{name}'], metrics[f'SSIM_{name}'] = float(np.mean(psnrs)), float(np.mean(ssims))
        if self.baseline is None:
            self.baseline = {key: metrics.pop(key) for key in (f'PSNR_{BASELINE}', f'SSIM_{BASELINE}')}
        return {**metrics, **self.baseline}, labelled_grid(columns)
