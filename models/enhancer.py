"""Enhancing 8-bit RGB faces with a loaded network: uint8 faces in, uint8 enhanced faces out, in batches."""
import threading
from collections.abc import Callable

import numpy as np
import torch

from archs.folded_sparnet import prepare_inference_net
from archs.generator_spec import GeneratorSpec
from archs.sparnet import SPARNet
from utils.cli import UserError
from utils.tensor_image import tensor_to_uint8, uint8_to_tensor
from weights.generator import load_generator_weights

NON_FINITE_OUTPUT = ("the network's output holds NaN or infinite values (weights that overflow, an fp16 overflow: "
                     "try --precision fp32, or a broken --onnx_model)")


class NonFiniteOutput(ValueError):
    """The network gave NaN or infinity for a face: it is not pasted (it would be a black square)."""


def inference_net(net: SPARNet, spec: GeneratorSpec, weights_path: str, device: torch.device | str = 'cpu',
                  precision: str = 'fp32', reference_impl: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """`net` (built from `spec`) with the weights of `weights_path` (loaded strictly) on `device`, ready to run: the
    fast path (norms folded into the convs, same function) at `precision`, or the plain module (`reference_impl`).
    UserError for a precision the device does not run."""
    load_generator_weights(net, weights_path, spec)
    net.to(device).eval()
    if reference_impl:
        return net
    try:
        return prepare_inference_net(net, torch.device(device), precision)
    except ValueError as err:
        raise UserError(f'--precision {precision}: {err}') from err


class Enhancer:
    """Callable: (N, H, W, 3) uint8 RGB faces -> (N, H, W, 3) uint8 enhanced faces, in batches of a loaded network
    (`inference_net`, an `OnnxGenerator`): test.py's processing, the output truncated to 8 bits as published
    (`round_output`: rounded).

    Safe to call from several threads (the web page's jobs): one batch at a time goes through the network.
    """

    def __init__(self, net: Callable[[torch.Tensor], torch.Tensor], device: torch.device | str, batch_size: int,
                 round_output: bool = False) -> None:
        self.net = net
        self.device = torch.device(device)
        self.batch_size = max(1, batch_size)
        self.round_output = round_output
        self._lock = threading.Lock()

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, list[bool]]:
        """(N, 3, H, W) inputs in [-1, 1] -> (outputs clamped to [-1, 1] as the published code does, whether each
        held no NaN or infinity before the clamp)."""
        with self._lock, torch.inference_mode():
            output = self.net(batch.to(self.device)).float()
            finite = torch.isfinite(output).flatten(1).all(1).tolist()
            return output.clamp_(-1, 1), finite

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(faces), self.batch_size):
            output, finite = self.run(uint8_to_tensor(faces[start:start + self.batch_size]))
            if not all(finite):
                raise NonFiniteOutput(NON_FINITE_OUTPUT)
            outputs.append(tensor_to_uint8(output, self.round_output))
        return np.concatenate(outputs) if outputs else np.zeros_like(faces)
