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
   :mod:`.kth_standin` in exactly that layout, under ``<root>/standin/<size>``. Either way each
   action folder gets a ``.crc32.json`` with every AVI's CRC32 as written (from the zip's own
   record, or from the stand-in's bytes).
2. **Convert** (:func:`convert`): every video listed in ``00sequences.txt`` is checked against its
   recorded CRC32 (damage inside a frame still decodes, to wrong pixels) and decoded once with
   PyAV (FFmpeg), reduced to its luma (the content is grey), **squashed** from 160x120 to SxS
   (S = 64 or 128) by exact area averaging (:func:`squash`), as the authors' ``ffmpeg -s SxS``
   squashes (no crop; the aspect ratio changes), and cached as ``<root>/kth/processed<S>/<action>/
   <video>.npz`` (uint8 ``(frames, S, S)``, compressed, written atomically). Training never
   decodes video. An interrupted conversion resumes: a video whose cache file exists and was made
   from the same AVI (size and modification time) at the same S is skipped. A video left out as
   corrupt or absent with the user's leave (``skip_corrupt``, ``--skip-corrupt``) is recorded,
   with its AVI's size and time, in ``<root>/kth/skipped_videos.json``: the leave is about the
   AVI, so it holds for every S. Later conversions (a training run's, which does not pass
   ``skip_corrupt`` and may use another S) accept the record while the AVI is unchanged: they
   leave the video out again with a warning naming it, and do not decode it again.
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

**Modules.** This module holds the pipeline's entry points (:func:`prepare`, :func:`convert`,
:func:`load_split`, :func:`load_kth`), the downloads, the range conventions and the splits, and
re-exports the rest: names and paths in :mod:`.kth_layout`, the ``00sequences.txt`` parser in
:mod:`.kth_sequences`, decoding, squashing, cache files and zip extraction in :mod:`.kth_video`,
and the clip source :class:`KTHClips` in :mod:`.kth_clips`.
"""

from __future__ import annotations

import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checkpoint import atomic_write
from ..config import check_data_source
from . import registry
from .kth_clips import KTHClips
from .kth_layout import (ACTIONS, KTH_SUBDIR, SCENARIOS, avi_path, cache_file, kth_dir,
                         prepare_kth_command, processed_dir, raw_dir, sequences_path, standin_root,
                         video_factors)
from .kth_sequences import parse_sequences, read_sequences
from .kth_video import (CACHE_VERSION, CorruptVideoError, _cache_is_current, _convert_one, _source_key,
                        corrupt_fix, decode_video, extract_zip, file_stamp, read_cached, read_checksums,
                        squash)
# public names that were always importable from here, though not in __all__: still importable
from .kth_layout import PERSONS, VIDEO_RE, VIDEO_SUFFIX  # noqa: F401
from .kth_sequences import SequenceFile  # noqa: F401

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

SPLIT_SCHEMES = {
    "1-16/17-25": (tuple(range(1, 17)), tuple(range(17, 26))),   # the authors' Lua metadata
    "1-20/21-25": (tuple(range(1, 21)), tuple(range(21, 26))),   # DrNet-py / SVG declaration
}
RANGE_CONVENTIONS = ("drnet", "official")
REPORT_NAME = "conversion_report.json"
SKIPPED_NAME = "skipped_videos.json"    # in <root>/kth: the videos left out with the user's leave

# --- downloads (reference/datasets.md §3.1) -------------------------------------------------------

KTH_MIRRORS = ("https://www.csc.kth.se/cvap/actions/", "http://www.nada.kth.se/cvap/actions/")
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
# Its reader checks a first copy before that hash is recorded, so an empty file or an error page
# is refused instead of recorded (a record of it would then refuse the real file).
SEQUENCES_KEY = registry.register("kth", "00sequences.txt", None, KTH_MIRRORS, KTH_SUBDIR,
                                  check=read_sequences).key


# --- ranges and splits ---------------------------------------------------------------------------

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


# --- conversion ----------------------------------------------------------------------------------

def convert(root: str | Path, image_size: int = 64, progress: bool = True,
            skip_corrupt: bool = False, workers: int = 1) -> dict:
    """Convert every video listed in ``<root>/kth/00sequences.txt`` into the frame cache.

    Reads ``<root>/kth/raw/<action>/<video>_uncomp.avi`` and writes
    ``<root>/kth/processed<S>/<action>/<video>.npz`` (see the module docstring). Videos already
    converted from the same AVI at the same size are skipped, so an interrupted run resumes.
    A corrupt or absent AVI (one whose bytes differ from its recorded CRC32 included, see
    :func:`.kth_video.check_checksum`) raises :class:`CorruptVideoError` / :class:`FileNotFoundError`
    naming it, unless ``skip_corrupt``, which skips it, lists it in the report and records the
    leave in ``<root>/kth/skipped_videos.json``. A video recorded there whose AVI is unchanged
    (still absent, or the same size and time) stays skipped whatever ``skip_corrupt`` says, at
    any ``image_size``, without being decoded again: the user allowed it to be left out. Skipped
    videos are named in a warning.

    Returns the report (also written to ``processed<S>/conversion_report.json``): ``videos``
    (listed), ``converted`` (this run), ``already_done``, ``skipped`` (``[{video, file, reason,
    avi}]``, ``avi`` the AVI's size and time when it was skipped, None if it was absent),
    ``skipped_before`` (those of them left out by an earlier run's leave), ``ranges_past_end``
    (``[{video, range, frames}]``, ranges whose end lies past the decoded video) and ``image_size``.
    """
    if int(image_size) < 8:
        raise ValueError(f"image_size must be a frame side of at least 8 px (the authors use 64 "
                         f"or 128), got {image_size}")
    root = Path(root)
    seqs = read_sequences(sequences_path(root))
    out_dir = processed_dir(root, image_size)
    videos = sorted(seqs.ranges)
    allowed = _skip_leave(root)
    skipped, tasks, done, before = [], [], 0, []
    recorded: dict[Path, dict[str, int]] = {}   # each action folder's CRC32s, read once
    for video in videos:
        avi = avi_path(root, video)
        earlier = allowed.get(video)
        if earlier is not None and earlier["avi"] == _avi_stamp(avi):   # AVI unchanged since
            skipped.append(earlier)
            before.append(video)
            continue
        if not avi.is_file():
            msg = (f"{avi}: the AVI of {video}, listed in {sequences_path(root)}, is absent. Fix: "
                   f"{corrupt_fix(avi, image_size)}")
            if not skip_corrupt:
                raise FileNotFoundError(msg)
            skipped.append({"video": video, "file": str(avi), "reason": msg, "avi": None})
            continue
        key = _source_key(avi, image_size)
        out = cache_file(root, video, image_size)
        if _cache_is_current(out, key):
            done += 1
        else:
            if avi.parent not in recorded:   # (setdefault would read the file for every video)
                recorded[avi.parent] = read_checksums(avi.parent)
            crc32s = recorded[avi.parent]
            tasks.append((video, str(avi), out, key, image_size, crc32s.get(avi.name)))
    stamps = {task[0]: _avi_stamp(Path(task[1])) for task in tasks}
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
                                "reason": error, "avi": stamps[video]})
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
        n = infos[video]["frames"] if video in infos else int(read_cached(
            cache_file(root, video, image_size), "num_frames", image_size))
        past_end.extend({"video": video, "range": [a, b], "frames": n}
                        for a, b in seqs.ranges[video] if b > n)
    report = {"format_version": CACHE_VERSION, "image_size": image_size, "videos": len(videos),
              "converted": len(infos), "already_done": done,
              "skipped": sorted(skipped, key=lambda s: s["video"]), "skipped_before": before,
              "missing_in_annotation": list(seqs.missing), "ranges_past_end": past_end}
    atomic_write(out_dir / REPORT_NAME, lambda f: f.write(json.dumps(report, indent=1).encode()))
    if skipped or allowed:
        # the finished run's skips are the leave from now on (a repaired video drops out of it)
        leave = {"videos": {s["video"]: s for s in report["skipped"]}}
        atomic_write(kth_dir(root) / SKIPPED_NAME,
                     lambda f: f.write(json.dumps(leave, indent=1).encode()))
    if skipped:   # also without progress bars: a training run must say what it leaves out
        warnings.warn(_skipped_warning(report, out_dir / REPORT_NAME), stacklevel=2)
    return report


def _avi_stamp(avi: Path) -> str | None:
    """What identifies an AVI for a leave to skip it, at any frame size: its size and time
    (None when absent), as the frame cache's key does."""
    return file_stamp(avi) if avi.is_file() else None


def _skip_leave(root: Path) -> dict[str, dict]:
    """The videos an earlier conversion left out with the user's leave, by name, each with its
    AVI's ``avi`` stamp then. An unreadable record allows nothing: those videos are tried again."""
    try:
        record = json.loads((kth_dir(root) / SKIPPED_NAME).read_text())
        videos = record["videos"]
        return {v: e for v, e in videos.items() if isinstance(e, dict) and "avi" in e}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _skipped_warning(report: dict, report_path: Path) -> str:
    names = [s["video"] for s in report["skipped"]]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    before = report["skipped_before"]
    why = ""
    if before:
        why = (f" ({len(before)} of them as recorded in {report_path.parents[1] / SKIPPED_NAME} "
               f"by an earlier run with --skip-corrupt; their AVIs are unchanged, so they were not "
               f"decoded again)")
    return (f"{len(names)} KTH video(s) left out as corrupt or absent: {shown}{why}. Reasons in "
            f"{report_path}. To bring one back, replace its AVI as its reason says and prepare "
            f"again (`{prepare_kth_command(report_path, report['image_size'])}`)")


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
    check_data_source("kth", source)
    with registry.preparing(root, f"kth-standin-{size}" if source == "embedded" else "kth"):
        if source == "embedded":
            from .kth_standin import write_standin

            data_root = write_standin(standin_root(root, size), size=size, progress=progress,
                                      workers=workers)
        else:
            data_root = Path(root)
            registry.fetch(SEQUENCES_KEY, data_root, progress=progress)
            for action in ACTIONS:
                zpath = registry.fetch(ZIP_KEYS[action], data_root, progress=progress)
                extract_zip(zpath, raw_dir(data_root) / action, progress=progress)
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
            n = int(read_cached(path, "num_frames", image_size))
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
        video_frames = read_cached(cache_file(root, v, image_size), "frames", image_size)
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
