"""Enhancing 8-bit RGB faces with a loaded model: the entry point of the whole-photo pipeline."""
import numpy as np

from utils.tensor_image import tensor_to_uint8, uint8_to_tensor

from . import create_model


NON_FINITE_OUTPUT = ("the network's output holds NaN or infinite values (weights that overflow, an fp16 overflow: "
                     "try --precision fp32, or a broken --onnx_model)")


class NonFiniteOutput(ValueError):
    """The network gave NaN or infinity for a face: it is not pasted (it would be a black square)."""


class Enhancer:
    """Callable: (N, H, W, 3) uint8 RGB faces -> (N, H, W, 3) uint8 enhanced faces, in batches."""

    def __init__(self, model, batch_size, round_output=False):
        self.model = model
        self.batch_size = max(1, batch_size)
        self.round_output = round_output

    @classmethod
    def from_options(cls, opt):
        """Build the model of `opt` and load its weights strictly (WeightsError when they don't fit)."""
        return cls(create_model(opt).setup_inference(), opt.batch_size, opt.round_output)

    def __call__(self, faces):
        outputs = []
        for start in range(0, len(faces), self.batch_size):
            batch = uint8_to_tensor(faces[start:start + self.batch_size])
            self.model.set_input({'LR': batch, 'LR_paths': []})
            outputs.append(tensor_to_uint8(self.model.test(), self.round_output))
            if not all(self.model.finite):
                raise NonFiniteOutput(NON_FINITE_OUTPUT)
        return np.concatenate(outputs) if outputs else np.zeros_like(faces)
