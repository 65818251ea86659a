"""`--face_model`: a SPARNet (a released name or a checkpoint of train.py) or another project's face restorer.

A SPARNet given there is what `--pretrain_model_path` would be (its flags from its weights, as
always); GFPGAN, RestoreFormer, CodeFormer (their names, files or URLs) or any face restorer
spandrel loads is fetched into the weights cache here, before any work, and run by
`models.face_restorers` in the same detection, alignment and paste. CodeFormer is refused unless
its non-commercial licence is accepted with --codeformer_noncommercial.
"""
import argparse
import os

from utils.cli import UserError
from weights.other_models import names_of, other_named, resolve_other
from weights.released import RELEASED_MODELS
from weights.sources import URL_SCHEMES, sparnet_spec
from weights.spandrel_file import FACE, LICENCE_FLAG


def face_model_choices() -> str:
    return (f"a SPARNet ({', '.join(RELEASED_MODELS)}, or a checkpoint of train.py), another project's face restorer "
            f"({', '.join(names_of(FACE))}), a face restorer file spandrel loads, or an http(s) URL")


def resolve_face_model(known: argparse.Namespace) -> str:
    """The local file of another project's face restorer named by `known.face_model` ('' for a SPARNet, then put in
    `known.pretrain_model_path`). UserError in one line for a model that does not fit, before any download."""
    source = known.face_model
    if known.pretrain_model_path:
        raise UserError(f'--face_model {source} and --pretrain_model_path {known.pretrain_model_path} both name the '
                        'face model; give one of them')
    other = other_named(source)
    if other is None and sparnet_spec(source) is not None:  # a file by its tensors, whatever its name
        known.pretrain_model_path = source
        return ''
    if other is not None and other.non_commercial and not known.codeformer_noncommercial:
        raise UserError(f'--face_model {source}: {other.description.split(":")[0]} is under the {other.licence}; '
                        f'pass {LICENCE_FLAG} to accept it, or choose another face model')
    if other is None and not source.lower().startswith(URL_SCHEMES) and not os.path.exists(source):
        raise UserError(f'--face_model {source}: no such file or model name; --face_model takes {face_model_choices()}')
    path, _ = resolve_other(source, FACE, known.weights_dir)
    return path
