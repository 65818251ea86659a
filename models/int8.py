"""int8 inference on the CPU: the generator's fast graph, quantized once after training and cached beside its weights.

ONNX Runtime's static quantization (`onnxruntime.quantization.quantize_static`) of the exported fast path: QDQ
format, per-channel int8 weights, uint8 activations whose ranges are calibrated on faces (a percentile of each
tensor's values over the calibration inputs). The upsampling convs are exported in sub-pixel form and the pads run on
the uint8 maps, so that ONNX Runtime runs them in int8. Layers whose quantization costs quality stay in fp32
(`FP32_NODES`, measured: docs/speed.md).
On CPUs without VNNI, weights are quantized to 7 bits (`reduce_range`): their 8-bit products would saturate the
16-bit sums of AVX2's int8 instructions. The quantized file is named by everything it depends on (the weights'
bytes, ONNX Runtime's version, the recipe, the input size, the calibration faces), so a change of any of them makes
a new one and a stale one is never used.
"""
import contextlib
import hashlib
import io
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Self

import numpy as np
import torch

from archs.sparnet import SPARNet
from models.onnx_generator import OnnxError, OnnxGenerator, export_onnx
from utils.atomic import atomic_write
from utils.cli import UserError
from utils.progress import progress
from weights.download import cache_dir

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

# Nodes of the exported graph kept in fp32 (regular expressions over ONNX node names): the first conv, which reads
# the image, the last, which writes it, and each block's `shortcut + out * mask`, so that the residual stream is not
# rounded to 8 bits at every block (measured: docs/speed.md, "Which layers stay in fp32").
FP32_NODES = (r'^/in_conv/', r'^/out_conv/', r'^/blocks\.\d+/(Add|Mul)(_\d+)?$')
# Operators left in fp32 with their inputs: ONNX Runtime has no int8 instance norm (it would run in fp32 between a
# dequantize and a quantize, its per-channel scale rounded for nothing).
FP32_OPS = {'InstanceNormalization'}
# How activation ranges are calibrated (onnxruntime.quantization.CalibrationMethod): a percentile of each tensor's
# values kept more SSIM than min / max on real faces (docs/speed.md). The faces go through one at a time
# (`CalibStridedMinMax`, which applies to every method): ONNX Runtime's histograms are merged face by face, and only one
# face's maps are held (all faces' at once: 1.5 GB more for 8 faces of 128x128, 16 times that at 512x512).
CALIBRATION_METHOD = 'Percentile'
PERCENTILE = 99.99


def calibration_recipe() -> str:
    """The calibration, with its percentile where it has one (part of the cache key)."""
    return f'{CALIBRATION_METHOD} {PERCENTILE}' if CALIBRATION_METHOD == 'Percentile' else CALIBRATION_METHOD


RECIPE = 'qdq-s8-weights-per-channel-u8-activations-subpixel-uint8-pads-v2'


def needs_reduced_range() -> bool:
    """Whether this CPU lacks VNNI (AVX512-VNNI, AVX-VNNI or AMX-INT8): its int8 products saturate at 8 bits."""
    flags = torch.cpu.get_capabilities() if hasattr(torch.cpu, 'get_capabilities') else {}
    return not any(flags.get(flag) for flag in ('avx512_vnni', 'avx_vnni', 'amx_int8'))


def onnxruntime_version() -> str:
    try:
        import onnxruntime
    except ImportError as err:
        raise UserError(f"--precision int8 needs onnxruntime: pip install 'onnxruntime>=1.17' ({err})") from err
    return onnxruntime.__version__


def file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def int8_model_path(weights_path: str, in_size: int, calibration_id: str, reduce_range: bool,
                    network: str = '') -> str:
    """Where the int8 model of these weights is kept: beside them (`<name>.int8-<key>.onnx`), or in the weights
    cache's `int8/` folder when their folder is not writable. The key digests all the quantized file depends on
    (`network`: the flags of the network the weights were loaded into)."""
    key = hashlib.sha256('\n'.join((file_digest(weights_path), network, onnxruntime_version(), RECIPE,
                                    calibration_recipe(),
                                    *FP32_NODES, *sorted(FP32_OPS),
                                    str(in_size), calibration_id, f'reduce_range={reduce_range}')).encode())
    stem = os.path.splitext(os.path.basename(weights_path))[0]
    name = f'{stem}.int8-{key.hexdigest()[:16]}.onnx'
    folder = os.path.dirname(os.path.abspath(weights_path))
    if not os.access(folder, os.W_OK):
        folder = os.path.join(cache_dir(), 'int8')
    return os.path.join(folder, name)


class _Reader:
    """ONNX Runtime's calibration data reader over (1, 3, S, S) float32 inputs, a range of them at a time, with a
    progress bar of the faces calibrated."""

    def __init__(self, inputs: Iterable[np.ndarray]) -> None:
        self.inputs = list(inputs)
        self.bar = progress(total=len(self.inputs), desc='int8 calibration', unit='face')
        self.set_range(0, len(self.inputs))

    def __len__(self) -> int:
        return len(self.inputs)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.pending: Iterator[np.ndarray] = iter(self.inputs[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        array = next(self.pending, None)
        if array is None:
            return None
        self.bar.update(1)
        return {'input': array}


def fp32_nodes(onnx_path: str) -> list[str]:
    """The names of the nodes of the exported graph that stay in fp32 (FP32_NODES)."""
    import onnx
    names = [node.name for node in onnx.load(onnx_path, load_external_data=False).graph.node]
    return [name for name in names if any(re.search(pattern, name) for pattern in FP32_NODES)]


def quantize_generator(net: SPARNet, path: str, in_size: int, inputs: Iterable[np.ndarray],
                       reduce_range: bool) -> str:
    """Write the int8 model of `net` (eval semantics, fast path) for `in_size` inputs to `path`, its activation
    ranges calibrated on `inputs`; returns `path`. Nothing is left at `path` if it fails."""
    loggers = [logging.getLogger('onnxruntime'), logging.getLogger()]  # the quantizer logs its steps on both
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        _quantize(net, path, in_size, inputs, reduce_range)
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return path


def _quantize(net: SPARNet, path: str, in_size: int, inputs: Iterable[np.ndarray], reduce_range: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    from onnxruntime.quantization.shape_inference import quant_pre_process
    with tempfile.TemporaryDirectory(prefix='sparnet-int8-') as work:
        exported = export_onnx(net, os.path.join(work, 'fp32.onnx'), in_size, subpixel=True)
        prepared = os.path.join(work, 'prepared.onnx')
        quant_pre_process(exported, prepared)
        quantized = os.path.join(work, 'int8.onnx')
        reader = _Reader(inputs)
        with reader.bar, contextlib.redirect_stdout(io.StringIO()):  # the percentile calibrator prints its steps
            quantize_static(prepared, quantized, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod[CALIBRATION_METHOD],
                            nodes_to_exclude=fp32_nodes(prepared),
                            op_types_to_quantize=sorted({*QDQRegistry, *QLinearOpsRegistry} - FP32_OPS),
                            extra_options={'CalibPercentile': PERCENTILE, 'CalibStridedMinMax': 1})
        import onnx
        model = onnx.load(quantized)
        pads_on_uint8(model)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_write(path) as handle:
            handle.write(model.SerializeToString())


def pads_on_uint8(model: 'onnx.ModelProto') -> int:
    """Rewrite each `DequantizeLinear -> Pad (reflect or edge) -> QuantizeLinear` of `model` (in place), whose two
    ends share scale and zero point, as the Pad alone on the uint8 map: such a pad only copies values, so the result
    is the same, without two conversions of the whole map and a pad in fp32 (ONNX Runtime does not fuse them).
    Returns how many were rewritten."""
    from onnx import numpy_helper  # onnx takes most of a second to import: only when quantizing
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}

    def same(a: str, b: str) -> bool:
        return a in constants and b in constants and np.array_equal(constants[a], constants[b])
    removed, rewritten = set(), 0
    for pad in [node for node in graph.node if node.op_type == 'Pad']:
        mode = next((attr.s for attr in pad.attribute if attr.name == 'mode'), b'constant')
        dequantize, after = producer.get(pad.input[0]), consumers.get(pad.output[0], [])
        if mode not in (b'reflect', b'edge') or dequantize is None or dequantize.op_type != 'DequantizeLinear' \
                or len(after) != 1 or after[0].op_type != 'QuantizeLinear':
            continue
        quantize = after[0]
        if not (same(dequantize.input[1], quantize.input[1]) and same(dequantize.input[2], quantize.input[2])):
            continue
        pad.input[0] = dequantize.input[0]
        pad.output[0] = quantize.output[0]
        removed.add(id(quantize))
        if len(consumers[dequantize.output[0]]) == 1:
            removed.add(id(dequantize))
        rewritten += 1
    kept = [node for node in graph.node if id(node) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    return rewritten


class Int8Generator:
    """Callable like the torch generator (NCHW float32 in [-1, 1] -> NCHW float32) for square inputs of any size: the
    int8 model of the network `build()` returns (eval mode, the weights of the file `weights_path` loaded into the
    network the flags `network` describe) for each size, from the cache or quantized at its first use (once;
    `inputs(size)` gives the calibration inputs that `calibration_id` names), run by ONNX Runtime. The network is
    built only to quantize. The ranges are calibrated at the size the network runs at: SPARNet's on whole photos
    (512) are not test.py's."""

    def __init__(self, build: Callable[[], SPARNet], weights_path: str, network: str, calibration_id: str,
                 inputs: Callable[[int], Iterable[np.ndarray]], num_threads: int | None = None) -> None:
        self.build, self.weights_path, self.network, self.calibration_id = build, weights_path, network, calibration_id
        self.inputs, self.num_threads = inputs, num_threads
        self.reduce_range = needs_reduced_range()
        self.models: dict[int, OnnxGenerator] = {}

    def prepare(self, size: int) -> OnnxGenerator:
        """The int8 model for `size` x `size` inputs (quantized now if not cached)."""
        if size not in self.models:
            path = int8_model_path(self.weights_path, size, self.calibration_id, self.reduce_range, self.network)
            self.models[size] = self._cached(path) or self._quantized(path, size)
        return self.models[size]

    def _cached(self, path: str) -> OnnxGenerator | None:
        if not os.path.isfile(path):
            return None
        try:
            return OnnxGenerator(path, 'cpu', self.num_threads)
        except OnnxError as err:
            log.warning('%s; quantizing again', err)
            return None

    def _quantized(self, path: str, size: int) -> OnnxGenerator:
        log.info('quantizing %s to int8 for %dx%d inputs (once: kept as %s)', self.weights_path, size, size, path)
        quantize_generator(self.build(), path, size, self.inputs(size), self.reduce_range)
        return OnnxGenerator(path, 'cpu', self.num_threads)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f'the int8 network takes square inputs, got {tuple(x.shape)}')
        return self.prepare(x.shape[-1])(x)

    def eval(self) -> Self:
        return self
