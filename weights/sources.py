"""Where generator weights come from: a file, a released model's name, or an http(s) URL.

Names and URLs are downloaded once into the cache folder (`weights.download.cache_dir`) and used
from there afterwards without any network access. A download is kept only when it loads strictly
into the network it should be (the table's for a released model; some SPARNet/SPARNetHD network
for any other URL). A URL is fetched from where it points, into a cache folder of its own (two URLs
ending in the same file name are two files); only the release's own URL of a model is that model.
A path that exists is used as the file, always, whatever its name (a local `RestoreFormer.pth` is
yours, not the release's); only a bare name of a table, or a missing path whose file name is a
table's file (the original commands' `./pretrain_models/SPARNet-V16-S4-epoch20.pth`), is taken
from the cache, downloaded if needed. `table_entry` holds that rule for every flag that takes a model.
"""
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from archs.generator_spec import GeneratorSpec
from weights.download import cache_dir, fetch_url_file, url_file_name
from weights.generator import check_generator_file, file_spec, infer_spec, mismatch_message, read_state_dict
from weights.released import RELEASED_MODELS, ReleasedModel, find_released
from weights.state_dict import WeightsError, shape_differences

log = logging.getLogger(__name__)
URL_SCHEMES = ('http://', 'https://')
Entry = TypeVar('Entry')


def table_entry(source: str, find: Callable[[str], Entry | None],
                file_names: Callable[[Entry], Iterable[str]]) -> Entry | None:
    """The model table's entry that `source` names, or None: None for a path that exists (it is the file, always)
    and for a URL; `find(name)` of a bare name; a missing path with a folder only by its file name
    (`file_names(entry)`), so that `./models/sparnet` is no table name but `./pretrain_models/<released file>` is."""
    if not source or os.path.exists(source) or source.lower().startswith(URL_SCHEMES):
        return None
    name = os.path.basename(source)
    entry = find(name)
    if entry is not None and name != source and name not in file_names(entry):
        return None
    return entry


def released_named(source: str) -> ReleasedModel | None:
    """The released SPARNet a source names that is not an existing path (`table_entry`'s rule), or None."""
    return table_entry(source, find_released, lambda model: model.aliases)


@dataclass(frozen=True)
class WeightsFile:
    """A local weights file, and the released model it is when known."""

    path: str
    released: ReleasedModel | None = None


def sparnet_spec(source: str) -> GeneratorSpec | None:
    """The SPARNet / SPARNetHD network a model flag's `source` names, or None: a file that exists by the tensors it
    holds (whatever its name), a URL by its file name, else a released name or file name (`released_named`)."""
    if os.path.exists(source):
        return file_spec(source) if os.path.isfile(source) else None
    released = (find_released(url_file_name(source)) if source.lower().startswith(URL_SCHEMES)
                else released_named(source))
    return released.spec if released is not None else None


def fetch_url(url: str, folder: str | None = None) -> WeightsFile:
    """WeightsFile of the file at `url`, downloaded once into `url_cache_path(url)` (the release's URL of a
    released model: that model's file of the cache); the log says which file is used."""
    if not url_file_name(url):
        raise WeightsError(f"{url}: the URL names no file; give the address of a .pth file")
    released = next((model for model in RELEASED_MODELS.values() if model.url == url), None)
    if released is None:
        return WeightsFile(fetch_url_file(url, lambda tmp: check_generator_file(tmp, url), folder))
    weights = WeightsFile(released.remote.fetch(folder), released)
    log.info('%s: using %s', url, weights.path)
    return weights


def resolve_weights(source: str, folder: str | None = None) -> WeightsFile | None:
    """WeightsFile for `--pretrain_model_path` (a file, a released name or alias, an http(s) URL), or None if empty.

    `folder` replaces the cache folder for names and URLs.
    """
    if not source:
        return None
    if source.lower().startswith(URL_SCHEMES):
        return fetch_url(source, folder)
    if os.path.exists(source):
        if os.path.isdir(source):
            raise WeightsError(f"{source}: is a folder, not a weights file; give the .pth file inside it "
                               f"or a released model name ({', '.join(RELEASED_MODELS)})")
        return WeightsFile(source)
    released = released_named(source)
    if released is None:
        raise WeightsError(f"{source}: no such weights file; --pretrain_model_path takes a .pth file, a released "
                           f"model name ({', '.join(RELEASED_MODELS)}) or an http(s) URL")
    if source != released.name:
        log.info('%s is not there: using the released %s from %s', source, released.name, cache_dir(folder))
    return WeightsFile(released.remote.fetch(folder), released)


@dataclass(frozen=True)
class GeneratorWeights:
    """A SPARNet / SPARNetHD weights file, the network it holds, and the load size of its table entry (None for a
    file of no released model: the model's default)."""

    path: str
    spec: GeneratorSpec
    load_size: int | None = None
    released: ReleasedModel | None = None


def resolve_generator(source: str, folder: str | None = None, spec: GeneratorSpec | None = None) -> GeneratorWeights:
    """The weights `source` names (a file, a released name or alias, an http(s) URL; `resolve_weights`) and the
    network they hold: the released model's, else read from the file's tensors (`infer_spec`). A given `spec`
    (flags the weights cannot tell, such as a group norm) must fit the tensors: WeightsError naming the flags that
    would fit otherwise."""
    weights = resolve_weights(source, folder)
    if weights is None:
        raise WeightsError('no weights given: a .pth file, a released model name '
                           f"({', '.join(RELEASED_MODELS)}) or an http(s) URL")
    if weights.released is not None:
        found, load_size, state_dict = weights.released.spec, weights.released.load_size, None
    else:
        state_dict = read_state_dict(weights.path, mmap=True)
        found, load_size = infer_spec(state_dict), None
    if spec is not None and spec != found:
        state_dict = state_dict if state_dict is not None else read_state_dict(weights.path, mmap=True)
        expected = spec.shapes()
        if shape_differences(state_dict, expected):
            raise WeightsError(mismatch_message(weights.path, spec, state_dict, expected))
        found = spec
    if found is None:
        raise WeightsError(f'{weights.path}: not SPARNet/SPARNetHD generator weights (its tensors fit none of the '
                           'flag combinations)')
    return GeneratorWeights(weights.path, found, load_size, weights.released)
