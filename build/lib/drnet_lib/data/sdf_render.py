"""A small numpy renderer for the procedural stand-ins: signed distances and sphere tracing.

Shared by the smallNORB stand-in (:mod:`.norb_standin`) and the chairs stand-in
(:mod:`.chairs_standin`); reference/datasets.md §6.2 and §6.5 describe the method.

* **Shapes** are unions of analytic primitives (:func:`sdf_part`): capsules, ellipsoids, rounded
  boxes (optionally swept), wheels, and boxes tilted about the y axis. A shape is a list of parts;
  :func:`smooth_union` blends them with a small radius so joints look moulded.
* **Camera** (:func:`camera`): orthographic, on a sphere round the origin, Z up. Azimuth 0 looks
  along -x (the camera sits on +x), azimuth 90 deg sits on +y.
* **Tracing** (:func:`trace`): rays start on the bounding sphere of radius ``half_width`` (rays
  that miss the sphere are skipped), take at most ``steps`` sphere-tracing steps, and only the live
  rays are evaluated. Normals come from central differences of the distance. A missed ray's
  closest pass gives an anti-aliasing coverage (0.5 minus that distance in pixels, clipped to
  [0, 1]), which also keeps thin parts visible at low resolution.

A point set is a tuple ``(x, y, z)`` of equally shaped float arrays. Camera trigonometry uses scalar
:mod:`math`, and the pixels see only + - * / sqrt, abs, min and max (exactly rounded in IEEE
arithmetic), so the bytes do not depend on numpy's SIMD code paths, the platform or the worker
count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Trace", "camera", "len3", "sdf_part", "smooth_union", "trace"]


def len3(x, y, z):
    """Euclidean length of the vectors ``(x, y, z)``."""
    return np.sqrt(x * x + y * y + z * z)


def _rounded_box(qx, qy, qz, rnd):
    """Distance to a box given per-axis ``|p - c| - half + rnd``, rounded by ``rnd``."""
    out = len3(np.maximum(qx, 0), np.maximum(qy, 0), np.maximum(qz, 0))
    return out + np.minimum(np.maximum(qx, np.maximum(qy, qz)), 0) - rnd


def sdf_part(part, p):
    """Signed distance from the points ``p`` to one primitive (negative inside).

    ``part`` is ``(kind, *args)``:

    * ``("capsule", a, b, r)``: the segment ``a -> b`` thickened by radius ``r``;
    * ``("ellipsoid", centre, radii)``: the usual bound ``k0 (k0 - 1) / k1`` (not exact);
    * ``("box", centre, half_sizes, rounding, sweep)``: a rounded box whose x is shifted by
      ``sweep * |y - cy|`` (swept wings; 0 for a plain box);
    * ``("wheel", centre, radius, half_width)``: a rounded cylinder with its axis along y;
    * ``("tilted_box", centre, half_sizes, rounding, tilt)``: a rounded box turned by ``tilt``
      radians about the y axis through its centre; a positive tilt leans its top towards -x.
    """
    kind, a = part[0], part[1:]
    x, y, z = p
    if kind == "capsule":
        (ax, ay, az), (bx, by, bz), r = a
        px, py, pz, ux, uy, uz = x - ax, y - ay, z - az, bx - ax, by - ay, bz - az
        h = np.clip((px * ux + py * uy + pz * uz) / (ux * ux + uy * uy + uz * uz), 0, 1)
        return len3(px - ux * h, py - uy * h, pz - uz * h) - r
    if kind == "ellipsoid":
        (cx, cy, cz), (rx, ry, rz) = a
        qx, qy, qz = (x - cx) / rx, (y - cy) / ry, (z - cz) / rz
        k0 = len3(qx, qy, qz)
        return k0 * (k0 - 1) / (len3(qx / rx, qy / ry, qz / rz) + 1e-6)
    if kind == "box":
        (cx, cy, cz), (hx, hy, hz), rnd, sweep = a
        qy = np.abs(y - cy) - hy + rnd
        qx = np.abs(x - cx + sweep * np.abs(y - cy)) - hx + rnd
        qz = np.abs(z - cz) - hz + rnd
        out = len3(np.maximum(qx, 0), np.maximum(qy, 0), np.maximum(qz, 0))
        # the shear is not an isometry: dividing by its stretch keeps the distance a lower bound
        d = out + np.minimum(np.maximum(qx, np.maximum(qy, qz)), 0) - rnd
        return d / math.sqrt(1 + sweep * sweep)
    if kind == "wheel":
        (cx, cy, cz), r, hw = a
        rnd = 0.3 * hw
        qr = np.sqrt((x - cx) ** 2 + (z - cz) ** 2) - r + rnd
        qw = np.abs(y - cy) - hw + rnd
        out = np.sqrt(np.maximum(qr, 0) ** 2 + np.maximum(qw, 0) ** 2)
        return out + np.minimum(np.maximum(qr, qw), 0) - rnd
    if kind == "tilted_box":
        (cx, cy, cz), (hx, hy, hz), rnd, tilt = a
        cs, sn = math.cos(tilt), math.sin(tilt)          # scalars: the pixels only see + and *
        dx, dz = x - cx, z - cz
        lx, lz = cs * dx + sn * dz, cs * dz - sn * dx    # into the box's frame (an isometry)
        return _rounded_box(np.abs(lx) - hx + rnd, np.abs(y - cy) - hy + rnd,
                            np.abs(lz) - hz + rnd, rnd)
    raise ValueError(f"unknown primitive {kind!r}")


def smooth_union(parts, p, k: float):
    """The union of ``parts`` at the points ``p``, blended over a radius ``k`` (polynomial smooth
    minimum, folded left to right, so the part order matters in the last bits)."""
    d = sdf_part(parts[0], p)
    for part in parts[1:]:
        e = sdf_part(part, p)
        h = np.maximum(k - np.abs(d - e), 0) / k
        d = np.minimum(d, e) - h * h * (k / 4)
    return d


def camera(elev_deg: float, az_deg: float):
    """Unit vectors (towards the camera, right, up) for a camera at this elevation/azimuth."""
    e, a = math.radians(elev_deg), math.radians(az_deg)
    c = (math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e))
    r = (-math.sin(a), math.cos(a), 0.0)           # (-c) x z, normalised
    u = (c[1] * r[2] - c[2] * r[1], c[2] * r[0] - c[0] * r[2], c[0] * r[1] - c[1] * r[0])  # c x r
    return c, r, u


@dataclass
class Trace:
    """What :func:`trace` found for ``V`` views of ``S x S`` pixels.

    ``coverage`` ``(V, S, S)`` in [0, 1]; ``normals`` ``(3, V, S, S)`` unit vectors; ``points``
    ``(3, V, S, S)``, the hit (or closest-pass) point of each ray. Both are zero where the
    coverage is.
    """

    coverage: np.ndarray
    normals: np.ndarray
    points: np.ndarray


def trace(sdf: Callable, views, size: int, half_width: float, steps: int = 48,
          hit_eps: float = 1e-3) -> Trace:
    """Sphere-trace one batch of views of the shape whose signed distance is ``sdf(p)``.

    ``views`` is a list of (elevation, camera azimuth) in degrees; the image spans
    ``[-half_width, half_width]^2`` world units, and the shape must lie inside the sphere of that
    radius round the origin. Rays march in float32; hit points and normals are float64.
    """
    V, S, R = len(views), size, half_width
    pix = 2 * R / S
    grid = (np.arange(S, dtype=np.float64) + 0.5) * pix - R
    sx, sy = np.meshgrid(grid, -grid)                  # image x to the right, row 0 at the top
    inside = sx * sx + sy * sy < R * R                 # rays outside the bounding sphere cannot hit
    xs, ys = sx[inside], sy[inside]
    half_chord = np.sqrt(R * R - xs * xs - ys * ys)    # the ray's run inside the bounding sphere
    org, dirs = [], []
    for elev, az in views:                             # ray origins on the bounding sphere
        c, r, u = camera(elev, az)
        org.append(np.stack([c[i] * half_chord + r[i] * xs + u[i] * ys for i in range(3)]))
        dirs.append(np.broadcast_to(np.array([-v for v in c])[:, None], (3, xs.size)))
    org = np.concatenate(org, 1).astype(np.float32)
    dirs = np.concatenate(dirs, 1).astype(np.float32)
    tmax = np.tile(2 * half_chord, V).astype(np.float32)
    M = org.shape[1]
    t = np.zeros(M, np.float32)
    dmin, tbest = np.full(M, np.inf, np.float32), np.zeros(M, np.float32)
    hit = np.zeros(M, bool)
    live = np.arange(M)
    for _ in range(steps):                             # sphere tracing over the live rays only
        tl = t[live]
        d = sdf(tuple(org[i, live] + tl * dirs[i, live] for i in range(3)))
        closer = d < dmin[live]
        dmin[live[closer]], tbest[live[closer]] = d[closer], tl[closer]
        done = d < hit_eps
        hit[live[done]] = True
        t[live] = tl + d
        live = live[~done & (tl + d < tmax[live])]
        if live.size == 0:
            break
    # coverage: 1 on a hit, else falls off over half a pixel from the nearest pass
    cov = np.where(hit, 1.0, np.clip(0.5 - dmin / pix, 0, 1))
    on = np.flatnonzero(cov > 0)
    p = [(org[i, on] + tbest[on] * dirs[i, on]).astype(np.float64) for i in range(3)]
    grad, h = [], 1e-3                                 # central differences, in float64
    for i in range(3):
        plus, minus = list(p), list(p)
        plus[i], minus[i] = p[i] + h, p[i] - h
        grad.append(sdf(tuple(plus)) - sdf(tuple(minus)))
    norm = len3(*grad) + 1e-12
    normals, points = np.zeros((3, M)), np.zeros((3, M))
    for i in range(3):
        normals[i, on] = grad[i] / norm
        points[i, on] = p[i]
    full_cov = np.zeros((V, S, S))
    full_cov[:, inside] = cov.reshape(V, -1)
    full_n, full_p = np.zeros((3, V, S, S)), np.zeros((3, V, S, S))
    full_n[:, :, inside] = normals.reshape(3, V, -1)
    full_p[:, :, inside] = points.reshape(3, V, -1)
    return Trace(full_cov, full_n, full_p)
