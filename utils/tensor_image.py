"""Conversions between 8-bit RGB images and the [-1, 1] NCHW tensors the networks use."""
import numpy as np
import torch


def uint8_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 -> float32 NCHW / CHW in [-1, 1] (`x / 255 * 2 - 1`)."""
    tensor = torch.from_numpy(np.array(images, dtype=np.float32))
    tensor = tensor.permute(0, 3, 1, 2) if tensor.ndim == 4 else tensor.permute(2, 0, 1)
    return tensor / 127.5 - 1.0


def tensor_to_uint8(tensor: torch.Tensor, round_output: bool = False) -> np.ndarray:
    """NCHW in [-1, 1] -> (N, H, W, 3) uint8 via `(y + 1) / 2 * 255`, clipped.

    Truncates by default, as the published code did (its PSNR/FID numbers were measured so);
    `round_output` rounds to the nearest level instead.
    """
    scaled = (tensor.detach().float().cpu().permute(0, 2, 3, 1) + 1.0) * 127.5
    if round_output:
        scaled = scaled.round()
    return scaled.clamp(0, 255).to(torch.uint8).numpy()
