"""`--face_model`: a SPARNet (a released name or a checkpoint of train.py) or another project's face restorer.

A SPARNet given there is what `--pretrain_model_path` would be (its flags from its weights, as
always); GFPGAN, RestoreFormer, CodeFormer (their names, files or URLs) or any face restorer
spandrel loads is fetched into the weights cache here, before any work (`api.face_enhancer`), and run
in the same detection, alignment and paste. CodeFormer is refused unless its non-commercial licence is
accepted with --codeformer_noncommercial.
"""
import argparse

from api.face_enhancer import other_face_model
from utils.cli import UserError


def resolve_face_model(known: argparse.Namespace) -> str:
    """The local file of another project's face restorer named by `known.face_model` ('' for a SPARNet, then put in
    `known.pretrain_model_path`). UserError in one line for a model that does not fit, before any download."""
    source = known.face_model
    if known.pretrain_model_path:
        raise UserError(f'--face_model {source} and --pretrain_model_path {known.pretrain_model_path} both name the '
                        'face model; give one of them')
    path = other_face_model(source, known.weights_dir, known.codeformer_noncommercial)
    if not path:
        known.pretrain_model_path = source
    return path
