"""One registry of every downloadable file in the project, and ``fetch`` to get one safely.

Each file is a :class:`RemoteFile`: where it lives under the data root, its sha256, and the mirrors
that serve it, tried in order. ``fetch`` returns the local path of a file that matches its sha256,
downloading it through pooch (temporary file, hash check, atomic move, progress bar) when absent.

A file whose bytes do not match is never used: a bad local copy or a bad download raises
:class:`ChecksumError` naming the file, both hashes and the fix; when no mirror answers,
:class:`DownloadError` lists the URLs tried and says where to put the file by hand.

Other datasets add their files with :func:`register` (see the MNIST block at the bottom).

**Files whose sha256 nobody publishes** (Aubry et al.'s ``rendered_chairs.tar``) are registered
with ``sha256=None``; a hash is never made up. ``fetch`` then trusts the first copy it sees (its own
download, through pooch with ``known_hash=None``, or a copy placed by hand), prints that copy's
sha256 and records it beside the file as ``<file>.sha256`` (the ``sha256sum`` format); every later
``fetch`` checks the file, or a new download, against that record like a registered hash. Once the
hash is known it belongs in the ``register`` call, which makes the entry an ordinary one. Such an
entry is registered with a ``check`` (its dataset's reader): the first copy is read by it before
its hash is recorded, so an empty file or an error page served in place of the file is refused by
name and never recorded (a record of garbage would later refuse the correct file).

**Files published with a SHA1 only** (the KTH action zips) are registered with ``sha256=None`` and
``sha1=<hex>``; they are checked against that SHA1 (pooch's ``"sha1:<hex>"``) exactly as the others
are against their sha256, and no hash is recorded for them.

**One process at a time** prepares a dataset: the datasets' ``prepare`` functions hold
:func:`preparing`'s lock while they download, render or convert, so notebooks run side by side
(``drnet reproduce --workers N``) wait for one another instead of writing the same files.
"""

from __future__ import annotations

import ftplib
import gzip
import hashlib
import sys
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "ChecksumError", "DatasetFormatError", "DownloadError", "REGISTRY", "RemoteFile",
    "array_after_header", "check_data_size", "digest_of", "fetch", "local_path", "preparing",
    "GZIP_MAGIC", "read_maybe_gzipped", "recorded_sha256_path", "register", "sha256_of",
]

@contextmanager
def preparing(root: str | Path, dataset: str):
    """Hold ``<root>/.<dataset>.lock`` while preparing ``dataset`` (downloading, rendering a
    stand-in, converting) under ``root``.

    Why: ``drnet reproduce --workers N`` runs several notebooks at once, and on a fresh clone each
    finds the data missing and starts writing the same files; the stand-in writers clear each
    other's half-written folders (seen: ``FileExistsError`` in the chairs stand-in). With the lock
    the first process prepares and the others wait, then find the data complete. A lock left by a
    killed process is released by the operating system with it (``filelock``'s ``flock``).
    """
    from filelock import FileLock, Timeout

    Path(root).mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(Path(root) / f".{dataset}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process that is preparing the {dataset} data in {root} ...",
              file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


class DatasetFormatError(ValueError):
    """A data file is not in the format it claims (bad magic, truncated, trailing bytes...)."""


class ChecksumError(ValueError):
    """A file's sha256 (or SHA1) differs from the registered one (corrupt, truncated or wrong file)."""


class DownloadError(OSError):
    """No mirror could deliver a file."""


@dataclass(frozen=True)
class RemoteFile:
    """A file the project can download: ``<root>/<subdir>/<filename>``, served by ``mirrors``.

    Each mirror is a base URL; the file's URL is the base followed by ``filename``.
    """

    dataset: str
    filename: str
    sha256: str | None  # None: not published; the first copy's hash is recorded (module docstring)
    mirrors: tuple[str, ...]
    subdir: str
    size: int | None = None  # bytes, for messages only
    sha1: str | None = None  # checked instead when only a SHA1 is published (sha256 is then None)
    # Unpublished hash: reads a first copy before its hash is recorded; raises DatasetFormatError
    # for a file its dataset cannot use (module docstring)
    check: Callable[[Path], object] | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.filename}"

    @property
    def urls(self) -> list[str]:
        return [m.rstrip("/") + "/" + self.filename for m in self.mirrors]

    @property
    def pinned(self) -> tuple[str, str] | None:
        """``(algorithm, hex digest)`` the file is checked against, or None when none is known."""
        if self.sha256 is not None:
            return "sha256", self.sha256
        if self.sha1 is not None:
            return "sha1", self.sha1
        return None


REGISTRY: dict[str, RemoteFile] = {}

# What a failing mirror can raise through pooch: requests' errors are OSErrors, a hash mismatch is a
# ValueError, FTP adds its own. Anything else is a bug and propagates.
_TRANSFER_ERRORS = (OSError, ValueError) + ftplib.all_errors


def register(dataset: str, filename: str, sha256: str | None, mirrors, subdir: str,
             size: int | None = None, *, sha1: str | None = None,
             check: Callable[[Path], object] | None = None) -> RemoteFile:
    """Add a file to :data:`REGISTRY` under the key ``"<dataset>/<filename>"`` and return it.

    ``sha256=None`` registers a file whose hash is not published (see the module docstring),
    unless ``sha1`` gives the SHA1 its publisher lists instead. ``check(path)``, the dataset's
    reader, must accept the first copy of such a file before its hash is recorded.
    """
    if sha256 is not None:
        sha256 = _check_hex(sha256, f"{dataset}/{filename}")
    if sha1 is not None:
        sha1 = _check_hex(sha1, f"{dataset}/{filename}", "sha1")
    entry = RemoteFile(dataset, filename, sha256, tuple(mirrors), subdir, size, sha1, check)
    REGISTRY[entry.key] = entry
    return entry


_HEX_DIGITS = {"sha256": 64, "sha1": 40}


def _check_hex(sha256: str, what, algorithm: str = "sha256") -> str:
    sha256 = sha256.lower()
    digits = _HEX_DIGITS[algorithm]
    if len(sha256) != digits or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"{what}: {algorithm} must be {digits} hex digits, got {sha256!r}")
    return sha256


def _entry(name: str) -> RemoteFile:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"no file {name!r} in the data registry; known: {known}") from None


def local_path(name: str, root: str | Path = "data") -> Path:
    """Where registry file ``name`` lives (or will live) under the data root."""
    entry = _entry(name)
    return Path(root) / entry.subdir / entry.filename


def sha256_of(path: str | Path) -> str:
    """sha256 hex digest of a file, read in chunks so large files need little memory."""
    return digest_of(path, "sha256")


def digest_of(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file by ``algorithm`` ("sha256" or "sha1"), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


GZIP_MAGIC = b"\x1f\x8b"   # the first two bytes of every gzip file


def read_maybe_gzipped(path: str | Path, fix: str = "delete it and fetch it again") -> bytes:
    """A data file's bytes, gunzipped if it starts with the gzip magic (not judged by its name).

    A cut-short or corrupt gzip stream raises :class:`DatasetFormatError` naming the file and
    ``fix`` (a stand-in's reader passes how to write the file again: it cannot be fetched).
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as err:  # the gzip stream ends early: a cut-short download
        raise DatasetFormatError(f"{path}: truncated gzip file ({err}); {fix}") from None
    except (OSError, zlib.error) as err:
        raise DatasetFormatError(f"{path}: corrupt gzip data ({err}); {fix}") from None


def check_data_size(path: Path, found: int, shape: tuple, dtype, kind: str, fix: str = "") -> None:
    """Refuse, naming ``path``, ``found`` data bytes that are not exactly what an array of
    ``shape`` and ``dtype`` needs (a cut-short download, or garbage after the data)."""
    import numpy as np

    dtype = np.dtype(dtype)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if found < expected:
        raise DatasetFormatError(f"{path}: truncated {kind} file: shape {shape} of {dtype.name} "
                                 f"needs {expected} data bytes, found {found}{fix}")
    if found > expected:
        raise DatasetFormatError(f"{path}: {found - expected} bytes of trailing garbage after the "
                                 f"{expected} data bytes of shape {shape}{fix}")


def array_after_header(path: Path, data: bytes, header: int, shape: tuple, dtype, kind: str,
                       fix: str = ""):
    """The array of ``shape`` and ``dtype`` that follows a ``header``-byte header in ``data``,
    in native byte order; a file shorter or longer than that raises :class:`DatasetFormatError`
    naming ``path``, the ``kind`` of file and the ``fix``."""
    import numpy as np

    dtype = np.dtype(dtype)
    check_data_size(path, len(data) - header, shape, dtype, kind, fix)
    # astype copies, so the result is writable and does not pin the file's bytes
    return np.frombuffer(data, dtype, offset=header).astype(dtype.newbyteorder("=")).reshape(shape)


def fetch(name: str, root: str | Path = "data", progress: bool = True, *, retries: int = 1) -> Path:
    """Return the local path of registry file ``name``, downloading it first if it is absent.

    A file already on disk is checked against its sha256 and raises :class:`ChecksumError` on a
    mismatch rather than being silently replaced: it may be a copy placed by hand, and a corrupt
    one should be noticed. Mirrors are tried in order, each ``1 + retries`` times. An entry
    registered with ``sha256=None`` is checked against its ``sha1`` if it has one, otherwise
    against the hash recorded at its first fetch.
    """
    entry = _entry(name)
    path = local_path(name, root)
    if entry.pinned is None:
        return _fetch_unpublished(entry, path, progress, retries)
    return _fetch_pinned(entry, path, progress, retries)


def recorded_sha256_path(path: str | Path) -> Path:
    """Where the sha256 of a file registered without one is recorded: ``<file>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _fetch_unpublished(entry: RemoteFile, path: Path, progress: bool, retries: int) -> Path:
    """``fetch`` for an entry with ``sha256=None``: trust on first use, then check the record."""
    record = recorded_sha256_path(path)
    if record.exists():
        text = record.read_text().split()
        try:
            known = _check_hex(text[0] if text else "", record)
        except ValueError:
            raise ChecksumError(f"{record}: not a sha256 record ({' '.join(text)[:80]!r}); delete "
                                f"it and rerun to record the hash of {path} again") from None
        try:
            return _fetch_pinned(replace(entry, sha256=known), path, progress, retries)
        except ChecksumError as err:
            raise ChecksumError(
                f"{err}\nNo sha256 is published for {entry.filename}: the expected one was "
                f"recorded in {record} when the file was first fetched. If the mirror now serves "
                f"a new version on purpose, delete {record} (and {path}) to accept it.") from None
    if not path.exists():
        _download(entry, path, progress, retries)
    _accept_first_copy(entry, path)
    actual = sha256_of(path)
    from ..checkpoint import atomic_write

    atomic_write(record, lambda f: f.write(f"{actual}  {path.name}\n".encode()))
    print(f"{entry.key}: no sha256 is published for this file; {path} has sha256 {actual}. "
          f"Recorded in {record}: later runs check the file against it. To pin it for everyone, "
          f"pass it to register() for {entry.key!r}.", file=sys.stderr)
    return path


def _accept_first_copy(entry: RemoteFile, path: Path) -> None:
    """Read the first copy of an unpublished file with its dataset's reader before its hash is
    recorded: the record vouches for the file from then on, so a copy the reader refuses (an empty
    file, an error page served in its place, a cut-short download) must not get one."""
    if entry.check is None:
        return
    try:
        entry.check(path)
    except DatasetFormatError as err:
        raise DatasetFormatError(
            f"{err}\n(No sha256 is published for {entry.filename}: its first copy is read before "
            f"its hash is recorded, and this one was refused, so nothing was recorded; a good "
            f"copy at {path}, downloaded again or from {entry.urls[0]}, will be accepted.)") from None


def _fetch_pinned(entry: RemoteFile, path: Path, progress: bool, retries: int) -> Path:
    """``fetch`` for an entry with a known sha256 (or SHA1)."""
    if path.exists():
        algorithm, expected = entry.pinned
        actual = digest_of(path, algorithm)
        if actual != expected:
            raise ChecksumError(_bad_local_message(entry, path, actual))
        return path
    return _download(entry, path, progress, retries)


def _download(entry: RemoteFile, path: Path, progress: bool, retries: int) -> Path:
    import pooch  # imported here so that reading local data never needs it

    failures: list[str] = []
    mismatches: list[tuple[str, str]] = []
    algorithm, expected = entry.pinned or ("sha256", None)
    for url in entry.urls:
        downloader = None
        try:
            downloader = _HashingDownloader(url, progress, algorithm)
            known = f"{algorithm}:{expected}" if expected else None  # None: no check
            fetcher = pooch.create(path=path.parent, base_url="", urls={entry.filename: url},
                                   registry={entry.filename: known},
                                   retry_if_failed=retries)
            return Path(fetcher.fetch(entry.filename, downloader=downloader, progressbar=progress))
        except _TRANSFER_ERRORS as err:  # HTTP 403/404, refused connection, bad hash...
            got = downloader.last_digest if downloader else None
            if isinstance(err, ValueError) and got and expected and got != expected:
                # pooch's hash check failed: the mirror served other (or cut-short) bytes
                mismatches.append((url, got))
                failures.append(f"{url}: {algorithm} mismatch, got {got}")
            else:
                failures.append(f"{url}: {type(err).__name__}: {err}")
    if mismatches:
        raise ChecksumError(_bad_download_message(entry, path, mismatches, failures))
    raise DownloadError(_no_mirror_message(entry, path, failures))


class _HashingDownloader:
    """pooch's own downloader for the URL, also recording the digest (by ``algorithm``) of what it
    received.

    pooch deletes a download whose hash is wrong, so this is how the error can report the
    actual hash next to the expected one.
    """

    def __init__(self, url: str, progress: bool, algorithm: str = "sha256"):
        from pooch.downloaders import choose_downloader

        self.inner = choose_downloader(url, progressbar=progress)
        self.algorithm = algorithm
        self.last_digest: str | None = None

    def __call__(self, url, output_file, pooch_obj, check_only=False):
        result = self.inner(url, output_file, pooch_obj, check_only=check_only)
        if not check_only and isinstance(output_file, (str, Path)):
            self.last_digest = digest_of(output_file, self.algorithm)
        return result


def _hand_placement(entry: RemoteFile, path: Path) -> str:
    size = f" ({entry.size:,} bytes)" if entry.size else ""
    return (f"To place it by hand, download {entry.filename}{size} from any of those URLs on a "
            f"machine with internet access and copy it to {Path(path).resolve()} "   # right from any folder
            + (f"(its {entry.pinned[0]} must be {entry.pinned[1]})." if entry.pinned else
               "(no sha256 is published for it; its hash is recorded on first use)."))


def _bad_local_message(entry: RemoteFile, path: Path, actual: str) -> str:
    algorithm, expected = entry.pinned
    return (f"{path}: {algorithm} checksum mismatch for {entry.key}: expected {expected}, "
            f"found {actual}. The file is corrupt, truncated or a different file (an offline "
            f"stand-in, perhaps). Fix: delete {path} and rerun to download it again, or replace it "
            f"with a good copy from {entry.urls[0]}.")


def _bad_download_message(entry, path, mismatches, failures) -> str:
    algorithm, expected = entry.pinned
    got = "; ".join(f"{url} gave {algorithm} {sha}" for url, sha in mismatches)
    return (f"{entry.filename}: {algorithm} checksum mismatch on download: expected {expected}; "
            f"{got}. Nothing was written to {path}. Fix: rerun (the transfer may have been cut "
            f"short); if it persists the mirror serves a different file, so check the mirror or "
            f"the registered hash in drnet_lib/data/registry.py.\nAll attempts:\n  "
            + "\n  ".join(failures) + "\n" + _hand_placement(entry, path))


def _no_mirror_message(entry, path, failures) -> str:
    return (f"could not download {entry.filename}: every mirror failed.\nURLs tried, in order:\n  "
            + "\n  ".join(failures) + "\n" + _hand_placement(entry, path) + _others_missing(entry, path))


def _others_missing(entry: RemoteFile, path: Path) -> str:
    """The dataset's other registered files that are not on disk either: someone placing files by
    hand learns of them all at once, not one failed run at a time."""
    root = path.parents[len(Path(entry.subdir).parts)]          # path is local_path(entry.key, root)
    others = [(e, local_path(e.key, root)) for e in REGISTRY.values() if e.dataset == entry.dataset and e is not entry]
    missing = [(e, where) for e, where in others if not where.exists()]
    if not missing:
        return ""
    return (f"\nThe {entry.dataset} data also needs these files, not here yet either (fetched after this one, "
            f"from the same mirrors):\n  " + "\n  ".join(
                e.filename + (f" ({e.size:,} bytes)" if e.size else "") + f" -> {where.resolve()}" for e, where in missing))


# --- MNIST (reference/datasets.md §1.1): sha256 of the .gz files as published by tfds ------------

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",  # the original; often answers HTTP 403 now, so last
)
MNIST_SUBDIR = "MNIST/raw"  # torchvision's layout, so its MNIST(root, download=False) reads ours

for _name, _sha, _size in [
    ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9_912_422),
    ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28_881),
    ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1_648_877),
    ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4_542),
]:
    register("mnist", _name, _sha, MNIST_MIRRORS, MNIST_SUBDIR, _size)
del _name, _sha, _size
