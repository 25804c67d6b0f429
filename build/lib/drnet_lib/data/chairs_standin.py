"""A procedural stand-in for DrNet's SUNCG chairs, written as the authors' PNG tree (datasets.md §6.4).

SUNCG is withdrawn (reference/datasets.md §4.2) and the authors' ``suncg_chairs.tar.gz`` has no
known mirror, so this module builds chairs from analytic shapes, renders them with the numpy
sphere tracer of :mod:`.sdf_render` and writes them in exactly the layout DrNet-py reads:

    <root>/suncg/single_object/chair/<object>/elevation_<e>/p200-64_<i>.png

with ``i = 1..36`` (10 deg azimuth steps) and the authors' five folder names ``<e>``, so the same
loader (:func:`.chairs.load_chairs_tree`) reads the stand-in, the authors' tree and the converted
Aubry et al. chairs.

* **Chairs**: a seat (rounded box); a backrest (box, tilted back by 0-18 deg), either resting on
  the seat or raised on two posts; either 4 legs (capsules, slightly splayed) or a pedestal with a
  5-arm star base (an office chair); armrests on some chairs. Each chair draws its dimensions,
  its style and two colours (upholstery: seat, back and arm pads; frame: legs, posts, pedestal,
  arm supports) from ``np.random.default_rng((seed, chair))`` (:func:`chair_params`).
* **Aligned**: every chair faces +x, so **azimuth means the same for every chair**: frame 1
  (azimuth 0) shows the chair from the front, frame 10 (90 deg) from its left side, frame 19
  (180 deg) from behind. The camera azimuth grows with the frame number; seen from above the
  camera circles anticlockwise, so the chair appears to turn clockwise.
* **Elevation**: the authors' folder names (``1.25, -1.00, 0.50, 2.00, -0.25``; SUNCG camera
  heights, perhaps) are mapped linearly to camera elevations: ``-1.00 -> 5``, ``-0.25 -> 15``,
  ``0.50 -> 25``, ``1.25 -> 35``, ``2.00 -> 45`` degrees (:data:`ELEVATION_DEG`). The mapping is ours:
  the authors' meaning of the numbers is not documented.
* **Light**: one lamp fixed in the room (40 deg to the camera's right, 55 deg up) plus ambient
  light: the chair turns under it, so its shading changes with azimuth as well as its outline.
* **Camera**: orthographic; each chair is centred vertically and the view spans a fixed
  ``2 * HALF_WIDTH`` world units, so chair size differences remain visible.
* **Background**: a flat light grey-blue (:data:`BACKGROUND`); no floor, no shadow.

Each chair folder is written to a hidden temporary folder and renamed into place, and the
``_standin_factors.json`` sidecar (the size, seed, every chair's parameters, the elevation
mapping and the format version) is written last: its presence says the tree is complete.

Cost (numpy 2.4, 1 thread per process, about 3.8 ms per 64 px view): ``"ci"`` (8 chairs x 2
elevations x 36 azimuths = 576 views) about 3 s in one process; ``"cpu"`` (100 chairs x 5 x 36
= 18,000 views, 73 MB of PNGs) 105 s in one process on the shared 2-core test machine, so about
1 min with 2 worker processes on an idle one. The pixels do not depend on the worker count or
the platform (camera trigonometry in scalar :mod:`math`; see :mod:`.sdf_render`); the PNG bytes
also depend on the zlib that Pillow uses.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import atomic_write
from .chairs import AUTHORS_ELEVATIONS, chairs_dir, frame_name
from .sdf_render import camera, sdf_part, smooth_union, trace

__all__ = ["AUTHORS_ELEVATIONS", "BACKGROUND", "ELEVATION_DEG", "FORMAT_VERSION", "SIDECAR",
           "SIZES", "chair_params", "chair_parts", "object_id", "render_chair", "write_standin"]

FORMAT_VERSION = 1
SIDECAR = "_standin_factors.json"
# our camera elevation for each of DrNet-py's elevation folder names
ELEVATION_DEG = {"-1.00": 5.0, "-0.25": 15.0, "0.50": 25.0, "1.25": 35.0, "2.00": 45.0}
HALF_WIDTH = 0.64           # the image spans [-0.64, 0.64]^2 world units; every chair fits this radius
BACKGROUND = (0.80, 0.82, 0.86)
LIGHT = (40.0, 55.0)        # lamp azimuth relative to the camera (to its right) and elevation, deg
AMBIENT = 0.3
BLEND = 0.012               # smooth-union radius: crisp joints
STEPS, HIT_EPS = 64, 1e-3

SIZES = {
    "ci": {"chairs": 8, "elevations": ("-0.25", "1.25"), "azimuths": 36, "image_size": 64},
    "cpu": {"chairs": 100, "elevations": AUTHORS_ELEVATIONS, "azimuths": 36, "image_size": 64},
}

_OBJECT_RE = re.compile(r"standin_\d{4}")


def object_id(chair: int) -> str:
    """The folder name of stand-in chair ``chair``; zero-padded, so sorting keeps the order."""
    return f"standin_{chair:04d}"


# --- the chairs --------------------------------------------------------------------------------

def _colour(rng, hue, sat, val):
    return [round(c, 4) for c in colorsys.hsv_to_rgb(hue % 1.0, sat, val)]


def chair_params(chair: int, seed: int = 0) -> dict:
    """The dimensions, style and colours of one chair (plain floats and strings, JSON-ready).

    Lengths are in world units; a seat is about 0.45 wide and its top 0.4-0.5 above the floor.
    """
    rng = np.random.default_rng((seed, chair))
    u = lambda lo, hi: float(rng.uniform(lo, hi))
    p = {"base": "pedestal" if rng.random() < 0.35 else "legs"}
    office = p["base"] == "pedestal"
    p.update(
        seat_half_width=u(0.19, 0.26), seat_half_depth=u(0.17, 0.23), seat_half_thickness=u(0.02, 0.045),
        seat_height=u(0.40, 0.50), back_height=u(0.32, 0.5) if not office else u(0.38, 0.52),
        back_half_thickness=u(0.018, 0.035), back_tilt_deg=u(0, 18), back_width_fraction=u(0.75, 1.0),
        back_raised=bool(rng.random() < 0.4), back_gap=u(0.06, 0.14),
        leg_radius=u(0.016, 0.028), leg_inset=u(0.015, 0.05), leg_splay=u(0.0, 0.04),
        column_radius=u(0.025, 0.04), star_reach=u(0.22, 0.28),
        armrests=bool(rng.random() < (0.6 if office else 0.3)), arm_height=u(0.17, 0.24),
    )
    # upholstery: any hue, soft to strong; frame: dark wood, black, grey metal or a darker upholstery
    hue = u(0, 1)
    p["upholstery_rgb"] = _colour(rng, hue, u(0.35, 0.85), u(0.55, 0.95))
    kind = int(rng.integers(4))
    p["frame_style"] = ("wood", "black", "metal", "tone")[kind]
    if kind == 0:
        p["frame_rgb"] = _colour(rng, u(0.05, 0.1), u(0.5, 0.7), u(0.3, 0.55))
    elif kind == 1:
        p["frame_rgb"] = _colour(rng, u(0, 1), u(0, 0.1), u(0.12, 0.2))
    elif kind == 2:
        p["frame_rgb"] = _colour(rng, u(0.55, 0.65), u(0.0, 0.12), u(0.6, 0.8))
    else:
        p["frame_rgb"] = _colour(rng, hue + u(-0.05, 0.05), u(0.4, 0.8), u(0.25, 0.45))
    return p


def chair_parts(p: dict):
    """The chair's primitives and a material per part (0 upholstery, 1 frame).

    x points forward (the way a sitter faces), y to the chair's left, z up; the chair is centred
    vertically on z = 0.
    """
    parts, mats = [], []

    def add(part, mat):
        parts.append(part)
        mats.append(mat)

    sw, sd, st = p["seat_half_width"], p["seat_half_depth"], p["seat_half_thickness"]
    top = p["seat_height"]
    tilt = math.radians(p["back_tilt_deg"])
    floor = -(top + p["back_height"]) / 2                      # centre the chair vertically
    seat_top = floor + top
    seat_c = seat_top - st
    add(("box", (0.0, 0.0, seat_c), (sd, sw, st), min(0.02, st * 0.8), 0.0), 0)
    # backrest: a tilted panel whose bottom edge sits at the back of the seat
    bw, bt, bh = sw * p["back_width_fraction"], p["back_half_thickness"], p["back_height"]
    gap = p["back_gap"] if p["back_raised"] else 0.0
    panel_h = bh - gap
    bx, bz = -sd + bt, seat_top + gap                          # bottom centre of the panel
    up = (-math.sin(tilt), math.cos(tilt))                     # the panel's up axis in (x, z)
    centre = (bx + up[0] * panel_h / 2, 0.0, bz + up[1] * panel_h / 2)
    add(("tilted_box", centre, (bt, bw, panel_h / 2), min(0.02, bt * 0.9), tilt), 0)
    if p["back_raised"]:                                       # two posts carry the panel
        post_r = max(0.6 * p["leg_radius"], 0.014)
        for sy in (-1, 1):
            y = sy * (bw - 0.03)
            add(("capsule", (bx, y, seat_top - st), (bx + up[0] * (gap + 0.04), y,
                                                     bz + up[1] * 0.04), post_r), 1)
    if p["base"] == "legs":
        r, inset, splay = p["leg_radius"], p["leg_inset"], p["leg_splay"]
        for sx in (-1, 1):
            for sy in (-1, 1):
                x0, y0 = sx * (sd - inset - r), sy * (sw - inset - r)
                add(("capsule", (x0, y0, seat_c), (x0 + sx * splay, y0 + sy * splay, floor + r), r), 1)
    else:
        cr, reach = p["column_radius"], p["star_reach"]
        hub = floor + 0.07
        add(("capsule", (0.0, 0.0, seat_c - st), (0.0, 0.0, hub), cr), 1)
        for k in range(5):
            a = 2 * math.pi * k / 5
            end = (reach * math.cos(a), reach * math.sin(a))
            add(("capsule", (0.0, 0.0, hub), (end[0], end[1], floor + 0.035), 0.02), 1)
            add(("ellipsoid", (end[0], end[1], floor + 0.028), (0.028, 0.028, 0.028)), 1)  # caster
    if p["armrests"]:
        az = seat_top + p["arm_height"]
        for sy in (-1, 1):
            y = sy * (sw - 0.02)
            add(("box", (-0.02, y, az), (sd - 0.03, 0.03, 0.016), 0.014, 0.0), 0)
            add(("capsule", (sd - 0.08, y, seat_top - st), (sd - 0.08, y, az), 0.016), 1)
    return parts, mats


# --- rendering --------------------------------------------------------------------------------

def _light_dirs(camera_az_deg) -> np.ndarray:
    """(V, 3) unit vectors towards the lamp, which stays put in the room while the chair turns
    (fixed azimuth relative to the camera, fixed absolute elevation)."""
    return np.array([camera(LIGHT[1], az + LIGHT[0])[0] for az in camera_az_deg])


def render_chair(params: dict, elevations_deg, azimuths_deg, size: int = 64) -> np.ndarray:
    """Views of one chair: ``(E, A, size, size, 3)`` uint8 RGB."""
    parts, mats = chair_parts(params)
    albedo = np.array([params["upholstery_rgb"], params["frame_rgb"]])          # (2, 3)
    bg = np.asarray(BACKGROUND)
    sdf = lambda p: smooth_union(parts, p, BLEND)
    out = np.empty((len(elevations_deg), len(azimuths_deg), size, size, 3), np.uint8)
    for ei, elev in enumerate(elevations_deg):
        found = trace(sdf, [(elev, az) for az in azimuths_deg], size, HALF_WIDTH, STEPS, HIT_EPS)
        cov, n, pts = found.coverage, found.normals, found.points
        on = cov > 0
        # material of the nearest part at each covered pixel
        p_on = tuple(pts[i][on] for i in range(3))
        nearest = np.argmin(np.stack([sdf_part(part, p_on) for part in parts]), axis=0)
        mat = np.asarray(mats)[nearest]
        light = _light_dirs(azimuths_deg)                                   # (A, 3)
        lam = sum(light[:, k, None, None] * n[k] for k in range(3))         # (A, S, S)
        shade = AMBIENT + (1 - AMBIENT) * np.maximum(lam[on], 0)
        rgb = np.empty(cov.shape + (3,))
        rgb[:] = bg
        c = cov[on][:, None]
        rgb[on] = c * (albedo[mat] * shade[:, None]) + (1 - c) * bg
        out[ei] = np.round(255 * rgb).astype(np.uint8)
    return out


# --- writing the tree ---------------------------------------------------------------------------

def _azimuths_deg(n: int) -> list[float]:
    return [360.0 * k / n for k in range(n)]


def _write_chair(args):
    """Render chair ``chair`` and write its folder (via a hidden temporary folder)."""
    from PIL import Image

    folder, chair, seed, grid = args
    params = chair_params(chair, seed)
    elevs = grid["elevations"]
    views = render_chair(params, [ELEVATION_DEG[e] for e in elevs], _azimuths_deg(grid["azimuths"]),
                         grid["image_size"])
    final = Path(folder) / object_id(chair)
    tmp = Path(folder) / f".{object_id(chair)}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    for ei, e in enumerate(elevs):
        sub = tmp / f"elevation_{e}"
        sub.mkdir(parents=True)
        for a in range(grid["azimuths"]):
            Image.fromarray(views[ei, a]).save(sub / frame_name(a + 1), format="PNG")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return chair


def _sidecar(size: str, seed: int) -> dict:
    grid = SIZES[size]
    return {
        "format_version": FORMAT_VERSION, "size": size, "seed": seed,
        "image_size": grid["image_size"], "num_chairs": grid["chairs"],
        "elevation_folders": list(grid["elevations"]),
        "elevation_deg": {e: ELEVATION_DEG[e] for e in grid["elevations"]},
        "num_azimuths": grid["azimuths"], "azimuths_deg": _azimuths_deg(grid["azimuths"]),
        "frame_names": "p200-64_<i>.png, i = 1 + azimuth index (azimuth 0 = the chair's front)",
        "light": {"azimuth_rel_deg": LIGHT[0], "elevation_deg": LIGHT[1], "ambient": AMBIENT},
        "view_half_width": HALF_WIDTH, "background_rgb": list(BACKGROUND),
        "chairs": {object_id(i): chair_params(i, seed) for i in range(grid["chairs"])},
    }


# sidecar keys that must match for existing files to count as this call's output
_SAME_DATA = ("format_version", "size", "seed", "image_size", "num_chairs", "elevation_folders",
              "num_azimuths")


def _complete(folder: Path, want: dict) -> bool:
    side = folder / SIDECAR
    if not side.exists():
        return False
    try:
        have = json.loads(side.read_text())
    except ValueError:           # a damaged sidecar vouches for nothing
        return False
    if any(have.get(k) != want[k] for k in _SAME_DATA):
        return False
    frames = [frame_name(a + 1) for a in range(want["num_azimuths"])]
    return all((folder / obj / f"elevation_{e}" / f).is_file()
               for obj in want["chairs"] for e in want["elevation_folders"] for f in frames)


def write_standin(root, size: str = "cpu", seed: int = 0, progress: bool = True,
                  workers: int | None = None) -> Path:
    """Render the stand-in of ``size`` into ``<root>/suncg/single_object/chair`` and return ``root``
    (the path :func:`.chairs.load_chairs_tree` takes).

    Does nothing if the tree and a sidecar with the same size, seed and format version are there;
    otherwise renders every chair again. Refuses to write into a chair folder holding objects the
    stand-in did not write (the authors' data, say). ``workers`` processes render one chair each
    (default: one per CPU, at most 8); the bytes do not depend on it.
    """
    if size not in SIZES:
        raise ValueError(f"unknown stand-in size {size!r}; choose one of {sorted(SIZES)}")
    folder = chairs_dir(root)
    want = _sidecar(size, seed)
    if _complete(folder, want):
        return Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    foreign = sorted(d.name for d in folder.iterdir()
                     if d.is_dir() and not d.name.startswith(".") and not _OBJECT_RE.fullmatch(d.name))
    if foreign:
        raise FileExistsError(f"{folder} holds objects the chairs stand-in did not write "
                              f"({', '.join(foreign[:3])}...); write the stand-in under another root")
    # An old sidecar must not vouch for files this call is about to replace; stale chairs go.
    (folder / SIDECAR).unlink(missing_ok=True)
    for d in folder.iterdir():
        if d.is_dir() and (_OBJECT_RE.fullmatch(d.name) and d.name not in want["chairs"]
                           or d.name.endswith(".partial")):
            shutil.rmtree(d)
    tasks = [(str(folder), i, seed, SIZES[size]) for i in range(want["num_chairs"])]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = workers or min(cpus, 8)
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    results = pool.map(_write_chair, tasks) if pool else map(_write_chair, tasks)
    bar = tqdm(total=len(tasks), desc=f"chairs stand-in ({size})", unit="chair", disable=not progress)
    try:
        for _ in results:
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    # the sidecar goes last: its presence says the tree is complete
    atomic_write(folder / SIDECAR, lambda f: f.write(json.dumps(want, indent=1).encode()))
    return Path(root)
