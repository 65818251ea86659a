"""Enhancing 8-bit RGB faces with a loaded model: uint8 faces in, uint8 enhanced faces out, in batches."""
import argparse
import threading
from typing import Self

import numpy as np

from models import create_model
from models.base_model import BaseModel
from utils.tensor_image import tensor_to_uint8, uint8_to_tensor

NON_FINITE_OUTPUT = ("the network's output holds NaN or infinite values (weights that overflow, an fp16 overflow: "
                     "try --precision fp32, or a broken --onnx_model)")


class NonFiniteOutput(ValueError):
    """The network gave NaN or infinity for a face: it is not pasted (it would be a black square)."""


class Enhancer:
    """Callable: (N, H, W, 3) uint8 RGB faces -> (N, H, W, 3) uint8 enhanced faces, in batches.

    Safe to call from several threads (the web page's jobs): one batch at a time goes through the model.
    """

    def __init__(self, model: BaseModel, batch_size: int, round_output: bool = False) -> None:
        self.model = model
        self.batch_size = max(1, batch_size)
        self.round_output = round_output
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> Self:
        """Build the model of `opt` and load its weights strictly (WeightsError when they don't fit)."""
        return cls(create_model(opt).setup_inference(), opt.batch_size, opt.round_output)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(faces), self.batch_size):
            batch = uint8_to_tensor(faces[start:start + self.batch_size])
            with self._lock:
                self.model.set_input({'LR': batch, 'LR_paths': []})
                outputs.append(tensor_to_uint8(self.model.test(), self.round_output))
                finite = all(self.model.finite)
            if not finite:
                raise NonFiniteOutput(NON_FINITE_OUTPUT)
        return np.concatenate(outputs) if outputs else np.zeros_like(faces)
