"""Exporting the generator to ONNX (dynamic batch) and running an exported file with ONNX Runtime.

The exported graph is the fast inference path in fp32 (folded norms, transposed upsampling convs),
traced with explicit pads and instance norms, so any ONNX runtime can run it. ONNX Runtime matches
PyTorch to ~1e-6 (relative) on SPARNet, ~2e-4 on SPARNetHD (its instance norms over 512 x 512 maps).
"""
import os
import warnings
from collections.abc import Callable
from typing import Self

import torch

from archs.folded_sparnet import FastSPARNet
from archs.sparnet import SPARNet
from utils.atomic import atomic_write
from utils.cli import UserError

DEFAULT_OPSET = 17


class OnnxError(UserError):
    """An ONNX file is missing or unreadable, or ONNX Runtime is not installed."""


def export_onnx(net: SPARNet, path: str, in_size: int, opset: int = DEFAULT_OPSET,
                check: Callable[[str], object] | None = None, subpixel: bool = False) -> str:
    """Write `net` (a SPARNet, eval semantics) to `path` as ONNX with a dynamic batch axis; returns path. `subpixel`:
    the upsampling convs as conv + depth-to-space (`FastSPARNet.use_subpixel_upsampling`, for int8).

    The file is written under a temporary name; `check(temporary path)` may refuse it by raising, and
    `path` then keeps what it held: a refused or interrupted export leaves no file behind.
    """
    fast = FastSPARNet(net).cpu().eval()
    if subpixel:
        fast.use_subpixel_upsampling()
    example = torch.zeros(1, 3, in_size, in_size)
    with torch.no_grad(), warnings.catch_warnings(), atomic_write(path, check=check) as handle:
        warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation notice
        torch.onnx.export(fast, (example,), handle, dynamo=False, opset_version=opset,
                          input_names=['input'], output_names=['output'],
                          dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}})
    return path


def _session(path, device, num_threads):
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise OnnxError(f"--onnx_model needs onnxruntime: pip install 'onnxruntime>=1.17' ({err})") from err
    if not os.path.isfile(path):
        raise OnnxError(f"{path}: no such ONNX file; make one with scripts/export_onnx.py")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = num_threads or torch.get_num_threads()
    # Its threads spin between runs by default, taking the cores from test.py's loader and writers (measured:
    # docs/speed.md, "Where test.py's time goes").
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    providers = ['CPUExecutionProvider']
    if torch.device(device).type == 'cuda' and 'CUDAExecutionProvider' in ort.get_available_providers():
        providers.insert(0, ('CUDAExecutionProvider', {'device_id': torch.device(device).index or 0}))
    try:
        return ort.InferenceSession(path, options, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types for bad files
        raise OnnxError(f"{path}: not a loadable ONNX model: {str(err).splitlines()[0]}") from err


class OnnxGenerator:
    """Callable like the torch generator: NCHW float32 tensor in [-1, 1] -> NCHW float32 tensor on `device`."""

    def __init__(self, path: str, device: torch.device | str = 'cpu', num_threads: int | None = None) -> None:
        self.device = torch.device(device)
        self.session = _session(path, self.device, num_threads)
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = self.session.get_inputs()[0].shape

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        expected = self.input_shape[1:]
        if list(x.shape[1:]) != expected:
            raise ValueError(f"the ONNX model takes (N, {', '.join(map(str, expected))}) inputs, "
                             f"got {tuple(x.shape)}: export it again with the right --in_size")
        array = x.detach().to('cpu', torch.float32).contiguous().numpy()
        output, = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(output).to(self.device)

    def eval(self) -> Self:
        return self
