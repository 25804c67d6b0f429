"""How the KTH stand-in's figures move: the pose of each of the six actions at a given time.

Walking, jogging and running are side views of one gait at increasing stride frequency, speed,
leg swing, knee and elbow bend and forward lean (``_GAITS``); boxing (side view), handwaving and
handclapping (frontal) are done in place, at the cycle frequencies and with the cycles per
repetition of ``_IN_PLACE``. Each ``_*_pose`` function returns a capsule skeleton: a dict of
joint positions in pixels (at zoom 1), which :mod:`.kth_figures` paints. For the in-place
actions ``env`` (0..1) blends the arms from rest into the action, so repetitions start and end
at rest. Part of the procedural KTH stand-in (:mod:`.kth_standin`); nothing here is random.
"""

from __future__ import annotations

import math

import numpy as np

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
