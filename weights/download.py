"""Downloading weights into the cache folder: a progress bar, nothing half-written, one-line failures.

The file streams into a temporary file beside its final name (unique per process), its SHA-256
computed on the way; only a complete file (byte count equal to Content-Length, expected digest,
accepted by the caller's `check`) is renamed into place. Two processes fetching the same file
each write their own temporary file and the last rename wins: both end with one good copy.
Nothing is written when the folder's free space cannot hold the announced size, and a transfer
stops as soon as it goes beyond it (or, without one, leaves less than `FREE_SPACE_RESERVE` free).
The files of the project's table (released weights, VGG19, Inception, test sets) live in the
cache under their file names; any other URL in a folder of its own, named by a digest of the
whole URL (as torch.hub and huggingface_hub keep them), so two URLs never share an entry.
"""
import contextlib
import hashlib
import http.client
import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

from utils.atomic import atomic_write
from utils.cli import UserError
from utils.output_plan import free_space
from utils.progress import progress

log = logging.getLogger(__name__)

CACHE_ENV = 'SPARNET_HOME'
DEFAULT_CACHE = os.path.join('~', '.cache', 'sparnet')
# For mirrors and tests: fetch every file as `<base URL>/<file name>` instead of from its own URL
# (read at each download, so it reaches this process and the subprocesses it starts).
BASE_URL_ENV = 'SPARNET_DOWNLOAD_BASE_URL'
TIMEOUT_SECONDS = 60  # without a byte received
CHUNK_BYTES = 1 << 20
USER_AGENT = 'sparnet-weights/1.0 (Python urllib)'
URL_FOLDER = 'urls'  # cache/urls/<digest of the URL>/<file name>: files fetched from a URL of the user's
URL_DIGEST_CHARS = 16
FREE_SPACE_RESERVE = 256 << 20  # a transfer of unknown size stops before the disk holds less than this
FREE_SPACE_CHECK_BYTES = 64 * CHUNK_BYTES  # how often a transfer of unknown size looks at the free space
SIZE_HINT_MARGIN = 1.25  # a file of the table may exceed the size of its tensors by this much (keys, zip headers)


class DownloadError(UserError):
    """A file could not be downloaded or was refused; the message says where to put it by hand."""


def cache_dir(folder: str | None = None) -> str:
    """Where downloaded weights are kept: `folder` if given, else $SPARNET_HOME, else ~/.cache/sparnet."""
    return os.path.abspath(os.path.expanduser(folder or os.environ.get(CACHE_ENV) or DEFAULT_CACHE))


def url_cache_path(url: str, folder: str | None = None) -> str:
    """Where the file at `url` is kept: `<cache>/urls/<first 16 hex digits of SHA-256(url)>/<its file name>`."""
    digest = hashlib.sha256(url.encode('utf-8')).hexdigest()[:URL_DIGEST_CHARS]
    return os.path.join(cache_dir(folder), URL_FOLDER, digest, url_file_name(url))


def url_file_name(url: str) -> str:
    """The file name at the end of the URL's path ('' when it names none)."""
    return os.path.basename(urllib.parse.urlparse(url).path)


def megabytes(count: int) -> str:
    return f'{count / 1e6:,.1f} MB'


def check_free_space(folder: str, needed: int, label: str, url: str, path: str) -> None:
    """DownloadError in one line when `folder` (or the nearest existing folder above it) has less free space than
    `needed` bytes, before anything is written."""
    free = free_space(folder)
    if needed > free:
        raise DownloadError(f'{label}: {url} is {megabytes(needed)} but {folder} has {megabytes(free)} free; '
                            f'free some space, or download it by hand and put it at {path}')


def source_url(url: str) -> str:
    """`url`, or the same file name under the base URL of a mirror ($SPARNET_DOWNLOAD_BASE_URL): for the files of the
    project's table only, never for a URL the user gives."""
    base = os.environ.get(BASE_URL_ENV)
    return f"{base.rstrip('/')}/{url.rsplit('/', 1)[-1]}" if base else url


def _network_reason(err):
    """A short phrase for why a connection or a transfer failed."""
    if isinstance(err, urllib.error.HTTPError):
        if 'redirect' in str(err.msg).lower() and 'loop' in str(err.msg).lower():
            return f'HTTP {err.code}: the server redirects in a loop'
        return f'HTTP {err.code} {err.reason}'
    if isinstance(err, urllib.error.URLError):
        err = err.reason if isinstance(err.reason, BaseException) else err
    if isinstance(err, socket.gaierror):
        return 'could not resolve the host name: offline, or no DNS'
    if isinstance(err, (TimeoutError, socket.timeout)):
        return f'timed out: no data for {TIMEOUT_SECONDS} s'
    if isinstance(err, ConnectionRefusedError):
        return 'connection refused'
    if isinstance(err, (http.client.IncompleteRead, ConnectionError, http.client.HTTPException)):
        return f'the connection broke off: {err.__class__.__name__}'
    return str(err) or err.__class__.__name__


class TransferStopped(Exception):
    """The transfer went beyond its announced size, or would fill the disk: it stops, nothing is kept."""


class _Transfer:
    """Streams a response into a file, counting and hashing the bytes, within a size limit."""

    def __init__(self, response, label, folder, size_hint=None):
        self.response = response
        length = response.headers.get('Content-Length')
        self.expected = int(length) if length and length.isdigit() else None
        if self.expected is None and size_hint is not None:
            size_hint = int(size_hint * SIZE_HINT_MARGIN) + CHUNK_BYTES  # the table's figure is about the tensors
        self.limit = self.expected if self.expected is not None else size_hint  # bytes, or None: the free space
        self.received = 0
        self.next_free_check = 0
        self.digest = hashlib.sha256()
        self.label = label
        self.folder = folder

    def _check_room(self):
        if self.limit is not None and self.received > self.limit:
            announced = 'its Content-Length' if self.expected is not None else 'the size the weights table gives'
            raise TransferStopped(f'the server sent more than {announced}, {megabytes(self.limit)}')
        if self.limit is None and self.received >= self.next_free_check:
            self.next_free_check = self.received + FREE_SPACE_CHECK_BYTES
            free = free_space(self.folder)
            if free < FREE_SPACE_RESERVE:
                raise TransferStopped(f'stopped after {megabytes(self.received)}: {self.folder} has '
                                      f'{megabytes(free)} free left')

    def copy_to(self, handle):
        """Copy the body into `handle`; network failures are raised as ConnectionError (writes as OSError)."""
        with progress(total=self.limit, unit='B', unit_scale=True, desc=self.label) as bar:
            while True:
                try:
                    chunk = self.response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as err:
                    raise ConnectionError(_network_reason(err)) from err
                if not chunk:
                    return
                self.received += len(chunk)
                self._check_room()
                handle.write(chunk)
                self.digest.update(chunk)
                bar.update(len(chunk))


def download(url: str, path: str, label: str, sha256: str | None = None,
             check: Callable[[str], object] | None = None, size_hint: int | None = None) -> str:
    """Fetch `url` into `path` (atomically); return the SHA-256 hex digest of the file.

    `label` names the file in messages (e.g. the model's name). `sha256` is the expected digest or
    its first characters (torch.hub's file-name convention); `check(temporary path)` may raise a
    UserError to refuse the file; `size_hint` is the size expected when the server announces none.
    Any failure raises DownloadError in one line and leaves neither `path` (if it was absent) nor a
    temporary file; a size beyond the folder's free space is refused before anything is written.
    """
    def failure(reason):
        return DownloadError(f"{label}: could not download {url} ({reason}); download it by hand and put it at {path}")

    request = urllib.request.Request(url, headers={'User-Agent': USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except (OSError, http.client.HTTPException) as err:
        raise failure(_network_reason(err)) from err
    with response:
        folder = os.path.dirname(os.path.abspath(path))
        transfer = _Transfer(response, os.path.basename(path), folder, size_hint)
        if transfer.limit is not None:
            check_free_space(folder, transfer.limit, label, url, path)
        log.info('%s: downloading %s to %s', label, url, path)

        def accept(tmp_path):
            if transfer.expected is not None and transfer.received != transfer.expected:
                raise failure(f'the transfer was cut short: {transfer.received} of {transfer.expected} bytes')
            found = transfer.digest.hexdigest()
            if sha256 and not found.startswith(sha256.lower()):
                raise DownloadError(f"{label}: the file downloaded from {url} has SHA-256 {found}, expected "
                                    f"{sha256}: a changed or corrupted file; it was deleted")
            if check is not None:
                try:
                    check(tmp_path)
                except UserError as err:
                    raise DownloadError(f"{label}: the file downloaded from {url} was refused and deleted: "
                                        f"{err}") from err
        try:
            with atomic_write(path, check=accept) as handle:
                transfer.copy_to(handle)
        except (ConnectionError, TransferStopped) as err:
            raise failure(str(err)) from err
        except OSError as err:
            raise failure(f'could not write the file: {err.strerror or err}') from err
    digest = transfer.digest.hexdigest()
    log.info('%s: downloaded %s (%s) to %s, SHA-256 %s', label, url, megabytes(transfer.received), path, digest)
    return digest


def fetch_url_file(url: str, check: Callable[[str], object], folder: str | None = None) -> str:
    """The file at a URL the user gives, downloaded once into `url_cache_path(url)` from where the URL points (no
    mirror) and kept when `check(temporary path)` accepts it; the URL's folder is removed when that fails. The
    log says which file is used."""
    path = url_cache_path(url, folder)
    if not os.path.isfile(path):
        try:
            download(url, path, url, check=check)
        except UserError:
            with contextlib.suppress(OSError):  # the URL's folder, left empty
                os.rmdir(os.path.dirname(path))
            raise
    log.info('%s: using %s', url, path)
    return path


@dataclass(frozen=True)
class RemoteFile:
    """A weights file fetched on first use: its name, URL, expected digest and how to check it.

    `check(path, label)` raises a UserError when the file at `path` is not what it should be.
    `other_places()` lists where the file may already be besides the cache (a legacy folder, the
    torch hub cache); they are looked at only when no folder is given explicitly.
    """

    name: str
    file_name: str
    url: str
    description: str
    check: Callable
    sha256: str | None = None  # the digest or its first characters (torch.hub's file-name convention)
    other_places: Callable = tuple
    size_hint: int | None = None  # about the file's size, for servers that announce none

    def cache_path(self, folder: str | None = None) -> str:
        return os.path.join(cache_dir(folder), self.file_name)

    def local_path(self, folder: str | None = None) -> str | None:
        """Where the file already is (other places first, then the cache), or None."""
        places = [*(self.other_places() if folder is None else ()), self.cache_path(folder)]
        return next((path for path in places if os.path.isfile(path)), None)

    def fetch(self, folder: str | None = None) -> str:
        """`local_path(folder)`, downloading the file into the cache (or `folder`) when it is nowhere."""
        path = self.local_path(folder)
        if path is None:
            path = self.cache_path(folder)
            download(source_url(self.url), path, self.name, self.sha256,
                     check=lambda tmp: self.check(tmp, self.file_name), size_hint=self.size_hint)
        return path
