"""A procedural stand-in for smallNORB, written in the real on-disk format (reference/datasets.md §6.2).

Fifty toys, 5 categories x 10 instances, are unions of analytic shapes (capsules, ellipsoids,
rounded boxes, wheels) rendered by numpy sphere tracing (:mod:`.sdf_render`, shared with the chairs
stand-in), then written with :func:`.norb.write_matrix` under the real file names, so the real
reader (:func:`.norb.read_split`) loads them unchanged.

* **Categories** (the NORB codes 0..4): a four-legged animal (body, 4 legs, neck, head, tail), a
  human figure (torso, hips, arms, legs, head), an airplane (fuselage, swept wings, tail plane, fin),
  a truck (cab, cargo box, 6 wheels), a car (body, cabin, 4 wheels).
* **Instances**: each draws its part proportions, its albedo and an *azimuth origin* from
  ``np.random.default_rng((seed, category, instance))``; the origin turns the toy on the turntable,
  so azimuth 0 of two toys points different ways, as in the real data.
* **Camera**: orthographic, on a sphere round the origin, Z up; elevation 30..70 deg, azimuth
  0..340 deg. The stereo pair is two cameras ``STEREO_HALF_DEG`` = 3 deg either side of the
  nominal azimuth (left camera first); the real baseline is not published, and +-3 deg gives a
  visible but small disparity at 96 px.
* **Lighting**: Lambertian, ``albedo * (ambient + (1 - ambient) * max(n.L, 0))``, applied after the
  geometry pass, so one trace serves all 6 lightings. The lights stand still in the room while the
  turntable turns the toy, so a light's azimuth is fixed relative to the camera.
* **Edges**: the smallest distance a missing ray passes from the surface gives a coverage in
  [0, 1] (0.5 minus that distance in pixels): cheap anti-aliasing that also keeps thin parts
  (tails, wing edges) visible at 32 px.

Camera trigonometry uses scalar :mod:`math` and the pixels see only + - * / sqrt (exactly rounded
in IEEE arithmetic), so the bytes do not depend on numpy's SIMD code paths or the worker count.

Cost (2-core CPU, numpy 2.4): ``"cpu"`` (the real grid, 2 x 24,300 stereo pairs at 96 px) renders
and writes in about 45 s with 2 worker processes; ``"ci"`` (32 px, 3 elevations, 2 lightings)
in about 2 s.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import atomic_write
from .norb import (AZIMUTHS_DEG, CATEGORIES, ELEVATIONS_DEG, KINDS, SPLITS, TEST_INSTANCES,
                   TRAIN_INSTANCES, file_name, norb_dir, write_matrix)
from .sdf_render import camera as _camera, smooth_union, trace

__all__ = ["FORMAT_VERSION", "LIGHTS", "SIZES", "instance_params", "render_views", "write_standin"]

FORMAT_VERSION = 1
SIDECAR = "_standin_factors.json"
# (azimuth relative to the camera in deg, elevation in deg, ambient level) of the 6 lightings
LIGHTS = ((-50, 45, 0.20), (50, 45, 0.20), (0, 75, 0.40), (-110, 20, 0.15), (110, 20, 0.15),
          (170, 60, 0.30))
STEREO_HALF_DEG = 3.0
HALF_WIDTH = 1.1      # the image spans [-1.1, 1.1]^2 world units; every toy fits in this radius
BACKGROUND = 0.5      # grey, in [0, 1]
STEPS, HIT_EPS = 48, 1e-3

# Factor grids per size, as indices into norb.ELEVATIONS_DEG / AZIMUTHS_DEG / LIGHTS.
SIZES = {
    "ci": {"image_size": 32, "elevations": (0, 4, 8), "azimuths": tuple(range(18)), "lightings": (0, 3)},
    "cpu": {"image_size": 96, "elevations": tuple(range(9)), "azimuths": tuple(range(18)),
            "lightings": tuple(range(6))},
}

# --- signed distances (the primitives live in .sdf_render, shared with the chairs stand-in) ------

def _sdf(parts, p, k=0.04):
    """The toy: a smooth union (blend radius ``k``) of its parts, so joints look moulded."""
    return smooth_union(parts, p, k)


# --- the five categories ------------------------------------------------------------------------

# Per category: name -> (low, high) of a uniform draw; drawn in this order, so adding a name at the
# end keeps the earlier draws (and toys) unchanged.
_JITTER = {
    "animal": {"length": (0.45, 0.62), "girth": (0.16, 0.23), "leg": (0.32, 0.45), "neck": (0.15, 0.32),
               "head": (0.11, 0.16), "tail": (0.18, 0.38), "snout": (0.05, 0.14)},
    "human": {"height": (0.85, 1.0), "shoulders": (0.17, 0.24), "girth": (0.09, 0.13),
              "head": (0.11, 0.14), "arm_spread": (0.05, 0.35), "stance": (0.04, 0.12)},
    "airplane": {"length": (0.8, 0.98), "radius": (0.07, 0.11), "span": (0.65, 0.88),
                 "chord": (0.12, 0.2), "sweep": (0.0, 0.45), "fin": (0.14, 0.26), "wing_x": (-0.05, 0.15)},
    "truck": {"length": (0.7, 0.85), "width": (0.26, 0.32), "box_height": (0.22, 0.32),
              "cab": (0.2, 0.28), "cab_height": (0.18, 0.26), "wheel": (0.11, 0.15)},
    "car": {"length": (0.6, 0.8), "width": (0.26, 0.33), "height": (0.09, 0.13), "cabin": (0.28, 0.45),
            "cabin_height": (0.09, 0.14), "cabin_x": (-0.12, 0.06), "wheel": (0.1, 0.14)},
}


def instance_params(category: int, instance: int, seed: int = 0) -> dict:
    """The jittered proportions, albedo and azimuth origin of one toy (plain floats, JSON-ready)."""
    rng = np.random.default_rng((seed, category, instance))
    name = CATEGORIES[category]
    out = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in _JITTER[name].items()}
    out["albedo"] = float(rng.uniform(0.7, 0.95))
    out["azimuth_origin_deg"] = float(rng.uniform(0, 360))
    return out


def _parts(category: int, j: dict) -> list:
    """The primitives of a toy with proportions ``j``: x forward, y left, z up, centred near 0."""
    name, parts = CATEGORIES[category], []
    if name == "animal":
        L, g, leg = j["length"], j["girth"], j["leg"]
        z0 = (leg - 0.1) / 2                          # lift the body so the legs' feet centre on 0
        parts.append(("ellipsoid", (0, 0, z0), (L, 0.85 * g, g)))
        for sx in (-1, 1):
            for sy in (-1, 1):
                top = (sx * 0.7 * L, sy * 0.5 * g, z0)
                parts.append(("capsule", top, (sx * 0.75 * L, sy * 0.55 * g, z0 - leg), 0.055))
        nx, hz = L + 0.05, z0 + 0.55 * g + j["neck"]
        parts.append(("capsule", (0.8 * L, 0, z0 + 0.3 * g), (nx, 0, hz), 0.07))
        parts.append(("ellipsoid", (nx + 0.05, 0, hz), (j["head"] + 0.02, 0.8 * j["head"], j["head"])))
        parts.append(("capsule", (nx + 0.05, 0, hz - 0.03), (nx + 0.1 + j["snout"], 0, hz - 0.06), 0.05))
        parts.append(("capsule", (-0.95 * L, 0, z0 + 0.3 * g), (-L - j["tail"], 0, z0 + 0.15), 0.035))
    elif name == "human":
        H, s, g = j["height"], j["shoulders"], j["girth"]
        hip, neck = -0.05 * H, 0.42 * H               # body spans about -H .. H in z
        parts.append(("box", (0, 0, (hip + neck) / 2 + 0.02), (g, s - 0.04, (neck - hip) / 2), 0.07, 0.0))
        hd = j["head"]
        parts.append(("ellipsoid", (0, 0, neck + 0.08 + hd), (0.9 * hd, 0.9 * hd, 1.15 * hd)))
        for sy in (-1, 1):
            spread = j["arm_spread"]
            parts.append(("capsule", (0, sy * s, neck - 0.03),
                          (0.04, sy * (s + spread * 0.9 + 0.03), neck - 0.5 * H + spread * 0.5), 0.05))
            parts.append(("capsule", (0, sy * 0.45 * s, hip),
                          (0.02, sy * (0.45 * s + j["stance"]), -H), 0.065))
    elif name == "airplane":
        L, r, span, c = j["length"], j["radius"], j["span"], j["chord"]
        parts.append(("ellipsoid", (0, 0, 0), (L, r, r * 1.1)))
        parts.append(("box", (j["wing_x"], 0, -0.3 * r), (c, span, 0.018), 0.015, j["sweep"]))
        parts.append(("box", (-0.82 * L, 0, 0.1 * r), (0.6 * c, 0.35 * span, 0.014), 0.012, j["sweep"]))
        parts.append(("box", (-0.82 * L + j["fin"] * 0.3, 0, r + j["fin"] / 2),
                      (0.5 * c, 0.015, j["fin"] / 2), 0.012, 0.0))
    elif name == "truck":
        L, w, bh, wr = j["length"], j["width"], j["box_height"], j["wheel"]
        floor = -0.4 + wr                              # wheels stand on z = -0.4
        cab_l, box_l = j["cab"], L - j["cab"] - 0.04
        ch = j["cab_height"]
        parts.append(("box", (L - cab_l, 0, floor + 0.06 + ch), (cab_l, 0.92 * w, ch), 0.05, 0.0))
        parts.append(("box", (-L + box_l, 0, floor + 0.06 + bh), (box_l, w, bh), 0.03, 0.0))
        parts.append(("box", (0, 0, floor + 0.03), (L, 0.8 * w, 0.05), 0.02, 0.0))   # chassis
        for x in (L - cab_l, -0.05 * L, -0.55 * L):
            for sy in (-1, 1):
                parts.append(("wheel", (x, sy * 0.9 * w, floor), wr, 0.05))
    elif name == "car":
        L, w, h, wr = j["length"], j["width"], j["height"], j["wheel"]
        z = -0.2 + wr + h * 0.5
        parts.append(("box", (0, 0, z), (L, w, h), 0.06, 0.0))
        parts.append(("box", (j["cabin_x"], 0, z + h + j["cabin_height"] * 0.9),
                      (j["cabin"], 0.85 * w, j["cabin_height"]), 0.07, 0.0))
        for x in (-0.62 * L, 0.62 * L):
            for sy in (-1, 1):
                parts.append(("wheel", (x, sy * 0.92 * w, -0.2 + wr), wr, 0.05))
    return parts


# --- rendering --------------------------------------------------------------------------------

def _geometry(parts, views, size: int):
    """Trace one batch of views. ``views`` is a list of (elevation, camera azimuth) in degrees.

    Returns ``coverage`` (V, S, S) float in [0, 1] and ``normals`` (3, V, S, S) (zero off the toy).
    """
    found = trace(lambda p: _sdf(parts, p), views, size, HALF_WIDTH, STEPS, HIT_EPS)
    return found.coverage, found.normals


def _shade(cov, normals, albedo: float, light_dirs, ambients) -> np.ndarray:
    """Images ``(V, L, S, S)`` uint8 from the geometry; ``light_dirs`` is (V, L, 3) world vectors."""
    # n.L written out (not einsum) so that only + and * touch the pixels: the same bytes everywhere
    lam = sum(light_dirs[:, :, k, None, None] * normals[k][:, None] for k in range(3))
    amb = np.asarray(ambients)[None, :, None, None]
    val = albedo * (amb + (1 - amb) * np.maximum(lam, 0))
    c = cov[:, None]
    return np.round(255 * (c * val + (1 - c) * BACKGROUND)).astype(np.uint8)


def _light_dirs(turntable_deg: float, lightings) -> np.ndarray:
    """(L, 3) unit vectors towards the lights for one turntable angle (lights fixed in the room:
    the camera arm moves in elevation, the lights do not, so their elevation is absolute)."""
    return np.array([_camera(LIGHTS[k][1], turntable_deg + LIGHTS[k][0])[0] for k in lightings])


def _render_block(category, instance, seed, elevs_deg, azs_deg, lightings, size, cam_offsets):
    """All views of one toy: ``(E, A, L, C, S, S)`` uint8 for ``C = len(cam_offsets)`` cameras."""
    j = instance_params(category, instance, seed)
    parts, origin = _parts(category, j), j["azimuth_origin_deg"]
    E, A, C = len(elevs_deg), len(azs_deg), len(cam_offsets)
    out = np.empty((E, A, len(lightings), C, size, size), np.uint8)
    ambients = [LIGHTS[k][2] for k in lightings]
    for ei, elev in enumerate(elevs_deg):              # one trace per elevation: A x C views
        views = [(elev, az + origin + off) for az in azs_deg for off in cam_offsets]
        cov, normals = _geometry(parts, views, size)
        lights = np.stack([_light_dirs(az + origin, lightings) for az in azs_deg for _ in cam_offsets])
        img = _shade(cov, normals, j["albedo"], lights, ambients)           # (A*C, L, S, S)
        out[ei] = img.reshape(A, C, len(lightings), size, size).transpose(0, 2, 1, 3, 4)
    return out


def render_views(category: int, instance: int, elevations_deg, azimuths_deg, size: int = 96,
                 seed: int = 0, lightings=tuple(range(6)), camera: str = "left") -> np.ndarray:
    """A few views of one toy without writing files: ``(E, A, L, size, size)`` uint8.

    ``azimuths_deg`` are nominal (before the toy's own azimuth origin), as in the files; ``camera``
    is ``"left"`` or ``"right"`` of the stereo pair (``dat[:, 0]`` / ``dat[:, 1]``) or ``"centre"``.
    """
    off = {"left": -STEREO_HALF_DEG, "right": STEREO_HALF_DEG, "centre": 0.0}[camera]
    out = _render_block(category, instance, seed, list(elevations_deg), list(azimuths_deg),
                        tuple(lightings), size, (off,))
    return out[:, :, :, 0]


# --- writing the six files --------------------------------------------------------------------

def _render_task(args):
    category, instance, seed, grid = args
    return _render_block(category, instance, seed, [ELEVATIONS_DEG[e] for e in grid["elevations"]],
                         [AZIMUTHS_DEG[a] for a in grid["azimuths"]], grid["lightings"],
                         grid["image_size"], (-STEREO_HALF_DEG, STEREO_HALF_DEG))


def _sidecar(size: str, seed: int) -> dict:
    grid = SIZES[size]
    return {
        "format_version": FORMAT_VERSION, "size": size, "seed": seed, "image_size": grid["image_size"],
        "elevation_indices": list(grid["elevations"]), "azimuth_indices": list(grid["azimuths"]),
        "lighting_indices": list(grid["lightings"]),
        "elevations_deg": [ELEVATIONS_DEG[e] for e in grid["elevations"]],
        "azimuths_deg": [AZIMUTHS_DEG[a] for a in grid["azimuths"]],
        "lights": [{"azimuth_rel_deg": a, "elevation_deg": e, "ambient": amb} for a, e, amb in LIGHTS],
        "stereo_azimuth_offsets_deg": [-STEREO_HALF_DEG, STEREO_HALF_DEG],
        "view_half_width": HALF_WIDTH, "background": BACKGROUND,
        "categories": list(CATEGORIES),
        "splits": {"training": list(TRAIN_INSTANCES), "testing": list(TEST_INSTANCES)},
        "instances": {name: {str(i): instance_params(c, i, seed) for i in range(10)}
                      for c, name in enumerate(CATEGORIES)},
    }


# sidecar keys that must match for existing files to count as this call's output
_SAME_DATA = ("format_version", "size", "seed", "image_size", "elevation_indices", "azimuth_indices",
              "lighting_indices")


def write_standin(root, size: str = "cpu", seed: int = 0, progress: bool = True,
                  workers: int | None = None) -> Path:
    """Render the stand-in of ``size`` and write both splits' six files under ``norb_dir(root)``.

    Records are sorted by (category, instance, elevation, azimuth, lighting). Returns the folder.
    Does nothing if the files and a sidecar with the same size, seed and format version are there.
    ``workers`` processes render one toy each (default: one per CPU, at most 8).
    """
    if size not in SIZES:
        raise ValueError(f"unknown stand-in size {size!r}; choose one of {sorted(SIZES)}")
    folder = norb_dir(root)
    side = folder / SIDECAR
    want = _sidecar(size, seed)
    if side.exists() and all((folder / file_name(s, k)).exists() for s in SPLITS for k in KINDS):
        try:
            have = json.loads(side.read_text())
        except ValueError:  # a damaged sidecar vouches for nothing
            have = {}
        if all(have.get(k) == want[k] for k in _SAME_DATA):
            return folder
    grid, S = SIZES[size], SIZES[size]["image_size"]
    # the factor columns of one toy, in record order (elevation, azimuth, lighting)
    e, a, l = np.meshgrid(grid["elevations"], grid["azimuths"], grid["lightings"], indexing="ij")
    pose = np.stack([e.ravel(), 2 * a.ravel(), l.ravel()], 1).astype(np.int32)
    toys = {"training": [(c, i) for c in range(len(CATEGORIES)) for i in TRAIN_INSTANCES],
            "testing": [(c, i) for c in range(len(CATEGORIES)) for i in TEST_INSTANCES]}
    tasks = [(c, i, seed, grid) for split in SPLITS for c, i in toys[split]]
    # An old sidecar must not vouch for files this call is about to replace.
    side.unlink(missing_ok=True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = workers or min(cpus, 8)
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    results = pool.map(_render_task, tasks) if pool else map(_render_task, tasks)
    bar = tqdm(total=len(tasks), desc=f"smallNORB stand-in ({size})", disable=not progress)
    try:
        for split in SPLITS:   # results come in task order: one split at a time, to halve the memory
            n = len(pose)
            dat = np.empty((len(toys[split]) * n, 2, S, S), np.uint8)
            for k in range(len(toys[split])):
                dat[k * n:(k + 1) * n] = next(results).reshape(n, 2, S, S)
                bar.update()
            cat = np.repeat([c for c, _ in toys[split]], n).astype(np.int32)
            info = np.concatenate([np.column_stack([np.full(n, i, np.int32), pose]) for _, i in toys[split]])
            write_matrix(folder / file_name(split, "dat"), dat)
            write_matrix(folder / file_name(split, "cat"), cat)
            write_matrix(folder / file_name(split, "info"), info)
            del dat
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    # the sidecar goes last: its presence says the six files are complete
    atomic_write(side, lambda f: f.write(json.dumps(want, indent=1).encode()))
    return folder
