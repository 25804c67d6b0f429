"""smallNORB: its binary-matrix file format, its six downloads, and one loader for both sources.

smallNORB (LeCun, Huang & Bottou 2004) photographs 50 toys, 5 categories x 10 instances, from
9 elevations x 18 azimuths under 6 lightings, as 96x96 grey stereo pairs. Train and test hold
different instances (train 4, 6, 7, 8, 9; test 0, 1, 2, 3, 5), 24,300 pairs each.

Each split is three files (reference/datasets.md §2.2), all little-endian:

    dat   uint8  (N, 2, 96, 96)   stereo pair, left camera first
    cat   int32  (N,)             category 0..4 (animal, human, airplane, truck, car)
    info  int32  (N, 4)           instance 0..9, elevation 0..8 (30..70 deg), azimuth stored as
                                  0, 2, ..., 34 (x10 = degrees), lighting 0..5

The header is ``int32 magic, int32 ndim, max(3, ndim) x int32 dims``; the magic number gives the
element type. :func:`read_matrix` takes shape and type from the header only (never from the file
name, because our small stand-ins keep the real names).

Two sources, both read by :func:`read_matrix`:

- ``"real"``: the six ``.mat.gz`` files, downloaded through pooch with their published sha256
  into ``<root>/smallnorb/``;
- ``"embedded"``: procedural toys rendered by :mod:`.norb_standin` and *written in the same
  format*, into ``<root>/standin/<size>/smallnorb/``, so the real reader is what gets exercised.

:func:`prepare` checks all six files of either source (:func:`check_split`) before it returns,
so a damaged one fails there, by name, rather than later in training; the check reads the small
label files whole but only the header and the size of the large image files, so it takes
milliseconds. A bad file's message says how to get it back: fetch it again (real) or write it
again with ``drnet data prepare norb --size <size>`` (stand-in).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import atomic_write
from ..config import check_data_source
from . import registry
from .advice import standin_fix
from .registry import DatasetFormatError

__all__ = [
    "CATEGORIES", "NorbSplit", "SPLITS", "TEST_INSTANCES", "TRAIN_INSTANCES", "check_split",
    "file_name", "load_norb", "matrix_header", "norb_dir", "read_matrix", "read_split",
    "write_matrix",
]

SPLITS = ("training", "testing")
KINDS = ("dat", "cat", "info")
CATEGORIES = ("animal", "human", "airplane", "truck", "car")
TRAIN_INSTANCES = (4, 6, 7, 8, 9)
TEST_INSTANCES = (0, 1, 2, 3, 5)
ELEVATIONS_DEG = tuple(range(30, 71, 5))   # info[:, 1] indexes these
AZIMUTHS_DEG = tuple(range(0, 341, 20))    # info[:, 2] // 2 indexes these
LIGHTINGS = 6

# Magic number -> element type (little-endian). 0x1E3D4C52, a "packed matrix", is never used.
MAGIC_DTYPES = {
    0x1E3D4C55: np.dtype("<u1"),
    0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C56: np.dtype("<i2"),
    0x1E3D4C51: np.dtype("<f4"),
    0x1E3D4C53: np.dtype("<f8"),
}
_DTYPE_MAGICS = {dt.newbyteorder("="): magic for magic, dt in MAGIC_DTYPES.items()}


def file_name(split: str, kind: str) -> str:
    """The published name of one file, e.g. ``smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz``."""
    if split not in SPLITS or kind not in KINDS:
        raise ValueError(f"no smallNORB file for split {split!r}, kind {kind!r}; "
                         f"splits are {SPLITS}, kinds {KINDS}")
    instances = "46789" if split == "training" else "01235"
    return f"smallnorb-5x{instances}x9x18x6x2x96x96-{split}-{kind}.mat.gz"


def norb_dir(root: str | Path) -> Path:
    """The folder holding the six files under a data root."""
    return Path(root) / "smallnorb"


# --- the binary matrix format ---------------------------------------------------------------------

MAX_RANK = 64
_HEADER_MAX = 8 + 4 * MAX_RANK
_REFETCH = "delete it and fetch it again (drnet data prepare norb --source real)"


def _fix(path: Path) -> str:
    """How to get a bad file back: a stand-in's is written again by prepare (it has no mirror),
    a real one is fetched again."""
    return standin_fix(path, "norb") or _REFETCH


def read_matrix(path: str | Path) -> np.ndarray:
    """Read any smallNORB file (``.mat`` or ``.mat.gz``) into an array with the header's shape/type.

    Raises :class:`DatasetFormatError` naming the file for an unknown magic number, a header or
    data shorter than promised, or bytes after the data: nothing half-read is ever returned.
    """
    path = Path(path)
    fix = _fix(path)
    data = registry.read_maybe_gzipped(path, fix)
    dtype, shape, header = _parse_header(path, data, fix)
    return registry.array_after_header(path, data, header, shape, dtype, "smallNORB", f"; {fix}")


def _parse_header(path: Path, data: bytes, fix: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(element type, shape, header length)`` from the (first bytes of the) file's contents."""
    if len(data) < 8:
        raise DatasetFormatError(f"{path}: truncated smallNORB file: {len(data)} bytes, shorter "
                                 f"than the 8-byte magic number and rank; {fix}")
    magic, ndim = (int(v) for v in np.frombuffer(data, "<i4", count=2))
    if magic not in MAGIC_DTYPES:
        known = ", ".join(f"0x{m:08X} ({dt.name})" for m, dt in MAGIC_DTYPES.items())
        raise DatasetFormatError(f"{path}: not a smallNORB binary matrix: magic number "
                                 f"0x{magic & 0xFFFFFFFF:08X}, expected one of {known}; {fix}")
    if not 0 < ndim <= MAX_RANK:
        raise DatasetFormatError(f"{path}: implausible rank {ndim} in the header; {fix}")
    header = 8 + 4 * max(3, ndim)
    if len(data) < header:
        raise DatasetFormatError(f"{path}: truncated smallNORB file: the header needs {header} "
                                 f"bytes, found {len(data)}; {fix}")
    shape = tuple(int(d) for d in np.frombuffer(data, "<i4", count=ndim, offset=8))
    if any(d < 0 for d in shape):
        raise DatasetFormatError(f"{path}: negative dimension in header shape {shape}; {fix}")
    return MAGIC_DTYPES[magic], shape, header


def matrix_header(path: str | Path) -> tuple[np.dtype, tuple[int, ...]]:
    """The element type and shape of a smallNORB file, checked against the file's size without
    reading its data, so that :func:`prepare` can check the 130 MB image files in milliseconds.

    The size of a gzipped file's contents is the gzip trailer's (its last 4 bytes, mod 2**32): a
    cut-short file ends in other bytes, so it is caught, though corruption inside the stream is
    not (:func:`read_matrix` checks the stream's CRC when the data is read). Raises
    :class:`DatasetFormatError` naming the file, as :func:`read_matrix` does.
    """
    path = Path(path)
    fix = _fix(path)
    with open(path, "rb") as f:
        head = f.read(_HEADER_MAX)
    if not head.startswith(registry.GZIP_MAGIC):
        dtype, shape, header = _parse_header(path, head, fix)
        registry.check_data_size(path, path.stat().st_size - header, shape, dtype, "smallNORB", f"; {fix}")
        return dtype, shape
    head, contents = _gzip_head_and_size(path, fix)
    dtype, shape, header = _parse_header(path, head, fix)
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected % 2**32 != contents:
        raise DatasetFormatError(
            f"{path}: truncated or damaged smallNORB file: the header's shape {shape} of "
            f"{dtype.name} needs {expected} bytes uncompressed, the gzip trailer records "
            f"{contents} (mod 2**32); {fix}")
    return dtype, shape


def _gzip_head_and_size(path: Path, fix: str) -> tuple[bytes, int]:
    """The first (up to) :data:`_HEADER_MAX` bytes of a gzip file's contents, and the contents'
    size as its trailer records it (mod 2**32)."""
    stored = path.stat().st_size
    if stored < 18:                  # a 10-byte gzip header and an 8-byte trailer at least
        raise DatasetFormatError(f"{path}: truncated gzip file ({stored} bytes); {fix}")
    with open(path, "rb") as f:
        f.seek(-4, 2)
        contents = int.from_bytes(f.read(4), "little")
    try:
        with gzip.open(path) as f:
            head = f.read(_HEADER_MAX)
    except EOFError as err:
        raise DatasetFormatError(f"{path}: truncated gzip file ({err}); {fix}") from None
    except (OSError, zlib.error) as err:        # gzip.BadGzipFile, a damaged stream
        raise DatasetFormatError(f"{path}: corrupt gzip data ({err}); {fix}") from None
    return head, contents


def write_matrix(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` in the smallNORB format (gzipped when the name ends in ``.gz``), atomically.

    As in the real files, a rank below 3 still stores three dims, padded with 1. The gzip header
    has no time stamp, so the same array always gives the same bytes.
    """
    path, array = Path(path), np.asarray(array)
    magic = _DTYPE_MAGICS.get(array.dtype.newbyteorder("="))
    if magic is None:
        names = [dt.name for dt in MAGIC_DTYPES.values()]
        raise ValueError(f"{path}: the smallNORB format cannot store {array.dtype}; use one of {names}")
    dims = list(array.shape) + [1] * (3 - array.ndim)
    header = np.asarray([magic, array.ndim, *dims], "<i4").tobytes()
    payload = header + array.astype(MAGIC_DTYPES[magic], copy=False).tobytes(order="C")
    if path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    return atomic_write(path, lambda f: f.write(payload))


# --- one split as arrays --------------------------------------------------------------------------

@dataclass
class NorbSplit:
    """One split, sorted by (category, instance, elevation, azimuth, lighting).

    ``images`` is ``(N, 2, H, W)`` uint8 (stereo, left first); the factors are ``(N,)`` int64:
    ``azimuth`` is the index 0..17 (the files store twice that), ``elevation`` 0..8.
    """

    images: np.ndarray
    category: np.ndarray
    instance: np.ndarray
    elevation: np.ndarray
    azimuth: np.ndarray
    lighting: np.ndarray

    def __len__(self) -> int:
        return len(self.category)


def read_split(folder: str | Path, split: str) -> NorbSplit:
    """Read one split's three files from ``folder`` and check that they agree with each other."""
    paths = _split_paths(folder, split)
    dat, cat, info = (read_matrix(paths[k]) for k in KINDS)
    _check_shapes(paths, dat.dtype, dat.shape, cat.shape, info.shape)
    inst, elev, az2, light = _checked_factors(paths, cat, info, split)
    cat = cat.astype(np.int64)
    # Do not trust the record order of the files: sort by the factors (as disent does).
    order = np.lexsort((light, az2, elev, inst, cat))
    return NorbSplit(dat[order], cat[order], inst[order], elev[order], az2[order] // 2, light[order])


def check_split(folder: str | Path, split: str) -> int:
    """Check one split's three files in ``folder`` as :func:`read_split` does, but without
    reading the images (only their header and size, :func:`matrix_header`): fast enough for
    :func:`prepare` to run every time. Returns the number of records; raises
    :class:`DatasetFormatError` or :class:`FileNotFoundError` naming the file and the fix."""
    paths = _split_paths(folder, split)
    dat_dtype, dat_shape = matrix_header(paths["dat"])
    cat, info = read_matrix(paths["cat"]), read_matrix(paths["info"])
    _check_shapes(paths, dat_dtype, dat_shape, cat.shape, info.shape)
    _checked_factors(paths, cat, info, split)
    return len(cat)


def _split_paths(folder: str | Path, split: str) -> dict[str, Path]:
    paths = {kind: Path(folder) / file_name(split, kind) for kind in KINDS}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"smallNORB files missing: {', '.join(missing)}. Fetch them with "
                                f"`drnet data prepare norb --source real` or render the stand-in "
                                f"with `--source embedded`")
    return paths


def _check_shapes(paths: dict[str, Path], dat_dtype, dat_shape, cat_shape, info_shape) -> None:
    """The three files hold the same records: N stereo pairs, N categories, N x 4 factors."""
    n = cat_shape[0] if cat_shape else 0
    if len(dat_shape) != 4 or tuple(dat_shape[:2]) != (n, 2) or dat_dtype != np.uint8:
        raise DatasetFormatError(f"{paths['dat']}: expected uint8 images (N={n}, 2, H, W) to match "
                                 f"{paths['cat'].name}, found {np.dtype(dat_dtype).name} "
                                 f"{tuple(dat_shape)}; {_fix(paths['dat'])}")
    if len(cat_shape) != 1:
        raise DatasetFormatError(f"{paths['cat']}: expected one category per pair, shape "
                                 f"{tuple(cat_shape)}; {_fix(paths['cat'])}")
    if tuple(info_shape) != (n, 4):
        raise DatasetFormatError(f"{paths['info']}: expected shape ({n}, 4) to match "
                                 f"{paths['cat'].name}, found {tuple(info_shape)}; "
                                 f"{_fix(paths['info'])}")


def _checked_factors(paths: dict[str, Path], cat: np.ndarray, info: np.ndarray, split: str):
    """The info file's columns (instance, elevation, azimuth x 2, lighting) as int64, once every
    factor, the category included, is in its range and every instance is one of ``split``'s; a
    value outside names the file it is in."""
    inst, elev, az2, light = (info[:, j].astype(np.int64) for j in range(4))
    bad = {"category": (cat, len(CATEGORIES), "cat"), "instance": (inst, 10, "info"),
           "elevation": (elev, 9, "info"), "azimuth/2": (az2 // 2, 18, "info"),
           "lighting": (light, LIGHTINGS, "info")}
    for name, (values, limit, kind) in bad.items():
        if values.min(initial=0) < 0 or values.max(initial=0) >= limit:
            raise DatasetFormatError(f"{paths[kind]}: {name} outside 0..{limit - 1}; "
                                     f"{_fix(paths[kind])}")
    if np.any(az2 % 2):
        raise DatasetFormatError(f"{paths['info']}: azimuths must be stored as even numbers "
                                 f"0..34; {_fix(paths['info'])}")
    # the splits hold disjoint toys: another split's instance means a file copied into the wrong
    # place, and a model trained on the test toys would be scored on what it has seen
    own = TRAIN_INSTANCES if split == "training" else TEST_INSTANCES
    foreign = sorted(set(np.unique(inst).tolist()) - set(own))
    if foreign:
        raise DatasetFormatError(f"{paths['info']}: instances {foreign} are not {split} toys (the "
                                 f"{split} split holds instances {list(own)}): is it the other split's "
                                 f"file? {_fix(paths['info'])}")
    return inst, elev, az2, light


# --- downloads and the loader ---------------------------------------------------------------------

NORB_MIRRORS = ("https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/",)

# sha256 and sizes of the .mat.gz files as published by tfds (reference/datasets.md §2.1)
for _split, _kind, _sha, _size in [
    ("training", "dat", "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873", 131_896_188),
    ("training", "cat", "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa", 348),
    ("training", "info", "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32", 71_052),
    ("testing", "dat", "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474", 130_799_817),
    ("testing", "cat", "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff", 347),
    ("testing", "info", "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2", 10_428),
]:
    registry.register("norb", file_name(_split, _kind), _sha, NORB_MIRRORS, "smallnorb", _size)
del _split, _kind, _sha, _size


def standin_root(root: str | Path, size: str) -> Path:
    """Where the embedded stand-in of ``size`` lives: its own root, so it never mixes with the real files."""
    return Path(root) / "standin" / size


def prepare(source: str, root: str | Path = "data", size: str = "cpu", progress: bool = True) -> Path:
    """Make the six files available and return their folder: download and check the real ones,
    or render the stand-in of ``size`` (``"ci"`` or ``"cpu"``) if it is not there yet. Either way
    both splits are then checked (:func:`check_split`), so a damaged file fails here, by name."""
    check_data_source("norb", source)
    if source == "real":
        with registry.preparing(root, "norb"):
            for split in SPLITS:
                for kind in KINDS:
                    registry.fetch(f"norb/{file_name(split, kind)}", root, progress=progress)
        folder = norb_dir(root)
    elif source == "embedded":
        from .norb_standin import write_standin

        with registry.preparing(root, f"norb-standin-{size}"):
            write_standin(standin_root(root, size), size=size, progress=progress)
        folder = norb_dir(standin_root(root, size))
    for split in SPLITS:
        check_split(folder, split)
    return folder


def load_norb(source: str, split: str, root: str | Path = "data", size: str = "cpu",
              progress: bool = True) -> NorbSplit:
    """One split (``"train"``/``"training"`` or ``"test"``/``"testing"``) of ``source``."""
    split = {"train": "training", "test": "testing"}.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    folder = prepare(source, root, size, progress)
    return read_split(folder, split)
