"""Other projects' released models that this one runs through spandrel, in one table.

Real-ESRGAN enlarges the background of whole photos (`--bg_upsampler`); GFPGAN, RestoreFormer and
CodeFormer restore faces in place of SPARNetHD (`--face_model`). Their files are fetched from the
official release URLs into the same weights cache, with the same checks, as the released SPARNets
(`weights.released`): a download is kept only when spandrel loads it as a model of its role. No
architecture code of theirs is copied here; spandrel recognises them from their weights.
"""
import functools
import logging
import os
from dataclasses import dataclass

from weights.download import RemoteFile, fetch_url_file, url_file_name
from weights.sources import URL_SCHEMES, table_entry
from weights.spandrel_file import BACKGROUND, FACE, ROLE_FLAGS, ROLE_WHAT, check_spandrel_file
from weights.state_dict import WeightsError

log = logging.getLogger(__name__)
NON_COMMERCIAL = 'S-Lab License 1.0 (non-commercial use only)'


@dataclass(frozen=True)
class OtherModel:
    name: str
    file_name: str
    url: str
    role: str  # BACKGROUND (super-resolution of whole photos) or FACE (restoration of 512x512 aligned faces)
    scale: int  # how many times the model enlarges its input (1 for the face restorers)
    description: str
    licence: str
    sha256: str | None = None  # unknown: printed after a download, checked when known

    @property
    def non_commercial(self) -> bool:
        return self.licence == NON_COMMERCIAL

    @property
    def remote(self) -> RemoteFile:
        """The file to fetch: kept only when spandrel loads it as a model of this role."""
        return RemoteFile(self.name, self.file_name, self.url, self.description,
                          functools.partial(check_spandrel_file, role=self.role), self.sha256)


REAL_ESRGAN = 'https://github.com/xinntao/Real-ESRGAN/releases/download'
GFPGAN = 'https://github.com/TencentARC/GFPGAN/releases/download'
OTHER_MODELS = {model.name: model for model in (
    OtherModel('realesrgan_x2plus', 'RealESRGAN_x2plus.pth', f'{REAL_ESRGAN}/v0.2.1/RealESRGAN_x2plus.pth',
               BACKGROUND, 2, 'Real-ESRGAN x2plus: x2 super-resolution of real photos (RRDBNet)', 'BSD-3-Clause'),
    OtherModel('realesrgan_x4plus', 'RealESRGAN_x4plus.pth', f'{REAL_ESRGAN}/v0.1.0/RealESRGAN_x4plus.pth',
               BACKGROUND, 4, 'Real-ESRGAN x4plus: x4 super-resolution of real photos (RRDBNet)', 'BSD-3-Clause'),
    OtherModel('gfpgan_v1.3', 'GFPGANv1.3.pth', f'{GFPGAN}/v1.3.0/GFPGANv1.3.pth', FACE, 1,
               'GFPGAN v1.3: blind restoration of 512x512 faces (StyleGAN2 prior)', 'Apache-2.0'),
    OtherModel('gfpgan_v1.4', 'GFPGANv1.4.pth', f'{GFPGAN}/v1.3.0/GFPGANv1.4.pth', FACE, 1,
               'GFPGAN v1.4: blind restoration of 512x512 faces (StyleGAN2 prior)', 'Apache-2.0'),
    OtherModel('restoreformer', 'RestoreFormer.pth', f'{GFPGAN}/v1.3.4/RestoreFormer.pth', FACE, 1,
               'RestoreFormer: blind restoration of 512x512 faces (as released with GFPGAN)', 'Apache-2.0'),
    OtherModel('codeformer', 'codeformer.pth',
               'https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth', FACE, 1,
               'CodeFormer: blind restoration of 512x512 faces (codebook lookup transformer)', NON_COMMERCIAL),
)}


def find_other(name: str) -> OtherModel | None:
    """The OtherModel called `name` (its short name, or its file name with or without the extension; any case)."""
    key = name.strip().lower()
    for model in OTHER_MODELS.values():
        if key in (model.name, model.file_name.lower(), model.file_name.lower().rsplit('.', 1)[0]):
            return model
    return None


def other_named(source: str) -> OtherModel | None:
    """The table's model a source names that is not an existing path (`weights.sources.table_entry`: a file that
    exists is the user's, whatever its name), or None."""
    return table_entry(source, find_other,
                       lambda model: (model.file_name, model.file_name.rsplit('.', 1)[0]))


def names_of(role: str) -> tuple[str, ...]:
    """The short names of the table's models of `role`."""
    return tuple(name for name, model in OTHER_MODELS.items() if model.role == role)


def resolve_other(source: str, role: str, folder: str | None = None) -> tuple[str, OtherModel | None]:
    """(local file, table entry or None) of a model of `role` given as a name of the table, a file or an http(s) URL.

    A path that exists is the file, whatever its name. Names (and missing paths whose file name is
    a table's file) and URLs are downloaded once into the cache (or `folder`) and kept only when
    spandrel loads them as a model of `role`. WeightsError in one line for a name of the other
    role and for a path that is not there.
    """
    model = other_named(source)
    if source.lower().startswith(URL_SCHEMES):
        if not url_file_name(source):
            raise WeightsError(f"{source}: the URL names no file; give the address of a model file")
        model = next((other for other in OTHER_MODELS.values() if other.url == source), None)
        if model is None:  # fetched from where it points, into a folder of its own, as --pretrain_model_path's URLs
            return fetch_url_file(source, lambda tmp: check_spandrel_file(tmp, source, role), folder), None
    if model is not None:
        if model.role != role:
            raise WeightsError(f"{source}: is {ROLE_WHAT[model.role]}, not {ROLE_WHAT[role]} (give it to "
                               f"{ROLE_FLAGS[model.role]}); {ROLE_FLAGS[role]} takes {choices(role)}")
        path = model.remote.fetch(folder)
        if os.path.basename(source) != source:
            log.info('%s is not there: using %s', source, path)
        return path, model
    if os.path.isdir(source):
        raise WeightsError(f"{source}: is a folder, not a model file; {ROLE_FLAGS[role]} takes {choices(role)}")
    if not os.path.isfile(source):
        raise WeightsError(f"{source}: no such model file; {ROLE_FLAGS[role]} takes {choices(role)}")
    return source, None


def choices(role: str) -> str:
    """What a flag of `role` takes, in words: the table's names, a file, a URL."""
    return f"a name ({', '.join(names_of(role))}), a model file spandrel loads or an http(s) URL"


def markdown_table() -> str:
    """The README's table of the other projects' models, generated from OTHER_MODELS."""
    lines = ['| name | file | role | model | licence |', '|---|---|---|---|---|']
    for model in OTHER_MODELS.values():
        role = '`--bg_upsampler`' if model.role == BACKGROUND else '`--face_model`'
        lines.append(f'| `{model.name}` | [`{model.file_name}`]({model.url}) | {role} | {model.description} | '
                     f'{model.licence} |')
    return '\n'.join(lines)
