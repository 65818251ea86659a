"""The Python API's objects of parsed test options: what test.py and the whole-photo script run is what a program
gets from `api.FaceEnhancer` / `api.PhotoRestorer` with the same choices (the flags' names are its arguments)."""
import argparse
import os

import torch

from api import FaceEnhancer, PhotoRestorer
from archs.generator_spec import GeneratorSpec
from faces.detector import warn_max_size
from models import get_model_class
from models.base_model import BaseModel
from weights.checkpoint import load_tag, net_path
from weights.released import RELEASED_MODELS
from weights.state_dict import WeightsError


def weights_of(opt: argparse.Namespace, net_name: str = 'G') -> str:
    """--pretrain_model_path, else the checkpoint of --name at --epoch / --load_iter in --checkpoints_dir (the
    published code's `20_net_G.pth` too, when `epoch_20_net_G.pth` is absent); WeightsError when there is none."""
    if opt.pretrain_model_path:
        return opt.pretrain_model_path
    save_dir = os.path.join(opt.checkpoints_dir, opt.name)
    path = net_path(save_dir, load_tag(opt.epoch, opt.load_iter), net_name)
    published = net_path(save_dir, opt.epoch, net_name)
    if str(opt.epoch).isdigit() and opt.load_iter <= 0 and not os.path.isfile(path) and os.path.isfile(published):
        return published
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such checkpoint (--checkpoints_dir {opt.checkpoints_dir} --name {opt.name} "
                           f"--epoch {opt.epoch}); pass the weights with --pretrain_model_path: a .pth file, "
                           f"a released model name ({', '.join(RELEASED_MODELS)}) or an http(s) URL")
    return path


def face_enhancer(opt: argparse.Namespace) -> FaceEnhancer:
    """test.py's network (or the whole-photo script's face model) as the API builds it."""
    common = dict(device=opt.device, precision=opt.precision, batch_size=opt.batch_size,
                  round_output=opt.round_output, weights_dir=opt.weights_dir, max_pixels=opt.max_pixels)
    if opt.onnx_model:
        return FaceEnhancer(onnx_model=opt.onnx_model, load_size=opt.load_size, **common)
    if opt.other_face_model:
        return FaceEnhancer(opt.face_model, codeformer_noncommercial=opt.codeformer_noncommercial,
                            codeformer_fidelity=opt.codeformer_fidelity, **common)
    spec = GeneratorSpec.from_options(opt)
    if opt.verbose and getattr(opt, 'rank', 0) == 0:
        with torch.device('meta'):  # the module and its parameter counts, no memory
            BaseModel.print_networks({'G': spec.build()})
    return FaceEnhancer(weights_of(opt, get_model_class(opt.model).inference_net_name), network=spec,
                        load_size=opt.load_size, reference_impl=opt.reference_impl, calibration=opt.calibration,
                        **common)


def photo_restorer(opt: argparse.Namespace, progress: bool = True) -> PhotoRestorer:
    """The whole-photo script's pipeline as the API builds it (`progress`: bars, on the first process only)."""
    warn_max_size(opt)
    return PhotoRestorer(enhancer=face_enhancer(opt), detector=opt.detector, min_face_size=opt.min_face_size,
                         detect_min_score=opt.detect_min_score, detect_tile_size=opt.detect_tile_size,
                         detect_workers=opt.detect_workers, detect_max_size=opt.detect_max_size,
                         upscale=opt.test_upscale, bg_upsampler=opt.bg_upsampler, bg_tile=opt.bg_tile,
                         face_batch_size=opt.face_batch_size, device=opt.device, precision=opt.precision,
                         weights_dir=opt.weights_dir, max_pixels=opt.max_pixels, progress=progress)
