"""Aligned faces in, enhanced faces out: a SPARNet / SPARNetHD (a released name, a file of train.py, a URL), an
exported ONNX model, or another project's face restorer (GFPGAN, RestoreFormer, CodeFormer), loaded once."""
import logging
import os
from collections.abc import Callable, Iterable

import numpy as np
import torch

from api.choices import (
    DEFAULT_MAX_PIXELS,
    INT8_AUTO_MODELS,
    auto_precision,
    check_device_precision,
    checked,
    default_batch_size,
    device_of,
)
from archs.generator_spec import GeneratorSpec
from archs.sparnet import SPARNet
from data.single_dataset import resized
from faces.align import FACE_SIZE
from faces.calibration import CalibrationFaces
from models import get_model_class
from models.enhancer import Enhancer, inference_net
from models.face_restorers import SpandrelFaceEnhancer
from models.int8 import Int8Generator
from models.onnx_generator import OnnxGenerator
from utils.cli import UserError
from weights.generator import load_generator_weights
from weights.other_models import names_of, other_named, resolve_other
from weights.released import DEFAULT_PHOTO_MODEL, RELEASED_MODELS
from weights.sources import URL_SCHEMES, resolve_generator, sparnet_spec
from weights.spandrel_file import FACE, LICENCE_FLAG

log = logging.getLogger(__name__)


def face_model_choices() -> str:
    return (f"a SPARNet ({', '.join(RELEASED_MODELS)}, or a checkpoint of train.py), another project's face restorer "
            f"({', '.join(names_of(FACE))}), a face restorer file spandrel loads, or an http(s) URL")


def other_face_model(source: str, weights_dir: str | None = None, noncommercial_ok: bool = False) -> str:
    """The local file of another project's face restorer `source` names, fetched into `weights_dir` (default: the
    cache); '' when `source` is a SPARNet (a released name, or a file by the tensors it holds, whatever its name).
    UserError in one line for a model that does not fit, before any download."""
    other = other_named(source)
    if other is None and sparnet_spec(source) is not None:
        return ''
    if other is not None and other.non_commercial and not noncommercial_ok:
        raise UserError(f'--face_model {source}: {other.description.split(":")[0]} is under the {other.licence}; '
                        f'pass {LICENCE_FLAG} to accept it, or choose another face model')
    if other is None and not source.lower().startswith(URL_SCHEMES) and not os.path.exists(source):
        raise UserError(f'--face_model {source}: no such file or model name; --face_model takes {face_model_choices()}')
    path, _ = resolve_other(source, FACE, weights_dir)
    return path


class FaceEnhancer:
    """Callable: uint8 RGB faces, (N, H, W, 3) or one (H, W, 3), as a NumPy array or a torch tensor -> the enhanced
    faces, `load_size` a side, as the same type (a tensor on the input's device).

    Faces of another size are first resized to the network's (PIL bicubic, as test.py does). `model` is a released
    name (sparnet, sparnet_light_attn3d, sparnethd_attn2d, sparnethd_attn3d), a file of train.py (its network read
    from its tensors; `network` gives what they cannot tell, such as a group norm), an http(s) URL (downloaded once
    into `weights_dir`, default the cache), or another project's face restorer (gfpgan_v1.3, gfpgan_v1.4,
    restoreformer, codeformer with `codeformer_noncommercial`, or a file spandrel loads); `onnx_model` runs an
    exported model with ONNX Runtime instead. `precision` int8 quantizes a SPARNet once (cached beside its weights),
    its activations calibrated on the images of the folder `calibration` (default: the bundled faces); auto picks the
    fastest precision this device runs natively (`api.choices.auto_precision`). The arguments are test.py's flags,
    with its defaults and its one-line errors (`utils.cli.UserError`). Safe to call from several threads: one batch
    at a time runs.
    """

    def __init__(self, model: str = DEFAULT_PHOTO_MODEL, *, device: torch.device | str | None = None,
                 precision: str = 'fp32', batch_size: int | None = None, load_size: int | None = None,
                 network: GeneratorSpec | None = None, onnx_model: str = '', reference_impl: bool = False,
                 round_output: bool = False, weights_dir: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 codeformer_noncommercial: bool = False, codeformer_fidelity: float = 0.5,
                 calibration: str | None = None) -> None:
        self.device = device_of(device)
        check_device_precision(self.device, precision)
        checked('batch_size', batch_size)
        checked('load_size', load_size)
        checked('max_pixels', max_pixels)
        checked('codeformer_fidelity', codeformer_fidelity)
        self.model = model
        self.enhancer: Enhancer | SpandrelFaceEnhancer
        if onnx_model:
            self._check_onnx(onnx_model, precision, reference_impl)
            self.precision = 'fp32'
            self.batch_size = batch_size or default_batch_size(self.device, self.precision)
            onnx = OnnxGenerator(onnx_model, self.device)
            self.load_size = self._onnx_size(onnx, onnx_model, load_size)
            self.enhancer = Enhancer(onnx, self.device, self.batch_size, round_output)
            self.description = f'{onnx_model} (ONNX Runtime, fp32)'
            return
        path = other_face_model(model, weights_dir, codeformer_noncommercial)
        if path:
            if precision == 'int8':
                raise UserError(f'--precision int8 quantizes SPARNet and SPARNetHD; {model} runs in fp32, bf16 or '
                                'fp16 (or auto)')
            self.precision = self._chosen(precision, int8=False)
            self.batch_size = batch_size or default_batch_size(self.device, self.precision)
            self.enhancer = SpandrelFaceEnhancer.from_file(path, model, self.batch_size, self.device, self.precision,
                                                            codeformer_fidelity, codeformer_noncommercial)
            self.load_size = FACE_SIZE
            self.description = f'{model} ({self.precision})'
            return
        if precision == 'int8' and reference_impl:
            raise UserError('--precision int8 runs the quantized fast path; drop --reference_impl (the PyTorch module '
                            'in fp32)')
        calibration_faces = CalibrationFaces(calibration) if precision in ('int8', 'auto') else None  # before downloads
        weights = resolve_generator(model, weights_dir, network)
        self.precision = self._chosen(precision, int8=not reference_impl and weights.spec.model in INT8_AUTO_MODELS)
        self.batch_size = batch_size or default_batch_size(self.device, self.precision)
        model_class = get_model_class(weights.spec.model)
        self.load_size = load_size or weights.load_size or model_class.default_load_size
        self._check_size(weights.spec.model, model_class.min_load_size, max_pixels)
        net: Callable[[torch.Tensor], torch.Tensor]
        if self.precision == 'int8' and calibration_faces is not None:
            net = self._int8_net(weights.spec, weights.path, calibration_faces)
        else:
            net = inference_net(weights.spec.build(), weights.spec, weights.path, self.device, self.precision,
                                reference_impl)
        self.enhancer = Enhancer(net, self.device, self.batch_size, round_output)
        self.spec = weights.spec
        self.weights_path = weights.path
        engine = ' (ONNX Runtime)' if self.precision == 'int8' else ''
        self.description = f'{model} ({weights.spec.flags()}, {self.precision}{engine})'

    def _chosen(self, precision: str, int8: bool) -> str:
        """`precision`, or what auto picks on this device (said in one line)."""
        if precision != 'auto':
            return precision
        chosen, why = auto_precision(self.device, int8)
        log.info('--precision auto: %s (%s)', chosen, why)
        return chosen

    def _int8_net(self, spec: GeneratorSpec, weights_path: str, calibration: CalibrationFaces) -> Int8Generator:
        """The quantized network, ready for `load_size` inputs (other sizes are quantized at their first use)."""
        def build() -> SPARNet:
            return load_generator_weights(spec.build(), weights_path, spec).eval()

        def inputs(size: int) -> Iterable[np.ndarray]:
            return calibration.inputs(spec.model, size)
        int8 = Int8Generator(build, weights_path, spec.flags(), calibration.identity, inputs, torch.get_num_threads())
        int8.prepare(self.load_size)
        return int8

    @staticmethod
    def _check_onnx(onnx_model: str, precision: str, reference_impl: bool) -> None:
        contradicting = [flag for flag, given in (
            ('--reference_impl (runs the PyTorch module)', reference_impl),
            (f'--precision {precision} (the ONNX model runs in fp32, as exported)', precision not in ('fp32', 'auto')),
        ) if given]
        if contradicting:
            raise UserError(f"--onnx_model runs {onnx_model} with ONNX Runtime; drop {', '.join(contradicting)}")

    @staticmethod
    def _onnx_size(net: OnnxGenerator, onnx_model: str, load_size: int | None) -> int:
        size = list(net.input_shape[2:])
        if load_size is not None and size != [load_size, load_size]:
            raise UserError(f"{onnx_model}: exported for {size[0]}x{size[1]} inputs, but --load_size is "
                            f"{load_size}; pass --load_size {size[0]} (and the --model it was exported from), or "
                            f"export again with --in_size {load_size}")
        return size[0]

    def _check_size(self, model: str, min_load_size: int, max_pixels: int) -> None:
        if self.load_size < min_load_size:
            raise UserError(f'--load_size {self.load_size}: {model} runs on images of at least '
                            f'{min_load_size}x{min_load_size}; give a larger --load_size')
        if self.load_size ** 2 > max_pixels:
            raise UserError(f'--load_size {self.load_size}: {self.load_size ** 2 / 1e6:.1f} megapixels per image, '
                            f'more than --max_pixels {max_pixels}; raise --max_pixels if this machine has the memory')

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, list[bool]]:
        """(N, 3, load_size, load_size) inputs in [-1, 1] (test.py's batches) -> (outputs clamped to [-1, 1], whether
        each was finite before the clamp). For a SPARNet or an ONNX model."""
        if not hasattr(self.enhancer, 'run'):
            raise UserError(f'{self.model}: test.py runs SPARNet networks; run other projects\' face restorers on '
                            'whole photos with test_enhance_single_unalign.py')
        return self.enhancer.run(batch)

    def enhance(self, faces: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 faces run as they are (the whole-photo pipeline's 512x512 aligned faces)."""
        return self.enhancer(faces)

    def __call__(self, faces: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        array = faces.detach().cpu().numpy() if isinstance(faces, torch.Tensor) else np.asarray(faces)
        if array.dtype != np.uint8 or array.ndim not in (3, 4) or array.shape[-1] != 3:
            raise UserError(f'faces: expected uint8 RGB images, (N, H, W, 3) or (H, W, 3), got {array.dtype} '
                            f'{tuple(array.shape)}')
        batch = array[None] if array.ndim == 3 else array
        batch = np.stack([resized(face, self.load_size) for face in batch]) if len(batch) else \
            np.zeros((0, self.load_size, self.load_size, 3), np.uint8)
        enhanced = self.enhancer(batch)
        enhanced = enhanced[0] if array.ndim == 3 else enhanced
        return torch.from_numpy(enhanced).to(faces.device) if isinstance(faces, torch.Tensor) else enhanced
