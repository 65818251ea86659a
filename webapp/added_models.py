"""`app.py --models`: your own checkpoints of train.py and other projects' models, added to the page's choices.

Every file is checked at start-up, before the server starts, so a wrong one stops app.py in one
line rather than failing in the page. A checkpoint of train.py is a file whose tensors fit a
SPARNet / SPARNetHD network (`weights.generator.infer_spec`, as `--pretrain_model_path` reads it;
a job passes it there, so its flags come from its weights as on the command line). Any other file
must be a model spandrel loads: a face restorer (GFPGAN, RestoreFormer; CodeFormer only with
--codeformer_noncommercial) for the Photos tab, or a super-resolution model (Real-ESRGAN...) for
the background upsampler. The names of `weights.other_models` are taken too (fetched on first use);
a file that exists is checked as a file whatever its name (a local `RealESRGAN_x2plus.pth` is not
the table's); a folder adds its .pth and .safetensors files, sorted.
"""
import os
from collections.abc import Sequence
from dataclasses import dataclass

from utils.cli import UserError
from weights.generator import file_spec
from weights.other_models import names_of, other_named
from weights.spandrel_file import BACKGROUND, FACE, LICENCE_FLAG, load_spandrel, model_role
from weights.state_dict import WeightsError

SPARNET, SPARNETHD = 'sparnet', 'sparnethd'  # kinds of added models, with BACKGROUND and FACE
EXTENSIONS = ('.pth', '.safetensors')
TAKES = (f"checkpoints of train.py, face restorers and super-resolution models spandrel loads "
         f"({', '.join(names_of(FACE) + names_of(BACKGROUND))} by name), or folders of them")


@dataclass(frozen=True)
class AddedModel:
    label: str  # what the page shows and sends back: the file name (with its folder when two files share it)
    source: str  # the file, or a name of weights.other_models
    kind: str  # SPARNET (aligned 16x16 faces), SPARNETHD (photos, aligned faces), FACE (photos), BACKGROUND
    scale: int = 1  # how many times a background upsampler enlarges


def _files(source):
    """The model files `source` names: itself, or the .pth / .safetensors files of a folder (sorted)."""
    if os.path.isdir(source):
        files = sorted(os.path.join(source, name) for name in os.listdir(source)
                       if name.lower().endswith(EXTENSIONS) and os.path.isfile(os.path.join(source, name)))
        if not files:
            raise UserError(f'--models {source}: a folder without any .pth or .safetensors file; --models takes '
                            f'{TAKES}')
        return files
    if not os.path.isfile(source):
        raise UserError(f'--models {source}: no such file, folder or model name; --models takes {TAKES}')
    return [source]


def _kind(path, noncommercial_ok):
    """(kind, scale) of the model in `path`; UserError in one line when it fits no network."""
    spec = file_spec(path)
    if spec is not None:
        return spec.model, 1
    try:
        descriptor = load_spandrel(path, path, None, noncommercial_ok)
        return model_role(descriptor, path), descriptor.scale
    except WeightsError as err:
        raise UserError(f'--models {err}') from err


def _labels(paths):
    """A label per file: its name, with its folder's name for names that repeat, its path if that repeats too."""
    names = [os.path.basename(path) for path in paths]
    labels = [name if names.count(name) == 1 else os.path.join(os.path.basename(os.path.dirname(path)), name)
              for path, name in zip(paths, names)]
    return [label if labels.count(label) == 1 else path for path, label in zip(paths, labels)]


def added_models(sources: Sequence[str], noncommercial_ok: bool = False) -> list[AddedModel]:
    """The models of `--models` (files, folders, names of the other projects' table), each checked: the table's
    names, then the files in the order given."""
    added, paths = [], []
    for source in sources:
        other = other_named(source)
        if other is None:
            paths += [path for path in _files(source) if os.path.realpath(path) not in map(os.path.realpath, paths)]
        elif other.non_commercial and not noncommercial_ok:
            raise UserError(f'--models {source}: {other.description.split(":")[0]} is under the {other.licence}; '
                            f'pass {LICENCE_FLAG} to accept it, or leave it out')
        elif other.name not in (model.source for model in added):
            added.append(AddedModel(other.name, other.name, other.role, other.scale))
    for path, label in zip(paths, _labels(paths)):
        added.append(AddedModel(label, path, *_kind(path, noncommercial_ok)))
    return added
