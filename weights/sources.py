"""Where generator weights come from: a file, a released model's name, or an http(s) URL.

Names and URLs are downloaded once into the cache folder (`weights.download.cache_dir`) and used
from there afterwards without any network access. A download is kept only when it loads strictly
into the network it should be (the table's for a released model; some SPARNet/SPARNetHD network
for any other URL). A URL is fetched from where it points, into a cache folder of its own (two URLs
ending in the same file name are two files); only the release's own URL of a model is that model.
A missing path whose file name is a released file (the original commands'
`./pretrain_models/SPARNet-V16-S4-epoch20.pth`) is taken from the cache, downloaded if needed.
"""
import logging
import os
from dataclasses import dataclass

from weights.download import cache_dir, fetch_url_file, url_file_name
from weights.generator import check_generator_file
from weights.released import RELEASED_MODELS, ReleasedModel, find_released
from weights.state_dict import WeightsError

log = logging.getLogger(__name__)
URL_SCHEMES = ('http://', 'https://')


@dataclass(frozen=True)
class WeightsFile:
    """A local weights file, and the released model it is when known."""

    path: str
    released: ReleasedModel | None = None


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
    name = os.path.basename(source)
    released = find_released(name)
    if released is not None and name != source and name not in released.aliases:
        released = None  # a path whose file name is no released file
    if released is None:
        raise WeightsError(f"{source}: no such weights file; --pretrain_model_path takes a .pth file, a released "
                           f"model name ({', '.join(RELEASED_MODELS)}) or an http(s) URL")
    if source != released.name:
        log.info('%s is not there: using the released %s from %s', source, released.name, cache_dir(folder))
    return WeightsFile(released.remote.fetch(folder), released)
