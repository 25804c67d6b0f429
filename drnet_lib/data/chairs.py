"""Rotating chairs (DrNet's SUNCG chairs): the authors' PNG tree, its loader, and real substitutes.

DrNet-py trains on chair renders laid out as (reference/datasets.md §4.1, drnet.md §4.3)

    <root>/suncg/single_object/chair/<object>/elevation_<e>/p200-64_<i>.png

64x64 RGB, ``i = 1..36`` azimuth steps of a full turn, five elevation folders
``elevation_{1.25,-1.00,0.50,2.00,-0.25}``. SUNCG was withdrawn in 2019 and the authors' tarball
(``http://www.cs.nyu.edu/~denton/datasets/suncg_chairs.tar.gz``) has no known mirror or checksum,
so three sources fill the same tree and one loader reads them all:

- ``"authors"``: the authors' tree, extracted by hand under the data root (nothing to download);
- ``"real"``: Aubry et al.'s "Seeing 3D chairs" renders (1393 chairs x 2 elevations x 31
  azimuths; :func:`.chairs_aubry.convert_aubry`) converted into the tree, with 31 frames per turn instead of 36;
- ``"embedded"``: procedural chairs rendered by :mod:`.chairs_standin`.

:func:`load_chairs_tree` decodes the tree into one uint8 array and caches it (:func:`cache_path`);
:func:`split_objects` makes the 85/15 object split.

Differences from DrNet-py's ``data/suncg.py``, on purpose: objects are **sorted** by name (the
authors use ``os.listdir``, whose order depends on the filesystem), and the test split is
``objects[int(0.85 N):]`` (the authors' ``dirs[int(0.85 N) + 1:]`` skips one object).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import atomic_write
from ..config import check_data_source
from . import registry
from .advice import prepare_command, standin_fix
from .registry import DatasetFormatError

__all__ = [
    "AUBRY_KEY", "AUTHORS_ELEVATIONS", "ChairsTree", "cache_path", "chairs_dir", "frame_name",
    "load_chairs", "load_chairs_tree", "prepare_chairs", "split_objects", "standin_root",
]

# DrNet-py's elevation folder names, in the order its code lists them
AUTHORS_ELEVATIONS = ("1.25", "-1.00", "0.50", "2.00", "-0.25")
FRAME_RE = re.compile(r"p200-64_(\d+)\.png")
ELEVATION_PREFIX = "elevation_"
CACHE_VERSION = 1


def chairs_dir(root: str | Path) -> Path:
    """The folder holding one sub-folder per object, under a tree root."""
    return Path(root) / "suncg" / "single_object" / "chair"


def frame_name(i: int) -> str:
    """The file name of azimuth frame ``i`` (1-based, as in the authors' tree)."""
    return f"p200-64_{i}.png"


def cache_path(root: str | Path) -> Path:
    """Where the decoded tree is cached: ``chair_decoded.npz`` beside the ``chair`` folder."""
    folder = chairs_dir(root)
    return folder.with_name(folder.name + "_decoded.npz")


@dataclass
class ChairsTree:
    """A decoded chairs tree.

    ``images`` is ``(objects, elevations, azimuths, H, W, 3)`` uint8, azimuth ``a`` being the file
    ``p200-64_<a + 1>.png``; ``object_ids`` are the object folder names, sorted;
    ``elevation_names`` the folder suffixes (``"-1.00"``, ``"020"``...) sorted by their value,
    ``elevations`` those values as floats.
    """

    images: np.ndarray
    object_ids: tuple[str, ...]
    elevation_names: tuple[str, ...]
    root: Path

    @property
    def elevations(self) -> tuple[float, ...]:
        return tuple(float(e) for e in self.elevation_names)

    @property
    def num_azimuths(self) -> int:
        return self.images.shape[2]

    def __len__(self) -> int:
        return len(self.object_ids)

    def select(self, ids) -> ChairsTree:
        """The sub-tree of the objects ``ids`` (in the order given)."""
        index = {o: k for k, o in enumerate(self.object_ids)}
        missing = [o for o in ids if o not in index]
        if missing:
            raise KeyError(f"objects not in the tree at {self.root}: {missing[:5]}")
        return ChairsTree(self.images[[index[o] for o in ids]], tuple(ids), self.elevation_names,
                          self.root)


def split_objects(ids, train_fraction: float = 0.85) -> tuple[list[str], list[str]]:
    """Deterministic object split: the first ``int(train_fraction * N)`` of the **sorted** ids
    train, the rest test (at least one object each when there are two or more).

    DrNet-py splits ``os.listdir`` order (filesystem-dependent) and its test split starts one
    object late, so one object is in neither split; neither is done here.
    """
    ids = sorted(ids)
    if len(set(ids)) != len(ids):
        repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
        raise ValueError(f"object ids must be unique; repeated: {', '.join(map(str, repeated))}")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction}")
    n = len(ids)
    n_train = int(train_fraction * n)
    if n >= 2:
        n_train = min(max(n_train, 1), n - 1)
    return ids[:n_train], ids[n_train:]


# --- reading the tree ----------------------------------------------------------------------------

def _redo_hint(folder: Path) -> str:
    """How to get a good copy of the chairs tree at ``folder`` back, by where the tree came from:
    the stand-in is rendered again, Aubry et al.'s chairs are converted again from their tar
    (only what is missing), the authors' tree is extracted again by hand."""
    folder = Path(folder)
    rendered = standin_fix(folder, "suncg")
    if rendered is not None:
        return f"Fix: {rendered}"
    aubry = next((p for p in (folder, *folder.parents) if p.name == AUBRY_SUBDIR), None)
    if aubry is not None:
        command = prepare_command("suncg", aubry.parent, "--source real")
        return (f"Fix: delete the damaged object's folder under {folder} and run `{command}`, which "
                f"converts only what is missing")
    return (f"Fix: extract the authors' chairs tarball again so that {folder} holds a good copy, or "
            f"train on another source (--data-source real: Aubry et al.'s chairs; embedded: the stand-in)")


def _scan(folder: Path):
    """Check the tree's structure; return (objects, elevation names, number of frames, files)."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no chairs tree at {folder}: expected <object>/elevation_<e>/p200-64_<i>.png under it. "
            f"Render the stand-in (drnet_lib.data.chairs.prepare_chairs('embedded', ...)), convert "
            f"Aubry et al.'s chairs ('real'), or extract the authors' suncg_chairs.tar.gz there")
    objects = sorted(d.name for d in os.scandir(folder)
                     if d.is_dir() and not d.name.startswith((".", "_")))
    if not objects:
        raise FileNotFoundError(f"{folder} holds no object folders; " + _redo_hint(folder))
    ref_elevs = None
    found: dict[tuple[str, str], dict[int, os.DirEntry]] = {}
    for obj in objects:
        elevs = {}
        for d in os.scandir(folder / obj):
            if d.is_dir() and d.name.startswith(ELEVATION_PREFIX):
                name = d.name[len(ELEVATION_PREFIX):]
                try:
                    float(name)
                except ValueError:
                    raise DatasetFormatError(f"{d.path}: the elevation folder's suffix {name!r} is "
                                             f"not a number; " + _redo_hint(folder)) from None
                elevs[name] = d
        if ref_elevs is None:
            if not elevs:
                raise DatasetFormatError(f"{folder / obj} has no elevation_<e> folders; "
                                         + _redo_hint(folder))
            ref_elevs = sorted(elevs, key=float)
        elif set(elevs) != set(ref_elevs):
            gone = sorted(set(ref_elevs) - set(elevs))
            extra = sorted(set(elevs) - set(ref_elevs))
            raise DatasetFormatError(
                f"{folder / obj}: its elevation folders differ from those of {objects[0]} "
                f"(missing: {[ELEVATION_PREFIX + e for e in gone]}, extra: "
                f"{[ELEVATION_PREFIX + e for e in extra]}); every object needs the same set. "
                + _redo_hint(folder))
        for e in ref_elevs:
            frames = {}
            for f in os.scandir(elevs[e].path):
                m = FRAME_RE.fullmatch(f.name)
                if m and f.is_file():
                    frames[int(m.group(1))] = f
            found[obj, e] = frames
    num = max((max(fr, default=0) for fr in found.values()), default=0)
    if num == 0:
        raise DatasetFormatError(f"{folder}: no p200-64_<i>.png frames found; " + _redo_hint(folder))
    files = []
    for (obj, e), frames in found.items():
        missing = [i for i in range(1, num + 1) if i not in frames]
        if missing or 0 in frames:
            sub = folder / obj / (ELEVATION_PREFIX + e)
            what = (f"missing frame {sub / frame_name(missing[0])}" if missing
                    else f"unexpected frame {sub / frame_name(0)} (frames count from 1)")
            raise DatasetFormatError(
                f"{what} ({len(missing)} of {num} missing in that folder; other folders have "
                f"frames 1..{num}). " + _redo_hint(folder))
        files.extend(frames[i] for i in range(1, num + 1))
    return objects, tuple(ref_elevs), num, files


def _cache_key(folder: Path, files, image_size) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION} size={image_size}\n".encode())
    for f in files:
        st = f.stat()
        digest.update(f"{os.path.relpath(f.path, folder)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_png(path: str, image_size: int | None, folder: Path) -> np.ndarray:
    """One frame as (H, W, 3) uint8; a bad file raises :class:`DatasetFormatError` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()   # read once: verify() spoils the image, so it is opened twice
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise DatasetFormatError(f"{path}: not a PNG file (it is {im.format}); "
                                         + _redo_hint(folder))
            # load() alone does not check the chunks' CRCs: damaged image data would decode to
            # wrong pixels without an error. verify() checks them, and leaves the file unusable
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            # RGBA/LA drop their alpha (as slicing [..., :3] would); grey and palettes become RGB
            arr = np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise DatasetFormatError(f"{path}: not a PNG file (not an image Pillow can identify); "
                                 + _redo_hint(folder)) from None
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, DatasetFormatError):
            raise
        raise DatasetFormatError(f"{path}: corrupt or truncated PNG ({err}); "
                                 + _redo_hint(folder)) from None
    if image_size is not None and arr.shape[:2] != (image_size, image_size):
        raise DatasetFormatError(f"{path}: the image is {arr.shape[1]}x{arr.shape[0]} pixels, "
                                 f"expected {image_size}x{image_size}; " + _redo_hint(folder))
    return arr


def _load_cache(path: Path, key: str):
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return z["images"], tuple(z["object_ids"].tolist()), tuple(z["elevation_names"].tolist())
    except FileNotFoundError:
        return None
    except Exception as err:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
        warnings.warn(f"ignoring the unreadable chairs cache {path} ({type(err).__name__}: {err}); "
                      f"decoding the PNGs again", stacklevel=3)
        return None


def _save_cache(path: Path, key: str, tree: ChairsTree) -> None:
    def write(f):
        np.savez_compressed(f, key=np.array(key), images=tree.images,
                            object_ids=np.array(tree.object_ids),
                            elevation_names=np.array(tree.elevation_names))
    try:
        atomic_write(path, write)
    except OSError as err:  # a read-only tree still loads, only slower next time
        warnings.warn(f"could not write the chairs cache {path} ({err}); the PNGs will be decoded "
                      f"again next time", stacklevel=3)


def load_chairs_tree(root: str | Path, image_size: int | None = 64, cache: bool = True,
                     progress: bool = False) -> ChairsTree:
    """Read the tree ``<root>/suncg/single_object/chair`` into a :class:`ChairsTree`.

    Objects are the sub-folders (sorted; names starting with ``.`` or ``_`` are skipped); each
    must hold the same ``elevation_<e>`` folders, and each of those the frames
    ``p200-64_1.png .. p200-64_<N>.png`` with the same ``N`` (36 for the authors' tree, 31 for
    Aubry's). Every frame must be a PNG of ``image_size`` square pixels (``None``: whatever the
    first frame has). A missing, truncated, foreign or wrongly sized frame raises
    :class:`.registry.DatasetFormatError` naming the file and the fix.

    With ``cache``, the decoded array is kept in :func:`cache_path` (a compressed ``.npz``, written
    atomically) under a key made of every frame's path, size and modification time, and reused
    while that key holds; any change to the files decodes them again.
    """
    folder = chairs_dir(root)
    objects, elevs, num, files = _scan(folder)
    key = _cache_key(folder, files, image_size)
    cpath = cache_path(root)
    if cache:
        hit = _load_cache(cpath, key)
        if hit is not None:
            return ChairsTree(hit[0], hit[1], hit[2], Path(root))
    first = _read_png(files[0].path, image_size, folder)
    size = first.shape[0]
    if image_size is None and first.shape[0] != first.shape[1]:
        raise DatasetFormatError(f"{files[0].path}: frames must be square, found {first.shape[:2]}")
    images = np.empty((len(objects), len(elevs), num, size, size, 3), np.uint8)
    flat = images.reshape(-1, size, size, 3)
    flat[0] = first
    for k, f in enumerate(tqdm(files[1:], desc="decoding chair frames", unit="png",
                               disable=not progress, mininterval=1.0), start=1):
        flat[k] = _read_png(f.path, size, folder)
    tree = ChairsTree(images, tuple(objects), elevs, Path(root))
    if cache:
        _save_cache(cpath, key, tree)
    return tree


# --- Aubry et al.'s rendered chairs, the real substitute (reference/datasets.md §4.3) -------------

AUBRY_MIRRORS = ("https://www.di.ens.fr/willow/research/seeing3Dchairs/data/",)
AUBRY_SUBDIR = "aubry_chairs"


def _check_aubry_tar(path: Path) -> int:
    from .chairs_aubry import check_archive   # here: chairs_aubry imports this module

    return check_archive(path)


# No sha256 or size of rendered_chairs.tar is published anywhere we know of: registered without a
# hash, so the first fetch records one (registry module docstring) and later fetches check it.
# The first copy's member list is read before that, so a garbage download is never recorded.
AUBRY_KEY = registry.register("chairs", "rendered_chairs.tar", None, AUBRY_MIRRORS, AUBRY_SUBDIR,
                              check=_check_aubry_tar).key

# --- the three sources ----------------------------------------------------------------------------

def standin_root(root: str | Path, size: str) -> Path:
    """Where the stand-in of ``size`` lives: its own root, so it never mixes with real data."""
    return Path(root) / "standin" / size


def prepare_chairs(source: str, root: str | Path = "data", size: str = "cpu",
                   progress: bool = True) -> Path:
    """Make a chairs tree available and return its root (what :func:`load_chairs_tree` takes).

    ``"embedded"`` renders the stand-in of ``size`` (``"ci"`` or ``"cpu"``) under
    :func:`standin_root`; ``"real"`` fetches Aubry et al.'s tar into ``<root>/aubry_chairs`` and
    converts it there (64 px); ``"authors"`` expects the authors' tree extracted by hand at
    ``<root>/suncg/single_object/chair`` (its URL is dead and no checksum is known).
    """
    check_data_source("suncg", source)
    if source == "embedded":
        from .chairs_standin import write_standin

        with registry.preparing(root, f"chairs-standin-{size}"):
            return write_standin(standin_root(root, size), size=size, progress=progress)
    if source == "real":
        from .chairs_aubry import convert_aubry

        with registry.preparing(root, "chairs-aubry"):
            tar = registry.fetch(AUBRY_KEY, root, progress=progress)
            return convert_aubry(tar, Path(root) / AUBRY_SUBDIR, size=64, progress=progress)
    # source == "authors"
    if not chairs_dir(root).is_dir():
        raise FileNotFoundError(
            f"the authors' chairs tree is not at {chairs_dir(root)}. Its only known source, "
            f"http://www.cs.nyu.edu/~denton/datasets/suncg_chairs.tar.gz, is offline; if you "
            f"have a copy, extract it so that {chairs_dir(root)}/<object>/elevation_1.25/"
            f"p200-64_1.png exists. Otherwise use source 'real' (Aubry et al.'s chairs) or "
            f"'embedded' (the stand-in)")
    return Path(root)


def load_chairs(source: str, root: str | Path = "data", size: str = "cpu",
                progress: bool = True) -> ChairsTree:
    """The whole tree of ``source`` (see :func:`prepare_chairs`), decoded (and cached)."""
    return load_chairs_tree(prepare_chairs(source, root, size, progress), progress=progress)
