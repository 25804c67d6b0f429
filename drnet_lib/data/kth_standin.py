"""A procedural stand-in for KTH, written in the real on-disk layout (reference/datasets.md §6.3).

Articulated 2D figures do KTH's six actions in front of four kinds of background, and are written
as KTH's files: ``kth/raw/<action>/personXX_<action>_dY_uncomp.avi`` (160x120, 25 fps, grey in
MJPG, via PyAV) and ``kth/00sequences.txt`` in the real format, so the real converter
(:func:`.kth.convert`) and loader run unchanged on them.

This module writes the files of a size (the AVIs, ``00sequences.txt`` with the real file's
quirks, the sidecar); what they show is rendered by :mod:`.kth_figures` (persons, backgrounds,
painting, one video's timeline) and :mod:`.kth_poses` (how each action moves).

* **Persons** (content): each draws from ``np.random.default_rng((seed, person))`` a height, a
  build (torso and limb thickness, head size), skin and hair tones, two outfits (shirt and
  trouser intensities, a texture: plain, stripes or checks, sometimes a coat) and gait and
  handedness jitter.
* **Scenarios**: d1 outdoors (textured ground, tree line, sky); d2 the same kind of place with the
  camera zooming in and out; d3 outdoors in the person's second outfit; d4 indoors (a flat wall
  and floor). Backgrounds are drawn per (person, scenario).
* **Actions** (pose): walking, jogging, running cross the frame sideways, alternately left to
  right and back, at increasing speed, stride frequency, leg swing, knee and elbow bend and
  forward lean; boxing (side view) alternates straight punches from a guard; handwaving (frontal)
  swings both arms overhead; handclapping (frontal) brings the hands together in front of the
  chest.
* **Repetitions**: each video holds 4 repetitions (3 for the videos whose real line has 3
  ranges), separated by out-of-frame gaps (crossing actions) or short idle stands (the others).
  Their frames are the ranges written to ``00sequences.txt``.
* **Figures**: capsules (segments with a radius) rendered as 2D signed distances with one pixel
  of anti-aliasing, painted back to front (far limbs darker), with stripes or checks laid along
  each segment so textures move with the body.

``00sequences.txt`` copies the real file's quirks: a header with the official split lines, blank
lines between persons, tabs mixed with spaces, a ``*missing*`` video (not rendered), lines with
3 ranges, a line whose ranges are out of order and one whose ranges overlap (the written ranges
are in the sidecar next to the true ones).

Time runs ``time_scale`` times faster than 25 fps real time (the clips stay smooth and the videos
short); the sidecar ``kth/_standin_factors.json`` records it and every generating factor.

Sizes and measured cost (a 2-core machine shared with other jobs; rendering ~1 ms a frame):

* ``"ci"``: persons 1, 2 (train) and 17, 18 (test) x 6 actions in d1, plus d4 for persons 1 and
  17, one of those ``*missing*``: 35 videos, 2,677 frames (~76 a video, ranges 10-30 frames),
  time 3.2x. About 3 s to render and write with 1 worker, 2 s to convert at 64 px; 9 MB.
* ``"cpu"``: all 25 persons x 6 actions x 4 scenarios, ``person13_handclapping_d3``
  ``*missing*`` as in KTH: 599 videos, 90,762 frames (~150 a video; walking ~210, running
  ~130), 2391 ranges as in KTH, of 20-56 frames, time 1.6x. About 66 s to render and write
  with 2 workers, 25 s to convert at 64 px with 2 workers; 314 MB of AVIs, 234 MB of cache.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import atomic_write
from .kth_figures import FPS, HEIGHT, WIDTH, person_params, render_video, video_plan
from .kth_figures import _background  # noqa: F401  (still importable from here)
from .kth_layout import ACTIONS, VIDEO_SUFFIX, avi_path, kth_dir, sequences_path
from .kth_video import crc32_of, write_checksums

__all__ = ["FORMAT_VERSION", "SIDECAR", "SIZES", "person_params", "render_video", "video_plan",
           "write_standin"]

FORMAT_VERSION = 1
SIDECAR = "_standin_factors.json"
BIT_RATE = 800_000        # bits/s of MJPG: ~4 KB a frame, about what the real AVIs hold

_REAL_THREE = ("person11_boxing_d4", "person13_handwaving_d3", "person14_handwaving_d3",
               "person15_boxing_d4", "person22_boxing_d1")
SIZES = {
    # seconds: 4 persons (2 train, 2 test) x 6 actions x d1, plus d4 for persons 1 and 17
    "ci": {"videos": tuple((p, s) for p in (1, 2, 17, 18) for s in (1,)) + ((1, 4), (17, 4)),
           "time_scale": 3.2, "missing": "person17_handclapping_d4",
           "three_ranges": ("person01_boxing_d1",), "unsorted": "person02_jogging_d1",
           "overlapping": "person18_boxing_d1"},
    # every person, action and scenario of the real set (599 videos)
    "cpu": {"videos": tuple((p, s) for p in range(1, 26) for s in (1, 2, 3, 4)),
            "time_scale": 1.6, "missing": "person13_handclapping_d3",
            "three_ranges": _REAL_THREE, "unsorted": "person07_jogging_d4",
            "overlapping": "person21_boxing_d2"},
}

# --- writing ------------------------------------------------------------------------------------

def _write_avi(path: Path, frames: np.ndarray) -> None:
    """Grey frames as an MJPG AVI at 25 fps (written beside ``path``, then renamed into place)."""
    import av

    def write(f):
        with av.open(f, "w", format="avi") as container:
            stream = container.add_stream("mjpeg", rate=FPS)
            stream.width, stream.height = WIDTH, HEIGHT
            stream.pix_fmt = "yuvj420p"
            stream.bit_rate = BIT_RATE
            for frame in frames:
                packet = stream.encode(av.VideoFrame.from_ndarray(frame, format="gray"))
                container.mux(packet)
            container.mux(stream.encode(None))

    atomic_write(path, write)


def _video_name(person, action, scenario):
    return f"person{person:02d}_{ACTIONS[action]}_d{scenario}"


def _render_task(args):
    root, person, action, scenario, reps, time_scale, seed = args
    frames, ranges, plan = render_video(person, action, scenario, reps, time_scale, seed)
    name = _video_name(person, action, scenario)
    _write_avi(avi_path(root, name), frames)
    return name, len(frames), ranges, plan, crc32_of(avi_path(root, name))


_HEADER = """
Procedural stand-in for the KTH human actions database, written by drnet_lib.data.kth_standin
in the layout and format of the real 00sequences.txt: six actions performed by stick-figure
persons in four scenarios (d1 outdoors, d2 outdoors with zoom, d3 other clothes, d4 indoors).
The real database is at http://www.nada.kth.se/cvap/actions

Subdivision of the persons, as in the header of the real file:

Training:   person11, 12, 13, 14, 15, 16, 17, 18
Validation: person19, 20, 21, 23, 24, 25, 01, 04
Test:       person22, 02, 03, 05, 06, 07, 08, 09, 10 \n

"""


def _sequences_text(entries, cfg) -> tuple[str, dict]:
    """The file's text, and the ranges as written (quirks applied) per video."""
    lines, written, last_person = [_HEADER.rstrip("\n") + "\n"], {}, None
    for name, ranges in entries:
        person = int(name[6:8])
        if last_person is not None and person != last_person:
            lines.append("")                                  # blank line between persons
        last_person = person
        if ranges is None:
            lines.append(f"{name}\t*missing*")
            continue
        r = list(ranges)
        if name == cfg["unsorted"] and len(r) >= 3:
            r[1], r[2] = r[2], r[1]                            # out of order, as person07_jogging_d4
        if name == cfg["overlapping"] and len(r) >= 2:
            r[1] = (max(1, r[0][1] - 9), r[1][1])              # starts before the previous ends
        written[name] = r
        pad = "\t\t" if len(name) < 24 else "\t"
        if (person + int(name[-1])) % 5 == 0:                  # spaces before the tabs
            pad = "    " + pad
        lines.append(f"{name}{pad}frames\t" + ", ".join(f"{a}-{b}" for a, b in r))
    return "\n".join(lines) + "\n", written


def _grid(size: str):
    cfg = SIZES[size]
    out = []
    for person, scenario in sorted(set(cfg["videos"])):
        for action in range(len(ACTIONS)):
            out.append((person, action, scenario))
    # the file lists videos by person, then action name, then scenario (as the real file)
    return sorted(out, key=lambda v: (v[0], ACTIONS[v[1]], v[2])), cfg


def _sidecar(size: str, seed: int) -> dict:
    grid, cfg = _grid(size)
    persons = sorted({p for p, _, _ in grid})
    return {"format_version": FORMAT_VERSION, "size": size, "seed": seed, "fps": FPS,
            "time_scale": cfg["time_scale"], "frame_size": [WIDTH, HEIGHT], "actions": list(ACTIONS),
            "missing": cfg["missing"], "three_ranges": [v for v in cfg["three_ranges"]],
            "unsorted": cfg["unsorted"], "overlapping": cfg["overlapping"],
            "persons": {str(p): person_params(p, seed) for p in persons}}


_SAME_DATA = ("format_version", "size", "seed", "time_scale", "missing")


def write_standin(root, size: str = "cpu", seed: int = 0, progress: bool = True,
                  workers: int | None = None) -> Path:
    """Render the stand-in of ``size`` under ``<root>/kth`` (AVIs, ``00sequences.txt``, sidecar)
    and return ``root`` (the data root that :func:`.kth.convert` takes).

    Does nothing if the sidecar of the same size, seed and format version is there with every
    file it lists. ``workers`` processes render one video each (default: one per CPU, at most 8).
    """
    if size not in SIZES:
        raise ValueError(f"unknown KTH stand-in size {size!r}; choose one of {sorted(SIZES)}")
    root = Path(root)
    side = kth_dir(root) / SIDECAR
    want = _sidecar(size, seed)
    grid, cfg = _grid(size)
    names = [_video_name(*v) for v in grid]
    if side.exists():
        try:
            have = json.loads(side.read_text())
        except ValueError:
            have = {}
        if (all(have.get(k) == want[k] for k in _SAME_DATA) and sequences_path(root).exists()
                and all(avi_path(root, n).exists() for n in have.get("videos", {}))
                and set(have.get("videos", {})) | {cfg["missing"]} >= set(names)):
            return root
    side.unlink(missing_ok=True)             # an old sidecar must not vouch for new files
    tasks = [(str(root), p, a, s, 3 if _video_name(p, a, s) in cfg["three_ranges"] else 4,
              cfg["time_scale"], seed) for p, a, s in grid if _video_name(p, a, s) != cfg["missing"]]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = workers or min(cpus, 8)
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    results, checksums = {}, {}
    try:
        it = pool.map(_render_task, tasks, chunksize=4) if pool else map(_render_task, tasks)
        for name, n, ranges, plan, crc in tqdm(it, total=len(tasks), desc=f"KTH stand-in ({size})",
                                               unit="video", disable=not progress):
            results[name] = (n, ranges, plan)
            avi = avi_path(root, name)
            checksums.setdefault(avi.parent, {})[avi.name] = crc
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    for folder, crc32s in checksums.items():   # what convert checks each AVI against
        write_checksums(folder, crc32s)
    missing_avi = avi_path(root, cfg["missing"])
    missing_avi.unlink(missing_ok=True)
    entries = [(n, results[n][1] if n in results else None) for n in names]
    text, written = _sequences_text(entries, cfg)
    atomic_write(sequences_path(root), lambda f: f.write(text.encode()))
    want["videos"] = {}
    for n, (frames, ranges, plan) in results.items():
        a, p, s = ACTIONS.index(n.split("_")[1]), int(n[6:8]), int(n[-1])
        want["videos"][n] = {"action": a, "person": p, "scenario": s, "frames": frames,
                             "ranges": [list(r) for r in ranges],
                             "written_ranges": [list(r) for r in written[n]], "plan": plan,
                             "file": n + VIDEO_SUFFIX}
    atomic_write(side, lambda f: f.write(json.dumps(want, indent=1).encode()))
    return root
