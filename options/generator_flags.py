"""The generator's flags, taken from its weights when they are not given.

`--pretrain_model_path` takes a file, a released model's name or an http(s) URL (see
weights/sources.py). `--model --res_depth --att_name --Gnorm --bottleneck_size --load_size`
default to None: what is left out comes from the released model's table entry, or from the
shapes of a plain file (`infer_spec`), or from a checkpoint in --checkpoints_dir; given flags
that contradict the weights stop the run with the mismatch message. Without any weights the
published defaults apply (sparnet, res_depth 10, spar, bn / in, bottleneck 4, 128 / 512).
"""
import argparse
import dataclasses
import logging
import os

import models
from archs.blocks import ATT_NAMES, NORM_TYPES
from archs.generator_spec import GeneratorSpec
from utils.cli import cache_folder, input_path, non_negative_int, positive_int, unquoted_lower
from weights.checkpoint import load_tag, net_path, state_path
from weights.download import CACHE_ENV, DEFAULT_CACHE
from weights.generator import infer_spec, mismatch_message, read_state_dict, strip_prefixes
from weights.released import RELEASED_MODELS
from weights.sources import resolve_weights
from weights.state_dict import WeightsError, load_tensors, shape_differences

log = logging.getLogger('options')
SPEC_FIELDS = {'model': 'model', 'res_depth': 'res_depth', 'att_name': 'att_name', 'Gnorm': 'norm_type',
               'bottleneck_size': 'bottleneck_size'}  # flag -> GeneratorSpec field


def add_generator_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The generator's flags and where its weights come from (all but --load_size)."""
    parser.add_argument('--model', type=unquoted_lower, default=None, choices=models.MODEL_NAMES,
                        help='sparnet (128x128, x8 from a 16x16 face) or sparnethd (512x512 blind restoration); '
                             'default: that of the weights, else sparnet')
    parser.add_argument('--res_depth', type=non_negative_int, default=None,
                        help='residual FAU blocks in the generator (default: that of the weights, else 10)')
    parser.add_argument('--att_name', type=unquoted_lower, default=None, choices=ATT_NAMES,
                        help='spatial attention: spar (2D mask) or spar3d (3D mask) (default: that of the '
                             'weights, else spar)')
    parser.add_argument('--bottleneck_size', type=positive_int, default=None,
                        help='hourglass bottleneck size in pixels (default: that of the weights, else 4)')
    parser.add_argument('--Gnorm', type=unquoted_lower, default=None, choices=NORM_TYPES,
                        help='generator norm (default: that of the weights, else bn for sparnet, in for sparnethd)')
    parser.add_argument('--pretrain_model_path', type=input_path, default='',
                        help=f"generator weights: a .pth file, a released model name ({', '.join(RELEASED_MODELS)}) "
                             'or an http(s) URL; names and URLs are downloaded once into --weights_dir')
    parser.add_argument('--weights_dir', type=cache_folder, default=None,
                        help=f'folder of downloaded weights (default: ${CACHE_ENV}, else {DEFAULT_CACHE})')
    return parser


def _weights_spec(weights, checkpoint, checkpoint_state=None):
    """(path, state dict or None, GeneratorSpec or None, load size or None) of the weights to use."""
    if weights is not None and weights.released is not None:
        return weights.path, None, weights.released.spec, weights.released.load_size
    if checkpoint_state is not None:
        return checkpoint, checkpoint_state, infer_spec(checkpoint_state), None
    path = weights.path if weights is not None else checkpoint
    if path is None or not os.path.isfile(path):
        return path, None, None, None
    state_dict = read_state_dict(path, mmap=True)
    return path, state_dict, infer_spec(state_dict), None


def resumed_generator(save_dir: str) -> tuple[str | None, dict | None]:
    """(file, generator state dict) a resume takes the network flags from: the generator of
    `latest_train_state.pth` (what --continue_train loads), else a published run's `latest_net_G.pth`;
    (None, None) when neither can be read, and the resume itself says why."""
    train_state = state_path(save_dir, 'latest')
    try:
        if os.path.isfile(train_state):
            state = load_tensors(train_state, what='training state', mmap=True)
            return train_state, strip_prefixes(state['model']['networks']['G'])
        published = net_path(save_dir, 'latest', 'G')
        if os.path.isfile(published):
            return published, read_state_dict(published, mmap=True)
    except (WeightsError, KeyError, TypeError):
        pass
    return None, None


def _log_inferred(resolved, given, path, released):
    """One line naming the flags that came from the weights (a plain file's `in` norm may be `gn`)."""
    inferred = ' '.join(f'--{flag} {resolved[flag]}' for flag in resolved if flag not in given)
    if released is not None:
        log.info('flags of the released %s: %s', released.name, inferred)
        return
    note = (' (instance and group norm have the same weights: pass --Gnorm gn for a group-norm network)'
            if 'Gnorm' not in given and resolved['Gnorm'] == 'in' else '')
    log.info('flags from %s: %s%s', path, inferred, note)


def resolve_generator_options(opt: argparse.Namespace, is_train: bool = False,
                              default_weights: str = '') -> dict[str, str | int]:
    """{flag: value} of the generator flags, `pretrain_model_path` (the local file) and `load_size`.

    `opt` holds the flags as parsed (None where not given). Downloads released weights and URLs
    on first use. Without --pretrain_model_path, a test run infers the flags from its checkpoint
    in --checkpoints_dir, a resumed training run from its `latest` one; a test run without such a
    checkpoint uses `default_weights` if given. WeightsError when given flags contradict the weights.
    """
    source = opt.pretrain_model_path
    given = {flag: getattr(opt, flag) for flag in SPEC_FIELDS if getattr(opt, flag) is not None}
    checkpoint, checkpoint_state = None, None
    if not source and is_train:
        if opt.continue_train and len(given) < len(SPEC_FIELDS):  # with every flag given, nothing is read here
            checkpoint, checkpoint_state = resumed_generator(os.path.join(opt.checkpoints_dir, opt.name))
    elif not source:
        tag = load_tag(opt.epoch, opt.load_iter)
        candidates = [net_path(os.path.join(opt.checkpoints_dir, opt.name), tag, net) for net in ('G', 'H')]
        checkpoint = next((path for path in candidates if os.path.isfile(path)), None)
        if default_weights and checkpoint is None:
            log.info('no --pretrain_model_path and no checkpoint of --name %s: using %s', opt.name, default_weights)
            source = default_weights
    weights = resolve_weights(source, opt.weights_dir)
    path, state_dict, file_spec, load_size = _weights_spec(weights, checkpoint, checkpoint_state)
    if file_spec is not None:
        base = file_spec
    else:
        model = given.get('model', 'sparnet')
        base = GeneratorSpec(model=model, norm_type=models.get_model_class(model).default_gnorm)
    spec = dataclasses.replace(base, **{SPEC_FIELDS[flag]: value for flag, value in given.items()})
    if spec != file_spec and (state_dict is not None or weights is not None):
        state_dict = state_dict if state_dict is not None else read_state_dict(path, mmap=True)
        expected = spec.shapes()
        if shape_differences(state_dict, expected):
            raise WeightsError(mismatch_message(path, spec, state_dict, expected))
    resolved = {flag: getattr(spec, field) for flag, field in SPEC_FIELDS.items()}
    resolved['load_size'] = load_size or models.get_model_class(spec.model).default_load_size
    if opt.load_size is not None:
        given['load_size'] = resolved['load_size'] = opt.load_size
    if file_spec is not None and len(given) < len(resolved):
        _log_inferred(resolved, given, path, weights.released if weights is not None else None)
    resolved['pretrain_model_path'] = weights.path if weights is not None else ''
    return resolved
