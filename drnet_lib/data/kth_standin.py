"""A procedural stand-in for KTH, written in the real on-disk layout (reference/datasets.md §6.3).

Articulated 2D figures do KTH's six actions in front of four kinds of background, and are written
as KTH's files: ``kth/raw/<action>/personXX_<action>_dY_uncomp.avi`` (160x120, 25 fps, grey in
MJPG, via PyAV) and ``kth/00sequences.txt`` in the real format, so the real converter
(:func:`.kth.convert`) and loader run unchanged on them.

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
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..checkpoint import atomic_write
from .kth import ACTIONS, VIDEO_SUFFIX, avi_path, kth_dir, sequences_path

__all__ = ["FORMAT_VERSION", "SIDECAR", "SIZES", "person_params", "render_video", "video_plan",
           "write_standin"]

FORMAT_VERSION = 1
SIDECAR = "_standin_factors.json"
WIDTH, HEIGHT, FPS = 160, 120, 25
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

# --- persons ------------------------------------------------------------------------------------

_TEXTURES = ("plain", "stripes", "checks")


def _outfit(rng) -> dict:
    def tone():  # clothes contrast with the mid-grey outdoor grounds: mostly dark or light
        return float(rng.uniform(0.06, 0.3) if rng.random() < 0.55 else rng.uniform(0.68, 0.95))
    shirt = tone()
    trousers = tone() if rng.random() < 0.7 else float(np.clip(shirt + rng.uniform(-0.2, 0.2), 0.05, 0.95))
    return {"shirt": shirt, "trousers": trousers, "shoes": float(rng.uniform(0.03, 0.2)),
            "texture": _TEXTURES[int(rng.integers(3))], "texture_amp": float(rng.uniform(0.12, 0.25)),
            "texture_period": float(rng.uniform(3.5, 7.0)), "coat": bool(rng.random() < 0.3),
            "long_sleeves": bool(rng.random() < 0.6)}


def person_params(person: int, seed: int = 0) -> dict:
    """The look and gait jitter of one person (plain floats, JSON-ready)."""
    rng = np.random.default_rng((seed, person))
    p = {
        "height": float(rng.uniform(50.0, 62.0)),          # px, feet to top of head, at zoom 1
        "torso": float(rng.uniform(0.072, 0.1)),            # torso radius / height (side view)
        "limb": float(rng.uniform(0.85, 1.2)),              # limb thickness factor
        "head": float(rng.uniform(0.058, 0.072)),           # head radius / height
        "skin": float(rng.uniform(0.5, 0.8)),
        "hair": float(rng.uniform(0.05, 0.35)),
        "speed": float(rng.uniform(0.9, 1.1)),
        "cadence": float(rng.uniform(0.9, 1.1)),
        "swing": float(rng.uniform(0.85, 1.15)),
        "facing": int(rng.choice([-1, 1])),                 # boxing: which way the person faces
        "lead": int(rng.choice([-1, 1])),                   # walking: first crossing direction
    }
    p["outfits"] = [_outfit(rng), _outfit(rng)]            # d3 wears the second
    return p


# --- backgrounds --------------------------------------------------------------------------------

def _smooth_noise(rng, shape, cell: int) -> np.ndarray:
    """Value noise: a random grid of ``cell``-px cells, bilinearly upsampled to ``shape``."""
    gh, gw = shape[0] // cell + 2, shape[1] // cell + 2
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    y = np.arange(shape[0], dtype=np.float32) / cell
    x = np.arange(shape[1], dtype=np.float32) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)       # smoothstep between cells
    g00, g01 = grid[y0][:, x0], grid[y0][:, x0 + 1]
    g10, g11 = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy


def _background(person: int, scenario: int, seed: int) -> tuple[np.ndarray, float]:
    """``(HEIGHT, WIDTH)`` float32 in [0, 1] and the ground line (y of the feet) of one place."""
    rng = np.random.default_rng((seed, person, scenario, 7))
    yy = np.arange(HEIGHT, dtype=np.float32)[:, None]
    if scenario == 4:                                        # indoors: flat wall, floor, skirting
        wall = float(rng.uniform(0.62, 0.82))
        floor_y = float(rng.uniform(88, 100))
        img = np.full((HEIGHT, WIDTH), wall, np.float32) + 0.02 * (yy / HEIGHT - 0.5)
        img += 0.006 * _smooth_noise(rng, (HEIGHT, WIDTH), 40)
        floor = wall + float(rng.choice([-1, 1])) * float(rng.uniform(0.12, 0.2))
        img = np.where(yy >= floor_y, floor + 0.03 * (yy - floor_y) / HEIGHT, img)
        img[int(floor_y) - 1:int(floor_y) + 1] = wall - 0.25
        ground = float(rng.uniform(floor_y + 6, 110))
    else:                                                    # outdoors: sky, tree line, grass
        horizon = float(rng.uniform(14, 32))
        sky = float(rng.uniform(0.78, 0.92))
        ground_level = float(rng.uniform(0.42, 0.58))
        grass = (ground_level + 0.07 * _smooth_noise(rng, (HEIGHT, WIDTH), 24)
                 + 0.05 * _smooth_noise(rng, (HEIGHT, WIDTH), 7)
                 + 0.035 * _smooth_noise(rng, (HEIGHT, WIDTH), 2))
        grass += 0.06 * (yy - horizon) / HEIGHT                     # lighter towards the camera
        tree_top = horizon - 8 - 10 * (0.5 + 0.5 * _smooth_noise(rng, (1, WIDTH), 12))
        trees = float(rng.uniform(0.22, 0.38)) + 0.06 * _smooth_noise(rng, (HEIGHT, WIDTH), 4)
        img = np.where(yy < tree_top, sky - 0.04 * yy / HEIGHT, np.where(yy < horizon, trees, grass))
        ground = float(rng.uniform(98, 110))
    return np.clip(img, 0, 1).astype(np.float32), ground


# --- motion programs ----------------------------------------------------------------------------

# stride/cycle frequency (Hz), speed (heights per second), hip swing (rad), knee bend (rad),
# arm swing (rad), elbow bend (rad), forward lean (rad)
_GAITS = {
    "walking": {"freq": 1.25, "speed": 1.15, "hip": 0.45, "knee": 0.75, "knee0": 0.08, "arm": 0.38,
                "elbow": 0.3, "lean": 0.04},
    "jogging": {"freq": 1.45, "speed": 1.6, "hip": 0.62, "knee": 1.3, "knee0": 0.3, "arm": 0.5,
                "elbow": 1.45, "lean": 0.13},
    "running": {"freq": 1.6, "speed": 2.1, "hip": 0.85, "knee": 1.7, "knee0": 0.35, "arm": 0.8,
                "elbow": 1.6, "lean": 0.25},
}
_IN_PLACE = {"boxing": (1.25, (2, 3)), "handwaving": (1.2, (2, 3)), "handclapping": (2.2, (4, 5))}


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _side_limb(root, angle, bend, l1, l2, facing):
    """Joint positions of a two-segment limb hanging from ``root`` (angles from straight down,
    positive towards ``facing``); returns (middle joint, end)."""
    a2 = angle + bend
    mid = (root[0] + facing * l1 * math.sin(angle), root[1] + l1 * math.cos(angle))
    end = (mid[0] + facing * l2 * math.sin(a2), mid[1] + l2 * math.cos(a2))
    return mid, end


def _side_pose(x, ground, H, facing, lean, legs, arms, bounce=0.0):
    """Capsule skeleton of a figure seen from the side. ``legs``/``arms``: ((angle, bend) far,
    (angle, bend) near); knees bend backwards (negative), elbows forwards."""
    thigh, shin, upper, fore = 0.25 * H, 0.245 * H, 0.165 * H, 0.16 * H
    # the pelvis sits so that the lower ankle touches the ground
    drop = max(thigh * math.cos(a) + shin * math.cos(a - b) for a, b in legs)
    pelvis = (x, ground - 0.03 * H - drop - bounce)
    up = (facing * math.sin(lean), -math.cos(lean))
    neck = (pelvis[0] + 0.3 * H * up[0], pelvis[1] + 0.3 * H * up[1])
    shoulder = (neck[0] - 0.03 * H * up[0], neck[1] - 0.03 * H * up[1])
    head = (neck[0] + 0.1 * H * up[0] + facing * 0.01 * H, neck[1] + 0.1 * H * up[1])
    pose = {"pelvis": pelvis, "neck": neck, "shoulder": shoulder, "head": head, "legs": [], "arms": []}
    for a, b in legs:
        knee, ankle = _side_limb(pelvis, a, -b, thigh, shin, facing)
        toe = (ankle[0] + facing * 0.075 * H, ankle[1] + 0.01 * H)
        pose["legs"].append((knee, ankle, toe))
    for a, b in arms:
        elbow, hand = _side_limb(shoulder, a, b, upper, fore, facing)
        pose["arms"].append((elbow, hand))
    return pose


def _front_pose(x, ground, H, arms):
    """Capsule skeleton of a figure facing the camera. ``arms``: ((elbow, hand) offsets of the
    right arm from its shoulder, in heights; the left arm mirrors it)."""
    pelvis = (x, ground - 0.03 * H - 0.49 * H)
    neck = (x, pelvis[1] - 0.3 * H)
    pose = {"pelvis": pelvis, "neck": neck, "head": (x, neck[1] - 0.1 * H), "legs": [], "arms": [],
            "shoulders": []}
    for side in (-1, 1):
        hip = (x + side * 0.055 * H, pelvis[1])
        ankle = (x + side * 0.07 * H, ground - 0.03 * H)
        knee = ((hip[0] + ankle[0]) / 2, (hip[1] + ankle[1]) / 2)
        pose["legs"].append((hip, knee, ankle, (ankle[0] + side * 0.03 * H, ankle[1] + 0.01 * H)))
        shoulder = (x + side * 0.105 * H, neck[1] + 0.035 * H)
        (ex, ey), (hx, hy) = arms
        pose["shoulders"].append(shoulder)
        pose["arms"].append((shoulder, (shoulder[0] + side * ex * H, shoulder[1] + ey * H),
                             (shoulder[0] + side * hx * H, shoulder[1] + hy * H)))
    return pose


def _gait_pose(action, t, x, ground, H, facing, pp):
    g = _GAITS[action]
    phi = 2 * math.pi * g["freq"] * pp["cadence"] * t
    legs, arms = [], []
    for k in (0, 1):                                      # far limbs first
        ph = phi + k * math.pi
        hip = g["hip"] * pp["swing"] * math.sin(ph)
        knee = g["knee0"] + g["knee"] * max(0.0, math.sin(ph + 1.2)) ** 1.5
        legs.append((hip, knee))
        arm = -g["arm"] * pp["swing"] * math.sin(ph)
        arms.append((arm + 0.3 * g["elbow"] / 1.6, g["elbow"] * (0.8 + 0.2 * math.cos(ph))))
    bounce = (0.02 if action == "walking" else 0.05) * H * abs(math.cos(phi))
    return _side_pose(x, ground, H, facing, g["lean"], legs, arms, bounce)


def _boxing_pose(t, env, x, ground, H, facing, pp):
    f = _IN_PLACE["boxing"][0] * pp["cadence"]
    legs = [(-0.22, 0.25), (0.28, 0.3)]                   # stance: back leg far, front leg near
    arms = []
    for k in (0, 1):
        punch = env * max(0.0, math.sin(2 * math.pi * f * t + k * math.pi)) ** 2
        shoulder_angle = 0.55 + (1.5 - 0.55) * punch          # guard: upper arm forward-down
        elbow = 2.25 + (0.08 - 2.25) * punch                  # guard: fist up by the chin
        arms.append((shoulder_angle, elbow))
    guard_lean = 0.06 + 0.06 * env
    return _side_pose(x, ground, H, facing, guard_lean, legs, arms,
                      0.012 * H * math.sin(4 * math.pi * f * t) * env)


def _waving_pose(t, env, x, ground, H, pp):
    f = _IN_PLACE["handwaving"][0] * pp["cadence"]
    lift = 0.5 - 0.5 * math.cos(2 * math.pi * f * t)        # 0: arms out level, 1: overhead
    up = 1.75 + 1.05 * lift                                   # upper arm angle from straight down
    fore = up + 0.25 - 0.35 * lift
    rest = (0.14, 0.0)
    a1 = rest[0] + env * (up - rest[0])
    a2 = rest[0] + env * (fore - rest[0])
    el = (0.165 * math.sin(a1), 0.165 * math.cos(a1))
    hand = (el[0] + 0.16 * math.sin(a2), el[1] + 0.16 * math.cos(a2))
    return _front_pose(x, ground, H, (el, hand))


def _clapping_pose(t, env, x, ground, H, pp):
    f = _IN_PLACE["handclapping"][0] * pp["cadence"]
    gap = 0.5 - 0.5 * math.cos(2 * math.pi * f * t)         # 0: hands together
    rest_el, rest_hand = (0.035, 0.165), (0.045, 0.32)
    clap_el = (0.09 + 0.03 * gap, 0.13)
    clap_hand = (-0.105 + 0.025 + 0.2 * gap, 0.1 - 0.03 * gap)  # from the shoulder (x outwards)
    el = tuple(r + env * (c - r) for r, c in zip(rest_el, clap_el))
    hand = tuple(r + env * (c - r) for r, c in zip(rest_hand, clap_hand))
    return _front_pose(x, ground, H, (el, hand))


# --- the timeline of one video ------------------------------------------------------------------

def video_plan(person: int, action: int, scenario: int, reps: int = 4, time_scale: float = 1.6,
               seed: int = 0) -> dict:
    """Everything random about one video, drawn from its own generator (JSON-ready)."""
    rng = np.random.default_rng((seed, person, action, scenario))
    name = ACTIONS[action]
    plan = {"reps": reps, "time_scale": time_scale, "zoom": None}
    if scenario == 2:
        plan["zoom"] = {"period_s": float(rng.uniform(4.0, 7.0)), "phase": float(rng.uniform(0, 2 * math.pi)),
                        "amount": float(rng.uniform(0.25, 0.4))}
    if name in _GAITS:
        plan["gaps_s"] = [float(rng.uniform(0.2, 0.5)) for _ in range(reps)]
        plan["enter_s"] = float(rng.uniform(0.0, 0.15))
    else:
        _, (lo, hi) = _IN_PLACE[name]
        plan["cycles"] = [int(rng.integers(lo, hi + 1)) for _ in range(reps)]
        plan["idle_s"] = [float(rng.uniform(0.0, 0.4)) if rng.random() < 0.7 else 0.0
                          for _ in range(reps - 1)] + [float(rng.uniform(0.1, 0.3))]
        plan["x"] = float(rng.uniform(62, 98))
    plan["noise_seed"] = int(rng.integers(2**31))
    return plan


class _Painter:
    """Paints anti-aliased capsules onto a float frame, in pixel space after the zoom."""

    def __init__(self):
        self.ys = np.arange(HEIGHT, dtype=np.float32)[:, None]
        self.xs = np.arange(WIDTH, dtype=np.float32)[None, :]

    def begin(self, img, zoom):
        self.img, self.zoom = img, zoom
        self.c = (WIDTH / 2, HEIGHT / 2)

    def to_px(self, p):
        return (self.c[0] + self.zoom * (p[0] - self.c[0]), self.c[1] + self.zoom * (p[1] - self.c[1]))

    def capsule(self, a, b, r, value, tex=None):
        z = self.zoom
        (ax, ay), (bx, by) = self.to_px(a), self.to_px(b)
        r = r * z
        x0, x1 = max(int(min(ax, bx) - r - 1), 0), min(int(max(ax, bx) + r + 2), WIDTH)
        y0, y1 = max(int(min(ay, by) - r - 1), 0), min(int(max(ay, by) + r + 2), HEIGHT)
        if x0 >= x1 or y0 >= y1:
            return
        X, Y = self.xs[:, x0:x1] - ax, self.ys[y0:y1] - ay
        dx, dy = bx - ax, by - ay
        L2 = dx * dx + dy * dy
        t = np.clip((X * dx + Y * dy) / L2, 0, 1) if L2 > 1e-9 else np.zeros((y1 - y0, x1 - x0), np.float32)
        ex, ey = X - t * dx, Y - t * dy
        cov = np.clip(r + 0.5 - np.sqrt(ex * ex + ey * ey), 0, 1)
        val = value
        if tex is not None and tex["texture"] != "plain" and L2 > 1e-9:
            L = math.sqrt(L2)
            period = tex["texture_period"] * z
            along = np.sin(2 * math.pi * t * L / period)
            if tex["texture"] == "checks":
                across = np.sin(2 * math.pi * (X * -dy + Y * dx) / L / period)
                along = np.sign(along * across) * 0.8
            val = value + tex["texture_amp"] * along * (1 if value < 0.5 else -1)
        sub = self.img[y0:y1, x0:x1]
        sub += cov * (val - sub)

    def bbox(self, points, pad):
        px = [self.to_px(p) for p in points]
        xs, ys = [p[0] for p in px], [p[1] for p in px]
        pad = pad * self.zoom
        return min(xs) - pad, max(xs) + pad, min(ys) - pad, max(ys) + pad


def _draw_side(paint, pose, H, pp, outfit):
    limb = pp["limb"]
    shirt, trousers, shoes, skin = outfit["shirt"], outfit["trousers"], outfit["shoes"], pp["skin"]
    sleeve = shirt if outfit["long_sleeves"] else skin
    for k, ((knee, ankle, toe), (elbow, hand)) in enumerate(zip(pose["legs"], pose["arms"])):
        shade = 0.8 if k == 0 else 1.0                   # the far side is in shadow
        if k == 1:                                       # body between far and near limbs
            # a coat reaches down over the thighs: the trunk just starts lower
            low = (pose["pelvis"][0], pose["pelvis"][1] + (0.12 * H if outfit["coat"] else 0.0))
            paint.capsule(low, pose["neck"], pp["torso"] * H, shirt, outfit)
            paint.capsule(pose["neck"], pose["head"], 0.035 * H, skin)
            paint.capsule(pose["head"], pose["head"], pp["head"] * H, skin)
            back = (pose["head"][0] - 0.3 * pp["head"] * H * (1 if toe[0] > ankle[0] else -1),
                    pose["head"][1] - 0.38 * pp["head"] * H)
            paint.capsule(back, back, 0.72 * pp["head"] * H, pp["hair"])
        paint.capsule(pose["pelvis"], knee, 0.05 * H * limb, trousers * shade)
        paint.capsule(knee, ankle, 0.04 * H * limb, trousers * shade)
        paint.capsule(ankle, toe, 0.025 * H * limb, shoes)
        paint.capsule(pose["shoulder"], elbow, 0.036 * H * limb, shirt * shade, outfit)
        paint.capsule(elbow, hand, 0.03 * H * limb, sleeve * shade, outfit)
        paint.capsule(hand, hand, 0.035 * H * limb, skin * shade)


def _draw_front(paint, pose, H, pp, outfit):
    limb = pp["limb"]
    shirt, trousers, shoes, skin = outfit["shirt"], outfit["trousers"], outfit["shoes"], pp["skin"]
    sleeve = shirt if outfit["long_sleeves"] else skin
    for hip, knee, ankle, toe in pose["legs"]:
        paint.capsule(hip, knee, 0.052 * H * limb, trousers)
        paint.capsule(knee, ankle, 0.043 * H * limb, trousers)
        paint.capsule(ankle, toe, 0.03 * H * limb, shoes)
    w = pp["torso"] * H * 0.55
    for side in (-1, 1):                                  # a broad trunk: two capsules side by side
        top = (pose["neck"][0] + side * w, pose["neck"][1] + 0.04 * H)
        bottom = (pose["pelvis"][0] + side * w * 0.8, pose["pelvis"][1] + (0.14 * H if outfit["coat"] else 0))
        paint.capsule(bottom, top, pp["torso"] * H * 0.85, shirt, outfit)
    paint.capsule(pose["shoulders"][0], pose["shoulders"][1], 0.05 * H * limb, shirt, outfit)
    paint.capsule(pose["neck"], pose["head"], 0.035 * H, skin)
    paint.capsule((pose["head"][0], pose["head"][1] - 0.3 * pp["head"] * H),
                  (pose["head"][0], pose["head"][1] - 0.3 * pp["head"] * H), 0.92 * pp["head"] * H,
                  pp["hair"])
    paint.capsule((pose["head"][0], pose["head"][1] + 0.08 * pp["head"] * H),
                  (pose["head"][0], pose["head"][1] + 0.08 * pp["head"] * H), 0.9 * pp["head"] * H, skin)
    for shoulder, elbow, hand in pose["arms"]:
        paint.capsule(shoulder, elbow, 0.038 * H * limb, shirt, outfit)
        paint.capsule(elbow, hand, 0.031 * H * limb, sleeve, outfit)
        paint.capsule(hand, hand, 0.037 * H * limb, skin)


def _pose_points(pose):
    pts = [pose["pelvis"], pose["neck"], pose["head"]]
    for leg in pose["legs"]:
        pts.extend(leg)
    for arm in pose["arms"]:
        pts.extend(arm)
    return pts


def render_video(person: int, action: int, scenario: int, reps: int = 4, time_scale: float = 1.6,
                 seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]], dict]:
    """Render one video without writing it: ``(frames (F, 120, 160) uint8, ranges, plan)``.

    ``ranges`` are the repetitions' frames, 1-indexed and inclusive as in ``00sequences.txt``.
    """
    pp = person_params(person, seed)
    plan = video_plan(person, action, scenario, reps, time_scale, seed)
    name = ACTIONS[action]
    outfit = pp["outfits"][1 if scenario == 3 else 0]
    bg, ground = _background(person, scenario, seed)
    H = pp["height"]
    dt = time_scale / FPS
    noise_rng = np.random.default_rng(plan["noise_seed"])
    paint = _Painter()

    def zoom_at(t):
        zm = plan["zoom"]
        if zm is None:
            return 1.0
        return 1.0 + zm["amount"] * (0.5 - 0.5 * math.cos(2 * math.pi * t / zm["period_s"] + zm["phase"]))

    # -- the timeline, one entry per frame: (video time, pose or ("act", action time, arm
    # envelope) or None for an empty frame, side view?, repetition index or -1 between them)
    frames_spec = []
    if name in _GAITS:
        g = _GAITS[name]
        v = g["speed"] * pp["speed"] * H                   # px per second
        margin = 0.45 * H
        direction = pp["lead"]
        t_video = 0.0
        for k in range(reps):
            # the first crossing starts with the person just inside the frame (ranges start at 1)
            if k == 0:
                x = (-0.1 * H if direction > 0 else WIDTH + 0.1 * H) - direction * v * plan["enter_s"]
            else:
                x = (-margin if direction > 0 else WIDTH + margin) - direction * v * plan["gaps_s"][k - 1]
            t_rep, first = 0.0, len(frames_spec)
            while True:
                pose = _gait_pose(name, t_rep, x, ground, H, direction, pp)
                paint.begin(None, zoom_at(t_video))
                x0, x1, _, _ = paint.bbox(_pose_points(pose), 0.1 * H)
                if (x0 >= WIDTH - 1) if direction > 0 else (x1 <= 1):
                    break                                  # gone out at the far side
                visible = x1 > 1 and x0 < WIDTH - 1        # (swinging limbs may flicker in)
                frames_spec.append((t_video, pose, True, k if visible else -1))
                x += direction * v * dt
                t_rep += dt
                t_video += dt
            seen = [i for i in range(first, len(frames_spec)) if frames_spec[i][3] == k]
            for i in range(seen[0], seen[-1] + 1):         # the range: first to last visible
                frames_spec[i] = frames_spec[i][:3] + (k,)
            direction = -direction
        for _ in range(max(1, round(0.15 / dt))):     # a little empty ground at the end
            frames_spec.append((t_video, None, True, -1))
            t_video += dt
    else:
        freq = _IN_PLACE[name][0] * pp["cadence"]
        x = plan["x"]
        facing = pp["facing"]
        t_video = 0.0
        ramp = 0.18
        for k in range(reps):
            dur = plan["cycles"][k] / freq
            n = max(2, round(dur / dt))
            for i in range(n):
                t = i * dt
                # arms ramp up from rest and back down; the video opens mid-action (no ramp up)
                env = float(_smoothstep((dur - t) / ramp) * (_smoothstep(t / ramp) if k else 1.0))
                t_act = t + (0.25 / freq if k == 0 else 0.0)
                frames_spec.append((t_video, ("act", t_act, env), name == "boxing", k))
                t_video += dt
            for _ in range(round(plan["idle_s"][k] / dt)):
                frames_spec.append((t_video, ("act", 0.0, 0.0), name == "boxing", -1))
                t_video += dt

    out = np.empty((len(frames_spec), HEIGHT, WIDTH), np.uint8)
    for f, (t_video, pose, side, _) in enumerate(frames_spec):
        z = zoom_at(t_video)
        if z != 1.0:                                   # d2: the camera zooms about the centre
            c = (WIDTH / 2, HEIGHT / 2)
            img = np.array(Image.fromarray(bg, mode="F").transform(
                (WIDTH, HEIGHT), Image.Transform.AFFINE,
                (1 / z, 0, c[0] - c[0] / z, 0, 1 / z, c[1] - c[1] / z),
                resample=Image.Resampling.BILINEAR), dtype=np.float32)
        else:
            img = bg.copy()
        paint.begin(img, z)
        if isinstance(pose, tuple):
            _, t_act, env = pose
            if name == "boxing":
                pose = _boxing_pose(t_act, env, x, ground, H, facing, pp)
            elif name == "handwaving":
                pose = _waving_pose(t_act, env, x, ground, H, pp)
            else:
                pose = _clapping_pose(t_act, env, x, ground, H, pp)
        if pose is not None:
            (_draw_side if side else _draw_front)(paint, pose, H, pp, outfit)
        img += noise_rng.standard_normal(img.shape, dtype=np.float32) * (1.5 / 255)
        out[f] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)

    ranges = []
    reps_of = np.array([s[3] for s in frames_spec])
    for k in range(reps):
        idx = np.flatnonzero(reps_of == k)
        ranges.append((int(idx[0]) + 1, int(idx[-1]) + 1))
    return out, ranges, plan


# --- writing ------------------------------------------------------------------------------------

def _write_avi(path: Path, frames: np.ndarray) -> None:
    """Grey frames as an MJPG AVI at 25 fps (written beside ``path``, then renamed into place)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with av.open(str(tmp), "w", format="avi") as container:
            stream = container.add_stream("mjpeg", rate=FPS)
            stream.width, stream.height = WIDTH, HEIGHT
            stream.pix_fmt = "yuvj420p"
            stream.bit_rate = BIT_RATE
            for frame in frames:
                packet = stream.encode(av.VideoFrame.from_ndarray(frame, format="gray"))
                container.mux(packet)
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _video_name(person, action, scenario):
    return f"person{person:02d}_{ACTIONS[action]}_d{scenario}"


def _render_task(args):
    root, person, action, scenario, reps, time_scale, seed = args
    frames, ranges, plan = render_video(person, action, scenario, reps, time_scale, seed)
    name = _video_name(person, action, scenario)
    _write_avi(avi_path(root, name), frames)
    return name, len(frames), ranges, plan


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
    results = {}
    try:
        it = pool.map(_render_task, tasks, chunksize=4) if pool else map(_render_task, tasks)
        for name, n, ranges, plan in tqdm(it, total=len(tasks), desc=f"KTH stand-in ({size})",
                                          unit="video", disable=not progress):
            results[name] = (n, ranges, plan)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
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
