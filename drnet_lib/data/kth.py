"""KTH human actions: downloads, ``00sequences.txt``, conversion to a frame cache, splits, clips.

KTH (Schuldt, Laptev & Caputo 2004) films 25 persons doing 6 actions (walking, jogging, running,
boxing, handwaving, handclapping) in 4 scenarios (d1 outdoors, d2 outdoors with zoom, d3
outdoors in other clothes, d4 indoors): 599 AVIs ``personXX_<action>_dY_uncomp.avi`` (160x120,
25 fps, grey), ``person13_handclapping_d3`` is missing. ``00sequences.txt`` cuts each video into
(usually 4) repetitions of the action, 2391 in all (reference/datasets.md §3, drnet.md §4.2).

Pipeline, the same for both sources (``prepare``):

1. **Get** the AVIs into ``<root>/kth/raw/<action>/`` and the annotation into
   ``<root>/kth/00sequences.txt``: ``"real"`` fetches the six zips (checked against the SHA1s that
   vipy publishes) and the text file (no published hash: recorded on first download, see
   :mod:`.registry`), and extracts each zip; ``"embedded"`` writes the procedural stand-in of
   :mod:`.kth_standin` in exactly that layout, under ``<root>/standin/<size>``.
2. **Convert** (:func:`convert`): every video listed in ``00sequences.txt`` is decoded once with
   PyAV (FFmpeg), reduced to its luma (the content is grey), **squashed** from 160x120 to SxS
   (S = 64 or 128) by exact area averaging (:func:`squash`), as the authors' ``ffmpeg -s SxS``
   squashes (no crop; the aspect ratio changes), and cached as ``<root>/kth/processed<S>/<action>/
   <video>.npz`` (uint8 ``(frames, S, S)``, compressed, written atomically). Training never
   decodes video. An interrupted conversion resumes: a video whose cache file exists and was made
   from the same AVI (size and modification time) at the same S is skipped.
3. **Load** (:func:`load_split`): the frames of the annotated ranges of one split's persons, as
   one uint8 tensor plus offsets, in a :class:`KTHClips` clip source with the interface of the
   DrNet trainer (``sample_factors``, ``render``, ``sample_clips``).

**Ranges.** ``00sequences.txt`` ranges are 1-indexed and inclusive. The authors' Lua metadata
(the only record of their split) holds every official range with its end reduced by one, i.e.
each range loses its last frame. We follow them by default (``ranges="drnet"``: frames
``start .. end - 1``, 1-indexed); ``ranges="official"`` keeps the whole range. A range that runs
past the decoded video is cut at the video's end (and dropped if nothing is left); both are
counted (:attr:`KTHClips.stats`).

**Splits.** ``"1-16/17-25"`` (default): persons 1-16 train, 17-25 test, what the authors' Lua
metadata encodes (and MCNet uses). ``"1-20/21-25"``: the split DrNet-py and SVG declare (unused
in their code) and a community builder calls the SVG split. The official KTH
train/validation/test split of the file's header is not used by DrNet.

**Memory.** A split is held as one uint8 tensor ``(frames, 1, S, S)``. Real KTH has about
225,000 annotated frames (2391 ranges of ~94 frames): 0.9 GB at S = 64 (4 KB a frame; the
1-16 train split ~0.58 GB, test ~0.34 GB), 3.7 GB at S = 128. The cache on disk holds whole
videos (the frames between ranges too), compressed.

**Corrupt videos.** A video that FFmpeg cannot open or decode, that yields no frame, or that
yields fewer frames than its AVI header announces (a truncated file) raises
:class:`CorruptVideoError` naming it; with ``skip_corrupt=True`` it is skipped instead and
listed, with the reason, in the report that :func:`convert` returns and writes to
``processed<S>/conversion_report.json``. (That the real AVIs' headers agree with their decoded
frame counts could not be checked offline.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checkpoint import atomic_write
from . import registry
from .registry import DatasetFormatError
from .sweeps import ClipStarts

__all__ = [
    "ACTIONS",
    "RANGE_CONVENTIONS",
    "SCENARIOS",
    "SEQUENCES_KEY",
    "SPLIT_SCHEMES",
    "ZIP_KEYS",
    "CorruptVideoError",
    "KTHClips",
    "avi_path",
    "cache_file",
    "convert",
    "decode_video",
    "extract_zip",
    "kth_dir",
    "load_kth",
    "load_split",
    "parse_sequences",
    "prepare",
    "processed_dir",
    "range_frames",
    "raw_dir",
    "read_sequences",
    "sequences_path",
    "split_persons",
    "squash",
    "standin_root",
    "video_factors",
]

# The action order used for labels 0..5 throughout (reference/datasets.md §3; the brief's order).
ACTIONS = ("walking", "jogging", "running", "boxing", "handwaving", "handclapping")
SCENARIOS = (1, 2, 3, 4)
PERSONS = tuple(range(1, 26))
SPLIT_SCHEMES = {
    "1-16/17-25": (tuple(range(1, 17)), tuple(range(17, 26))),   # the authors' Lua metadata
    "1-20/21-25": (tuple(range(1, 21)), tuple(range(21, 26))),   # DrNet-py / SVG declaration
}
RANGE_CONVENTIONS = ("drnet", "official")
CACHE_VERSION = 2        # 2: exact area squash
REPORT_NAME = "conversion_report.json"
VIDEO_SUFFIX = "_uncomp.avi"
VIDEO_RE = re.compile(r"person(\d{2})_(" + "|".join(ACTIONS) + r")_d([1-4])")

# --- downloads (reference/datasets.md §3.1) -------------------------------------------------------

KTH_MIRRORS = ("https://www.csc.kth.se/cvap/actions/", "http://www.nada.kth.se/cvap/actions/")
KTH_SUBDIR = "kth"
ZIP_SUBDIR = "kth/zips"
# SHA1s as published by vipy; KTH publishes no sha256. Sizes are approximate, for messages only.
_ZIP_SHA1 = {
    "walking": ("a3e81537271a0ab4576591774baa38c2d97b7e3a", 242_000_000),
    "jogging": ("21943bdbcef9dad106db0d74661e49eaeaa15a25", 168_000_000),
    "running": ("da83bb313edfd4455fffdda6263696fa10d43c6f", 149_000_000),
    "boxing": ("adb36ed9c29c846d44d2ba15f348bd115c951bbd", 194_000_000),
    "handwaving": ("0792f7cd69f7f895a205c08ac212ddaa7177e370", 218_000_000),
    "handclapping": ("d3b81261aa822ef63d0d1523f945bfaff27814d2", 176_000_000),
}
ZIP_KEYS = {a: registry.register("kth", f"{a}.zip", None, KTH_MIRRORS, ZIP_SUBDIR, size,
                                 sha1=sha1).key
            for a, (sha1, size) in _ZIP_SHA1.items()}
# No hash of 00sequences.txt is published: the first copy's sha256 is recorded (registry docs).
SEQUENCES_KEY = registry.register("kth", "00sequences.txt", None, KTH_MIRRORS, KTH_SUBDIR).key


class CorruptVideoError(DatasetFormatError):
    """An AVI cannot be decoded, or decodes to fewer frames than its header announces."""


# --- layout -----------------------------------------------------------------------------------------

def kth_dir(root: str | Path) -> Path:
    """``<root>/kth``: everything KTH lives under it."""
    return Path(root) / KTH_SUBDIR


def raw_dir(root: str | Path) -> Path:
    """``<root>/kth/raw``: the AVIs, one folder per action (``raw/<action>/<video>_uncomp.avi``)."""
    return kth_dir(root) / "raw"


def sequences_path(root: str | Path) -> Path:
    return kth_dir(root) / "00sequences.txt"


def processed_dir(root: str | Path, image_size: int) -> Path:
    """``<root>/kth/processed<S>``: the frame cache at S px."""
    return kth_dir(root) / f"processed{image_size}"


def video_factors(video: str) -> tuple[int, int, int]:
    """``(action index 0..5, person 1..25, scenario 1..4)`` of a name like ``person01_boxing_d1``."""
    m = VIDEO_RE.fullmatch(video)
    if m is None:
        raise ValueError(f"not a KTH video name: {video!r} (expected personXX_<action>_dY)")
    return ACTIONS.index(m.group(2)), int(m.group(1)), int(m.group(3))


def avi_path(root: str | Path, video: str) -> Path:
    return raw_dir(root) / ACTIONS[video_factors(video)[0]] / (video + VIDEO_SUFFIX)


def cache_file(root: str | Path, video: str, image_size: int) -> Path:
    return processed_dir(root, image_size) / ACTIONS[video_factors(video)[0]] / (video + ".npz")


def standin_root(root: str | Path, size: str) -> Path:
    """Where the stand-in of ``size`` lives: its own root, so it never mixes with real data."""
    return Path(root) / "standin" / size


# --- 00sequences.txt ------------------------------------------------------------------------------

_ENTRY_START = re.compile(r"person\d+_")
_RANGE_RE = re.compile(r"(\d+)\s*-\s*(\d+)")
_MISSING = "*missing*"


@dataclass(frozen=True)
class SequenceFile:
    """A parsed ``00sequences.txt``: ``ranges`` (video -> its ranges, in file order) and the
    videos marked ``*missing*``."""

    ranges: dict[str, list[tuple[int, int]]]
    missing: tuple[str, ...]


def read_sequences(path: str | Path) -> SequenceFile:
    """Parse ``00sequences.txt`` into its ranges and its ``*missing*`` videos.

    Lines that start with ``personNN_`` are entries, ``<video><white space>frames<white space>
    A-B, C-D, ...`` or ``<video><white space>*missing*``; any mix of tabs and spaces, trailing
    white space and CRLF line ends are accepted. Other lines before the first entry are the header
    (prose and the official split); blank lines are skipped anywhere. A malformed entry, a
    duplicate video, or non-blank text after the entries have begun raises
    :class:`.registry.DatasetFormatError` naming the file, the line number and the line.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise FileNotFoundError(f"no KTH annotation file at {path}: prepare the data first "
                                f"(drnet_lib.data.kth.prepare)") from None
    ranges: dict[str, list[tuple[int, int]]] = {}
    first_line: dict[str, int] = {}
    missing: list[str] = []
    in_entries = False

    def bad(lineno, line, what):
        return DatasetFormatError(
            f"{path}, line {lineno}: {what}: {line.strip()!r}. Expected 'personXX_<action>_dY"
            f"<TAB>frames<TAB>A-B, C-D, ...' with 1-indexed inclusive ranges A <= B, or "
            f"'personXX_<action>_dY<TAB>*missing*'. Fix: restore the file (fetch KTH's "
            f"00sequences.txt again, or regenerate the stand-in)")

    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if not _ENTRY_START.match(stripped):
            if in_entries:
                raise bad(lineno, line, "unexpected text among the entries")
            continue                                    # header prose or the split lines
        in_entries = True
        parts = stripped.split(None, 1)
        video, rest = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        if VIDEO_RE.fullmatch(video) is None:
            raise bad(lineno, line, f"{video!r} is not a KTH video name")
        if video in first_line:
            raise bad(lineno, line, f"{video} already appeared on line {first_line[video]}")
        first_line[video] = lineno
        if rest == _MISSING:
            missing.append(video)
            continue
        head = rest.split(None, 1)
        if not head or head[0] != "frames" or len(head) < 2:
            raise bad(lineno, line, "no 'frames' and ranges after the video name")
        found = []
        for piece in head[1].split(","):
            m = _RANGE_RE.fullmatch(piece.strip())
            if m is None:
                raise bad(lineno, line, f"bad range {piece.strip()!r}")
            start, end = int(m.group(1)), int(m.group(2))
            if start < 1 or end < start:
                raise bad(lineno, line, f"bad range {start}-{end} (need 1 <= start <= end)")
            found.append((start, end))
        ranges[video] = found
    if not ranges:
        raise DatasetFormatError(f"{path}: no 'personXX_<action>_dY frames ...' entries found; is "
                                 f"this KTH's 00sequences.txt? Fix: fetch it again")
    return SequenceFile(ranges, tuple(missing))


def parse_sequences(path) -> dict[str, list[tuple[int, int]]]:
    """Video name (without ``_uncomp.avi``) -> its ranges ``(start, end)``, 1-indexed and
    inclusive as written, in file order (unsorted and overlapping ranges kept as they are).
    ``*missing*`` videos are absent. See :func:`read_sequences` for the accepted format."""
    return read_sequences(path).ranges


def range_frames(start: int, end: int, convention: str = "drnet") -> tuple[int, int]:
    """The 0-indexed half-open frame interval ``[first, stop)`` of a 1-indexed inclusive range.

    ``"drnet"`` drops the range's last frame, as the authors' metadata does (``end - 1``);
    ``"official"`` keeps it.
    """
    if convention == "drnet":
        return start - 1, end - 1
    if convention == "official":
        return start - 1, end
    raise ValueError(f"unknown range convention {convention!r}; choose one of {RANGE_CONVENTIONS}")


def split_persons(split: str, scheme: str = "1-16/17-25") -> tuple[int, ...]:
    """The persons of ``split`` ("train" or "test") under ``scheme`` (see module docstring)."""
    if scheme not in SPLIT_SCHEMES:
        raise ValueError(f"unknown KTH split scheme {scheme!r}; choose one of {sorted(SPLIT_SCHEMES)}")
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    return SPLIT_SCHEMES[scheme][0 if split == "train" else 1]


# --- decoding and conversion ----------------------------------------------------------------------

def _area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output cell ``[i, i + 1) * n_in / n_out`` of a resampled axis, the input pixels it
    overlaps and the fraction of the cell each covers: ``(index, weight)``, ``(n_out, K)`` each."""
    scale = n_in / n_out
    k = int(np.ceil(scale)) + 1
    idx = np.zeros((n_out, k), np.int64)
    w = np.zeros((n_out, k), np.float64)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        first = int(np.floor(lo))
        for j in range(k):
            p = first + j
            if p >= n_in:
                break
            cover = min(hi, p + 1) - max(lo, p)
            if cover > 0:
                idx[i, j], w[i, j] = p, cover / scale
    return idx, w


def squash(frames: np.ndarray, size: int, chunk: int = 256) -> np.ndarray:
    """``(F, H, W)`` uint8 -> ``(F, size, size)`` uint8: each output pixel is the exact mean of
    the ``H/size x W/size`` area of the frame it covers (fractional pixels weighted by their
    overlap), rounded. The whole frame is kept, so a 160x120 frame is squashed, as the authors'
    ``ffmpeg -s SxS`` does."""
    F, H, W = frames.shape
    iy, wy = _area_weights(H, size)
    ix, wx = _area_weights(W, size)
    out = np.empty((F, size, size), np.uint8)
    for start in range(0, F, chunk):
        x = frames[start:start + chunk].astype(np.float64)
        cols = sum(x[:, :, ix[:, j]] * wx[:, j] for j in range(ix.shape[1]))        # (f, H, S)
        both = sum(cols[:, iy[:, j], :] * wy[:, j, None] for j in range(iy.shape[1]))  # (f, S, S)
        out[start:start + chunk] = np.clip(np.floor(both + 0.5), 0, 255).astype(np.uint8)
    return out


def decode_video(path: str | Path, image_size: int | None = None) -> tuple[np.ndarray, dict]:
    """Decode an AVI to grey frames ``(F, H, W)`` uint8, squashed to ``image_size`` square if given.

    Grey is the decoded luma plane (the KTH content is grey). Resizing is :func:`squash` (exact
    area averaging of the whole frame, no crop). Returns the frames and ``{"width", "height",
    "header_frames"}`` of the source. A file that cannot be decoded, holds no frame or yields
    fewer frames than its header announces raises :class:`CorruptVideoError` naming it.
    """
    import av
    from av.video.reformatter import VideoReformatter

    path = Path(path)
    to_grey = VideoReformatter()
    fix = (f"Fix: delete {path} and extract it again from its zip (prepare does it), or pass "
           f"skip_corrupt=True to leave it out")
    frames, width, height, header = [], None, None, 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise CorruptVideoError(f"{path}: no video stream. {fix}")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1   # tiny frames: threads cost more than they save
            header = int(stream.frames or 0)
            for frame in container.decode(stream):
                # one reformatter per video keeps FFmpeg's scaler context: much faster than
                # frame.to_ndarray(format="gray"), which builds a new one for every frame
                grey = to_grey.reformat(frame, format="gray").to_ndarray()
                if width is None:
                    height, width = grey.shape
                elif grey.shape != (height, width):
                    raise CorruptVideoError(f"{path}: frame {len(frames)} is {grey.shape[1]}x"
                                            f"{grey.shape[0]}, the first was {width}x{height}. {fix}")
                frames.append(grey)
    except CorruptVideoError:
        raise
    except Exception as err:  # noqa: BLE001 - FFmpeg's errors are many; all mean a bad file
        raise CorruptVideoError(f"{path}: cannot be decoded ({type(err).__name__}: {err}). "
                                f"{fix}") from None
    if not frames:
        raise CorruptVideoError(f"{path}: no frame could be decoded. {fix}")
    if header and len(frames) < header:
        raise CorruptVideoError(f"{path}: truncated: its header announces {header} frames but only "
                                f"{len(frames)} could be decoded. {fix}")
    frames = np.stack(frames)
    if image_size is not None and frames.shape[1:] != (image_size, image_size):
        frames = squash(frames, image_size)
    return frames, {"width": width, "height": height, "header_frames": header}


def _source_key(avi: Path, image_size: int) -> str:
    st = avi.stat()
    return f"v{CACHE_VERSION} S={image_size} bytes={st.st_size} mtime_ns={st.st_mtime_ns}"


def _cache_is_current(path: Path, key: str) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["key"]) == key
    except FileNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - a damaged cache file is converted again, never trusted
        return False


def _convert_one(task) -> tuple[str, str | None, dict | None]:
    """Decode one AVI and write its cache file. Returns ``(video, error or None, info)``."""
    video, avi, out, key, image_size = task
    try:
        frames, info = decode_video(avi, image_size)
    except CorruptVideoError as err:
        return video, str(err), None
    info = dict(info, frames=len(frames))

    def write(f):
        np.savez_compressed(f, frames=frames, key=np.array(key),
                            num_frames=np.array(len(frames), np.int64),
                            source_size=np.array([info["width"], info["height"]], np.int64))
    atomic_write(out, write)
    return video, None, info


def convert(root: str | Path, image_size: int = 64, progress: bool = True,
            skip_corrupt: bool = False, workers: int = 1) -> dict:
    """Convert every video listed in ``<root>/kth/00sequences.txt`` into the frame cache.

    Reads ``<root>/kth/raw/<action>/<video>_uncomp.avi`` and writes
    ``<root>/kth/processed<S>/<action>/<video>.npz`` (see the module docstring). Videos already
    converted from the same AVI at the same size are skipped, so an interrupted run resumes.
    A corrupt or absent AVI raises :class:`CorruptVideoError` / :class:`FileNotFoundError`
    naming it, unless ``skip_corrupt``, which skips it and lists it in the report.

    Returns the report (also written to ``processed<S>/conversion_report.json``): ``videos``
    (listed), ``converted`` (this run), ``already_done``, ``skipped`` (``[{video, file,
    reason}]``), ``ranges_past_end`` (``[{video, range, frames}]``, ranges whose end lies past the
    decoded video) and ``image_size``.
    """
    if int(image_size) < 8:
        raise ValueError(f"image_size must be a frame side of at least 8 px (the authors use 64 "
                         f"or 128), got {image_size}")
    root = Path(root)
    seqs = read_sequences(sequences_path(root))
    out_dir = processed_dir(root, image_size)
    videos = sorted(seqs.ranges)
    skipped, tasks, done = [], [], 0
    for video in videos:
        avi = avi_path(root, video)
        if not avi.is_file():
            msg = (f"{avi}: the AVI of {video}, listed in {sequences_path(root)}, is absent. Fix: "
                   f"extract the zip of its action again (prepare does it), or pass "
                   f"skip_corrupt=True to leave it out")
            if not skip_corrupt:
                raise FileNotFoundError(msg)
            skipped.append({"video": video, "file": str(avi), "reason": msg})
            continue
        key = _source_key(avi, image_size)
        out = cache_file(root, video, image_size)
        if _cache_is_current(out, key):
            done += 1
        else:
            tasks.append((video, str(avi), out, key, image_size))
    infos: dict[str, dict] = {}
    bar = tqdm(total=len(videos), initial=done + len(skipped), unit="video",
               desc=f"converting KTH videos to {image_size}px", disable=not progress)
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(tasks) > 1 else None
    try:
        results = pool.map(_convert_one, tasks) if pool else map(_convert_one, tasks)
        for video, error, info in results:
            bar.update()
            if error is not None:
                if not skip_corrupt:
                    raise CorruptVideoError(error)
                skipped.append({"video": video, "file": str(avi_path(root, video)),
                                "reason": error})
            else:
                infos[video] = info
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    skipped_names = {s["video"] for s in skipped}
    past_end = []
    for video in videos:
        if video in skipped_names:
            continue
        n = infos[video]["frames"] if video in infos else _cached_num_frames(
            cache_file(root, video, image_size))
        past_end.extend({"video": video, "range": [a, b], "frames": n}
                        for a, b in seqs.ranges[video] if b > n)
    report = {"format_version": CACHE_VERSION, "image_size": image_size, "videos": len(videos),
              "converted": len(infos), "already_done": done,
              "skipped": sorted(skipped, key=lambda s: s["video"]),
              "missing_in_annotation": list(seqs.missing), "ranges_past_end": past_end}
    atomic_write(out_dir / REPORT_NAME, lambda f: f.write(json.dumps(report, indent=1).encode()))
    if skipped and progress:
        warnings.warn(f"{len(skipped)} KTH videos skipped (corrupt or absent): "
                      f"{[s['video'] for s in skipped][:5]}; see {out_dir / REPORT_NAME}",
                      stacklevel=2)
    return report


def _cached_num_frames(path: Path) -> int:
    with np.load(path, allow_pickle=False) as z:
        return int(z["num_frames"])


# --- real data: zips ------------------------------------------------------------------------------

def extract_zip(zip_path: str | Path, dest: str | Path, progress: bool = True) -> Path:
    """Extract the AVIs of one KTH zip (they unpack flat) into ``dest``, once.

    The files go to a hidden folder first, renamed to ``dest`` when complete; a marker records the
    zip's size and modification time, so a later call with the same zip does nothing. A damaged
    zip raises :class:`.registry.DatasetFormatError` naming it.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    st = zip_path.stat()
    stamp = f"{zip_path.name} bytes={st.st_size} mtime_ns={st.st_mtime_ns}\n"
    marker = dest / ".extracted"
    if marker.is_file() and marker.read_text() == stamp:
        return dest
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with zipfile.ZipFile(zip_path) as z:
            members = [m for m in z.infolist() if not m.is_dir() and m.filename.endswith(".avi")]
            if not members:
                raise DatasetFormatError(f"{zip_path}: holds no .avi file; is it a KTH action "
                                         f"zip? Fix: delete it and fetch it again")
            for m in tqdm(members, desc=f"extracting {zip_path.name}", unit="avi",
                          disable=not progress):
                with z.open(m) as src, open(tmp / Path(m.filename).name, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetFormatError(f"{zip_path}: damaged zip ({err}). Fix: delete it and fetch it "
                                 f"again") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / ".extracted").write_text(stamp)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


# --- the two sources ------------------------------------------------------------------------------

def prepare(source: str = "embedded", root: str | Path = "data", size: str = "cpu",
            image_size: int = 64, progress: bool = True, *, skip_corrupt: bool = False,
            workers: int | None = None) -> Path:
    """Make KTH available, converted at ``image_size``, and return its data root (the folder that
    holds ``kth/``; what :func:`load_split` takes).

    ``"real"``: fetch the six zips and ``00sequences.txt`` into ``<root>/kth`` (SHA1-checked),
    extract the zips into ``<root>/kth/raw/<action>/`` and convert. ``"embedded"``: write the
    stand-in of ``size`` (``"ci"`` or ``"cpu"``, :mod:`.kth_standin`) under
    ``<root>/standin/<size>`` in the same layout and convert it with the same code.
    ``workers`` processes render and convert (default: one per CPU, at most 8).
    """
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = min(cpus or 1, 8)
    if source == "embedded":
        from .kth_standin import write_standin

        data_root = write_standin(standin_root(root, size), size=size, progress=progress,
                                  workers=workers)
    elif source == "real":
        data_root = Path(root)
        registry.fetch(SEQUENCES_KEY, data_root, progress=progress)
        for action in ACTIONS:
            zpath = registry.fetch(ZIP_KEYS[action], data_root, progress=progress)
            extract_zip(zpath, raw_dir(data_root) / action, progress=progress)
    else:
        raise ValueError(f"unknown KTH source {source!r}; choose 'embedded' or 'real'")
    convert(data_root, image_size, progress=progress, skip_corrupt=skip_corrupt, workers=workers)
    return data_root


def load_kth(source: str = "embedded", split: str = "train", root: str | Path = "data",
             size: str = "cpu", image_size: int = 64, *, scheme: str = "1-16/17-25",
             ranges: str = "drnet", clip_length: int = 20, device="cpu", progress: bool = True,
             skip_corrupt: bool = False, workers: int | None = None) -> KTHClips:
    """:func:`prepare` ``source``, then :func:`load_split` one split as a :class:`KTHClips`."""
    data_root = prepare(source, root, size, image_size, progress, skip_corrupt=skip_corrupt,
                        workers=workers)
    return load_split(data_root, split, image_size, scheme=scheme, ranges=ranges,
                      clip_length=clip_length, device=device, progress=progress)


def load_split(root: str | Path, split: str = "train", image_size: int = 64, *,
               scheme: str = "1-16/17-25", persons=None, ranges: str = "drnet",
               clip_length: int = 20, device="cpu", progress: bool = False) -> KTHClips:
    """The annotated ranges of one split, from a converted data root, as a :class:`KTHClips`.

    ``persons`` overrides the split's persons. Videos are taken in sorted name order, ranges in
    file order. A video skipped by the conversion (listed in its report) is left out; one that is
    neither converted nor skipped raises :class:`FileNotFoundError` (run :func:`convert`).
    """
    root = Path(root)
    chosen = set(persons) if persons is not None else set(split_persons(split, scheme))
    seqs = read_sequences(sequences_path(root))
    report_path = processed_dir(root, image_size) / REPORT_NAME
    skipped = set()
    if report_path.is_file():
        skipped = {s["video"] for s in json.loads(report_path.read_text()).get("skipped", [])}
    videos = [v for v in sorted(seqs.ranges) if video_factors(v)[1] in chosen and v not in skipped]
    if not videos:
        raise ValueError(f"no KTH video of persons {sorted(chosen)} in {sequences_path(root)}")
    # pass 1: frame counts (cheap: the compressed frames are not read) and the range plan
    plan, clipped, dropped, total = [], 0, 0, 0
    for v in videos:
        path = cache_file(root, v, image_size)
        try:
            n = _cached_num_frames(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: {v} is not converted at {image_size}px; run "
                                    f"drnet_lib.data.kth.convert({str(root)!r}, {image_size})") from None
        for k, (a, b) in enumerate(seqs.ranges[v]):
            first, stop = range_frames(a, b, ranges)
            if stop > n:
                clipped += 1
                stop = n
            if stop - first <= 0:
                dropped += 1
                continue
            plan.append((v, k, first, stop, total))
            total += stop - first
    frames = np.empty((total, 1, image_size, image_size), np.uint8)
    by_video: dict[str, list] = {}
    for item in plan:
        by_video.setdefault(item[0], []).append(item)
    for v in tqdm(videos, desc=f"loading KTH {split}", unit="video", disable=not progress):
        if v not in by_video:
            continue
        with np.load(cache_file(root, v, image_size), allow_pickle=False) as z:
            video_frames = z["frames"]
        for _, _, first, stop, offset in by_video[v]:
            frames[offset:offset + stop - first, 0] = video_frames[first:stop]
    names = sorted(by_video)
    index = {v: i for i, v in enumerate(names)}
    facts = np.array([video_factors(v) for v, *_ in plan], np.int64).reshape(-1, 3)
    clips = KTHClips(
        torch.from_numpy(frames),
        offsets=[p[4] for p in plan], lengths=[p[3] - p[2] for p in plan],
        factors={"action": facts[:, 0], "person": facts[:, 1], "scenario": facts[:, 2]},
        videos=names, video=[index[p[0]] for p in plan], range_index=[p[1] for p in plan],
        clip_length=clip_length, device=device)
    clips.stats = {"split": split, "persons": sorted(chosen), "ranges": ranges,
                   "videos": len(names), "sequences": len(plan), "frames": total,
                   "ranges_clipped_at_video_end": clipped, "ranges_dropped_empty": dropped,
                   "videos_skipped_by_conversion": sorted(skipped & {
                       v for v in seqs.ranges if video_factors(v)[1] in chosen})}
    return clips


# --- the clip source ------------------------------------------------------------------------------

class KTHClips:
    """Clips from KTH's annotated ranges, for the DrNet trainer.

    A **sequence** is one (video, range). ``frames`` holds every frame of every sequence,
    back to back: sequence ``q`` is ``frames[offsets[q] : offsets[q] + lengths[q]]``. A clip of
    ``length`` frames lies inside one sequence: it never wraps and never crosses into another
    range; sequences shorter than ``length`` are never sampled (:meth:`num_too_short`).

    Sampling follows the authors' ``getSequence``: an action uniformly, then one of its videos,
    then one of that video's ranges, then a uniform start (``weighting="drnet"``);
    ``weighting="uniform"`` draws sequences uniformly instead. Only sequences long enough for the
    clip take part.

    Attributes (``(Q,)`` int64 tensors on ``device``): ``action`` (0..5, :data:`ACTIONS` order),
    ``person`` (1..25), ``scenario`` (1..4), ``video`` (index into ``videos``), ``range_index``
    (the range's position on its line of ``00sequences.txt``), ``offsets``, ``lengths``.
    """

    factor_names = ("action", "person", "scenario")
    channels = 1

    def __init__(self, frames: torch.Tensor, offsets, lengths, factors: dict, videos=(),
                 video=None, range_index=None, clip_length: int = 20, device="cpu",
                 weighting: str = "drnet"):
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] != 1:
            raise ValueError(f"frames must be uint8 (N, 1, S, S), got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        if weighting not in ("drnet", "uniform"):
            raise ValueError(f"unknown weighting {weighting!r}; choose 'drnet' or 'uniform'")
        self.device = torch.device(device)
        self.frames = frames.to(self.device)
        self.image_size = frames.shape[-1]
        self.clip_length = clip_length
        self.weighting = weighting
        as_long = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.int64).to(self.device)
        self.offsets, self.lengths = as_long(offsets), as_long(lengths)
        q = len(self.offsets)
        if len(self.lengths) != q or (q and (self.lengths.min() < 1 or
                                             (self.offsets + self.lengths).max() > len(frames))):
            raise ValueError("offsets and lengths must describe non-empty slices of frames")
        for name in self.factor_names:
            setattr(self, name, as_long(factors[name]))
        self.videos = tuple(videos)
        self.video = as_long(video if video is not None else np.zeros(q, np.int64))
        self.range_index = as_long(range_index if range_index is not None else np.zeros(q, np.int64))
        self.stats: dict = {}
        self._weights: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.offsets)

    def num_too_short(self, length: int | None = None) -> int:
        """How many sequences are shorter than ``length`` frames (never sampled for it)."""
        length = length or self.clip_length
        return int((self.lengths < length).sum())

    def sampling_weights(self, length: int | None = None) -> torch.Tensor:
        """``(Q,)`` probability of each sequence for clips of ``length`` (0 if too short)."""
        length = length or self.clip_length
        if length not in self._weights:
            ok = (self.lengths >= length).cpu().numpy()
            if not ok.any():
                raise ValueError(f"no KTH sequence has {length} frames or more (the longest has "
                                 f"{int(self.lengths.max())}); use shorter clips")
            w = ok.astype(np.float64)
            if self.weighting == "drnet":
                action, video = self.action.cpu().numpy(), self.video.cpu().numpy()
                per_video = np.bincount(video, weights=w, minlength=len(self.videos) or 1)
                vids_of_action = {a: len({v for v in video[ok & (action == a)]})
                                  for a in np.unique(action[ok])}
                for q in np.flatnonzero(ok):
                    w[q] = 1.0 / (len(vids_of_action) * vids_of_action[action[q]] * per_video[video[q]])
            self._weights[length] = torch.as_tensor(w / w.sum(), dtype=torch.float64).to(self.device)
        return self._weights[length]

    def sample_factors(self, batch: int, generator: torch.Generator,
                       length: int | None = None) -> ClipStarts:
        """``batch`` random clips of ``length`` frames (with replacement), each inside one range."""
        length = length or self.clip_length
        weights = self.sampling_weights(length)
        sequence = torch.multinomial(weights, batch, replacement=True, generator=generator)
        room = (self.lengths[sequence] - length + 1).double()
        u = torch.rand(batch, generator=generator, device=self.device, dtype=torch.float64)
        start = torch.minimum((u * room).long(), room.long() - 1)
        return ClipStarts(sequence, start)

    def render(self, factors: ClipStarts, times) -> torch.Tensor:
        """Frames ``times`` of each clip: ``(B, K, 1, S, S)`` float in [0, 1].

        ``times`` is ``(K,)`` (the same for every clip) or ``(B, K)``, counted from each clip's
        start. On the CPU a time outside the clip's range raises :class:`IndexError`; on other
        devices (where checking would stall the GPU) it is clamped to the range.
        """
        return self.frames[self.frame_index(factors, times)].float() / 255.0

    @property
    def frame_table(self) -> torch.Tensor:
        """Every frame once, ``(N, 1, S, S)`` uint8: what :meth:`frame_index` indexes."""
        return self.frames

    def frame_index(self, factors: ClipStarts, times) -> torch.Tensor:
        """Rows of :attr:`frame_table` holding frames ``times`` of each clip: ``(B, K)`` int64
        (checked or clamped as :meth:`render` says)."""
        times = torch.as_tensor(times, device=self.device)
        if times.ndim == 1:
            times = times.expand(len(factors), -1)
        seq = factors.sequence.unsqueeze(1)
        pos = factors.start.unsqueeze(1) + times
        last = self.lengths[seq] - 1
        if self.device.type == "cpu":
            if ((pos < 0) | (pos > last)).any():
                raise IndexError("a clip frame lies outside its range (start + time must be in "
                                 "[0, range length))")
        else:
            pos = torch.minimum(pos.clamp_min(0), last)
        return self.offsets[seq] + pos

    def sample_clips(self, batch: int, generator: torch.Generator, length: int | None = None):
        """``(frames (B, T, 1, S, S), factors)`` for ``batch`` random clips of ``length`` frames."""
        length = length or self.clip_length
        factors = self.sample_factors(batch, generator, length)
        return self.render(factors, torch.arange(length, device=self.device)), factors

    def sequence_frames(self, q: int) -> torch.Tensor:
        """All frames of sequence ``q``: ``(L, 1, S, S)`` float in [0, 1]."""
        o, n = int(self.offsets[q]), int(self.lengths[q])
        return self.frames[o:o + n].float() / 255.0
