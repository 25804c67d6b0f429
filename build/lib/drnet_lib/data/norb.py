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
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import atomic_write
from . import registry
from .registry import DatasetFormatError

__all__ = [
    "CATEGORIES", "NorbSplit", "SPLITS", "TEST_INSTANCES", "TRAIN_INSTANCES", "file_name",
    "load_norb", "norb_dir", "read_matrix", "read_split", "write_matrix",
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

def read_matrix(path: str | Path) -> np.ndarray:
    """Read any smallNORB file (``.mat`` or ``.mat.gz``) into an array with the header's shape/type.

    Raises :class:`DatasetFormatError` naming the file for an unknown magic number, a header or
    data shorter than promised, or bytes after the data: nothing half-read is ever returned.
    """
    path = Path(path)
    data = registry.read_maybe_gzipped(path)
    refetch = "delete it and fetch it again (drnet data prepare norb --source real)"
    if len(data) < 8:
        raise DatasetFormatError(f"{path}: truncated smallNORB file: {len(data)} bytes, shorter "
                                 f"than the 8-byte magic number and rank; {refetch}")
    magic, ndim = (int(v) for v in np.frombuffer(data, "<i4", count=2))
    if magic not in MAGIC_DTYPES:
        known = ", ".join(f"0x{m:08X} ({dt.name})" for m, dt in MAGIC_DTYPES.items())
        raise DatasetFormatError(f"{path}: not a smallNORB binary matrix: magic number "
                                 f"0x{magic & 0xFFFFFFFF:08X}, expected one of {known}; {refetch}")
    if not 0 < ndim <= 64:
        raise DatasetFormatError(f"{path}: implausible rank {ndim} in the header; {refetch}")
    header = 8 + 4 * max(3, ndim)
    if len(data) < header:
        raise DatasetFormatError(f"{path}: truncated smallNORB file: the header needs {header} "
                                 f"bytes, found {len(data)}; {refetch}")
    shape = tuple(int(d) for d in np.frombuffer(data, "<i4", count=ndim, offset=8))
    if any(d < 0 for d in shape):
        raise DatasetFormatError(f"{path}: negative dimension in header shape {shape}; {refetch}")
    return registry.array_after_header(path, data, header, shape, MAGIC_DTYPES[magic], "smallNORB",
                                       f"; {refetch}")


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
    paths = {kind: Path(folder) / file_name(split, kind) for kind in KINDS}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"smallNORB files missing: {', '.join(missing)}. Fetch them with "
                                f"`drnet data prepare norb --source real` or render the stand-in "
                                f"with `--source embedded`")
    dat, cat, info = (read_matrix(paths[k]) for k in KINDS)
    n = len(cat)
    if dat.ndim != 4 or dat.shape[:2] != (n, 2) or dat.dtype != np.uint8:
        raise DatasetFormatError(f"{paths['dat']}: expected uint8 images (N={n}, 2, H, W) to match "
                                 f"{paths['cat'].name}, found {dat.dtype} {dat.shape}")
    if cat.ndim != 1:
        raise DatasetFormatError(f"{paths['cat']}: expected one category per pair, shape {cat.shape}")
    if info.shape != (n, 4):
        raise DatasetFormatError(f"{paths['info']}: expected shape ({n}, 4) to match "
                                 f"{paths['cat'].name}, found {info.shape}")
    inst, elev, az2, light = (info[:, j].astype(np.int64) for j in range(4))
    bad = {"category": (cat, len(CATEGORIES)), "instance": (inst, 10), "elevation": (elev, 9),
           "azimuth/2": (az2 // 2, 18), "lighting": (light, LIGHTINGS)}
    for name, (values, limit) in bad.items():
        if values.min(initial=0) < 0 or values.max(initial=0) >= limit:
            raise DatasetFormatError(f"{paths['info']}: {name} outside 0..{limit - 1}")
    if np.any(az2 % 2):
        raise DatasetFormatError(f"{paths['info']}: azimuths must be stored as even numbers 0..34")
    cat = cat.astype(np.int64)
    # Do not trust the record order of the files: sort by the factors (as disent does).
    order = np.lexsort((light, az2, elev, inst, cat))
    return NorbSplit(dat[order], cat[order], inst[order], elev[order], az2[order] // 2, light[order])


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
    or render the stand-in of ``size`` (``"ci"`` or ``"cpu"``) if it is not there yet."""
    if source == "real":
        with registry.preparing(root, "norb"):
            for split in SPLITS:
                for kind in KINDS:
                    registry.fetch(f"norb/{file_name(split, kind)}", root, progress=progress)
        return norb_dir(root)
    if source == "embedded":
        from .norb_standin import write_standin

        with registry.preparing(root, f"norb-standin-{size}"):
            write_standin(standin_root(root, size), size=size, progress=progress)
        return norb_dir(standin_root(root, size))
    raise ValueError(f"unknown source {source!r}; choose 'embedded' or 'real'")


def load_norb(source: str, split: str, root: str | Path = "data", size: str = "cpu",
              progress: bool = True) -> NorbSplit:
    """One split (``"train"``/``"training"`` or ``"test"``/``"testing"``) of ``source``."""
    split = {"train": "training", "test": "testing"}.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    folder = prepare(source, root, size, progress)
    return read_split(folder, split)
