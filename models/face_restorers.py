"""Other projects' face restorers (GFPGAN, RestoreFormer, CodeFormer, loaded by spandrel) as Enhancers.

Callable as `models.enhancer.Enhancer` is: (N, 512, 512, 3) uint8 faces aligned to the FFHQ template
in, restored faces out, so the whole-photo pipeline (detection, alignment, paste back) is the one
SPARNetHD runs in. These networks learnt on [-1, 1] images; spandrel's call passes GFPGAN and
CodeFormer [0, 1] ones, so they are called here as their own projects call them: GFPGAN with the
fixed noise of its file (its script draws new noise each run; fixed, a run is reproducible),
CodeFormer with its fidelity weight (0: the most restored, 1: the most faithful to the input).
Outputs are rounded to 8 bits, as those projects write them.
"""
import logging
import threading
from collections.abc import Callable
from typing import Self

import numpy as np
import torch

from models.enhancer import NON_FINITE_OUTPUT, NonFiniteOutput
from weights.spandrel_file import FACE, describe, load_spandrel, on_device

log = logging.getLogger(__name__)

# architecture -> call on [-1, 1] faces, returning [-1, 1] faces (model, faces, fidelity)
SIGNED_CALLS: dict[str, Callable] = {
    'GFPGAN': lambda model, faces, fidelity: model(faces, return_rgb=False, randomize_noise=False)[0],
    'RestoreFormer': lambda model, faces, fidelity: model(faces)[0],
    'CodeFormer': lambda model, faces, fidelity: model(faces, weight=fidelity)[0],
}


class SpandrelFaceEnhancer:
    """Callable: (N, S, S, 3) uint8 aligned faces -> (N, S, S, 3) uint8 restored by a spandrel face restorer.

    Safe to call from several threads (the web page's jobs): one batch at a time goes through the network.
    """

    def __init__(self, descriptor: object, batch_size: int = 1, device: torch.device | str = 'cpu',
                 precision: str = 'fp32', fidelity: float = 0.5, label: str = '') -> None:
        label = label or descriptor.architecture.id
        self.descriptor, dtype = on_device(descriptor, device, precision, f'--face_model {label}')
        self.call = SIGNED_CALLS.get(descriptor.architecture.id)
        self.batch_size = max(1, batch_size)
        self.device, self.dtype, self.fidelity = torch.device(device), dtype, fidelity
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str, label: str, batch_size: int = 1, device: torch.device | str = 'cpu',
                  precision: str = 'fp32', fidelity: float = 0.5, noncommercial_ok: bool = False) -> Self:
        """The face restorer of the local file `path` (`label`: what the user named it), loaded by spandrel;
        UserError in one line for a file that is no face restorer, or CodeFormer without `noncommercial_ok`."""
        descriptor = load_spandrel(path, path, FACE, noncommercial_ok)
        log.info('face model: %s, %s', label, describe(descriptor))
        return cls(descriptor, batch_size, device, precision, fidelity, label)

    @torch.inference_mode()
    def restore(self, faces: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) floats in [0, 1] on the device, in the network's dtype -> restored, float32 in [0, 1]."""
        if self.call is None:  # another face restorer spandrel knows: its own call, on [0, 1]
            return torch.cat([self.descriptor(face[None]) for face in faces]).float()
        restored = self.call(self.descriptor.model, faces * 2 - 1, self.fidelity)
        return ((restored.float() + 1) / 2).clamp(0, 1)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(faces), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(faces[start:start + self.batch_size]))
            batch = batch.to(self.device).permute(0, 3, 1, 2).to(self.dtype).contiguous() / 255
            with self._lock:
                restored = self.restore(batch)
            if not torch.isfinite(restored).all():
                raise NonFiniteOutput(NON_FINITE_OUTPUT)
            outputs.append(restored.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(outputs) if outputs else np.zeros_like(faces)
