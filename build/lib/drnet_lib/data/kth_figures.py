"""Rendering one video of the KTH stand-in: persons, backgrounds, the painter, the timeline.

* :func:`person_params`: a person's height, build, skin and hair tones, two outfits and gait and
  handedness jitter, drawn from ``(seed, person)``.
* ``_background``: the still place of one (person, scenario), outdoors (sky, tree line, textured
  ground) or indoors (wall and floor), and the ground line the feet stand on.
* :func:`video_plan`: everything random about one video (d2's zoom, the gaps between crossings,
  the cycles and idle stands of the in-place actions, the noise seed).
* ``_Painter``, ``_draw_side`` and ``_draw_front``: capsules painted back to front as 2D signed
  distances with one pixel of anti-aliasing, textures laid along each segment.
* :func:`render_video`: the frame-by-frame timeline of a video's repetitions, posed by
  :mod:`.kth_poses`, painted over the (zoomed) background with a little sensor noise; returns
  the grey frames and the repetitions' ranges.

Frames are ``WIDTH`` x ``HEIGHT`` (160x120) at ``FPS`` (25); video time runs ``time_scale``
times faster than real time. Nothing is written here: :mod:`.kth_standin` writes the frames as
KTH's files and re-exports :func:`person_params`, :func:`video_plan` and :func:`render_video`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .kth_layout import ACTIONS
from .kth_poses import (_GAITS, _IN_PLACE, _boxing_pose, _clapping_pose, _gait_pose,
                        _smoothstep, _waving_pose)

__all__ = ["FPS", "HEIGHT", "WIDTH", "person_params", "render_video", "video_plan"]

WIDTH, HEIGHT, FPS = 160, 120, 25

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


# --- painting -----------------------------------------------------------------------------------

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


# --- rendering one video ------------------------------------------------------------------------

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
