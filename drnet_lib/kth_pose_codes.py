"""The pose LSTM in code space: does the motion it predicts go the way the true motion goes?

On KTH the pose LSTM's predicted motion helps DrNet for a few steps and then costs it, most on the
clips where the arms swing on the spot (the book's "what the predicted motion is worth"). Pixels
mix the predictor's error with the decoder's; pose codes do not. For each clip, with ``p0`` the
last observed frame's pose code, ``p_t`` the true future frames' codes and ``q_t`` the LSTM's
predictions, the motions from the last observed pose are ``d_t = p_t - p0`` (true) and
``e_t = q_t - p0`` (predicted). Then

    |q_t - p_t|^2 = |d_t|^2 - (2 e_t.d_t - |e_t|^2)

so predicting motion lowers the code error below holding the last pose (``|d_t|^2``) exactly when
``cos(e_t, d_t) > |e_t| / (2 |d_t|)``: the predicted motion must point the true motion's way by more
than half its length relative to the true one. A predictor that falls out of step with a swing
keeps its length but loses the direction (the cosine falls to zero or below); one that damps the
swing keeps the direction and loses the length.

:func:`motion_terms` computes these per clip and step; :func:`pose_code_agreement` averages them
over a clip list per action and action group. ``tools/kth_remeasure.py --measure pose_codes``
measures them on saved checkpoints; :func:`true_code_statistics` (``--measure code_statistics``)
says how large and how smooth the true codes are, and where they sit in the encoder's tanh range.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import ExperimentConfig
from .data.kth import ACTIONS, KTHClips
from .data.sweeps import ClipStarts
from .code_motion import code_statistics
from .kth_decoder import IN_PLACE, MOVING, clip_chunks
from .frame_metrics import frame_psnr
from .predict import decode_pose_codes, frozen_with_bn_mode, predict_poses


def motion_terms(predicted: torch.Tensor, true: torch.Tensor, held: torch.Tensor) -> dict[str, torch.Tensor]:
    """Predicted against true motion from the last observed pose, per clip and step.

    Args:
        predicted: ``(B, T, dp)`` the LSTM's pose codes for the T steps after the observed frames.
        true: ``(B, T, dp)`` the pose codes of the true future frames.
        held: ``(B, dp)`` the last observed frame's pose code.
    Returns:
        ``(B, T)`` tensors: ``alignment`` cos(predicted motion, true motion) from the held pose;
        ``step_alignment`` the same for the motion of each step alone (from the step before, the
        held pose before the first); ``predicted_length`` and ``true_length`` the two motions'
        lengths; ``predicted_error`` |predicted - true|^2 and ``held_error`` |held - true|^2.
        A cosine with a zero-length motion is 0.
    """
    held = held.unsqueeze(1)
    moved, truly_moved = predicted - held, true - held
    step, true_step = torch.diff(predicted, dim=1, prepend=held), torch.diff(true, dim=1, prepend=held)
    return {"alignment": F.cosine_similarity(moved, truly_moved, dim=-1, eps=1e-12),
            "step_alignment": F.cosine_similarity(step, true_step, dim=-1, eps=1e-12),
            "predicted_length": moved.norm(dim=-1), "true_length": truly_moved.norm(dim=-1),
            "predicted_error": (moved - truly_moved).pow(2).sum(-1), "held_error": truly_moved.pow(2).sum(-1)}


def summarize(terms: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """:func:`motion_terms` of a set of clips reduced to per-step curves (lists of T floats):
    mean ``alignment`` and ``step_alignment``; ``length_ratio`` (mean predicted length over mean
    true length); ``error_ratio`` (mean predicted error over mean held error: below 1 where the
    predicted motion brings the codes closer to the truth than holding still); ``true_length`` and
    ``predicted_length`` the two motions' mean lengths (in the model's code units: compare them
    between groups of one model, not between models)."""
    mean = {k: v.double().mean(0) for k, v in terms.items()}
    curves = {"alignment": mean["alignment"], "step_alignment": mean["step_alignment"],
              "length_ratio": mean["predicted_length"] / mean["true_length"],
              "error_ratio": mean["predicted_error"] / mean["held_error"],
              "true_length": mean["true_length"], "predicted_length": mean["predicted_length"]}
    return {k: [float(x) for x in v] for k, v in curves.items()}


def _chunks(model, lstm, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig, chunk: int):
    """``clips`` in chunks: ``(actions, truth, predicted, held, content, skips)``: each clip's action
    index (list), the true future frames ``(b, T, C, H, W)`` (T = ``eval.metric_steps``), the pose
    LSTM's codes ``(b, T, dp)``, the last observed frame's pose code ``(b, dp)`` and its content
    code and skips (what a prediction decodes with)."""
    for part, observed, truth in clip_chunks(bank, clips, cfg, next(model.parameters()).device, chunk):
        predicted, content, skips = predict_poses(model, lstm, observed, truth.shape[1], cfg.lstm.bn_mode)
        with frozen_with_bn_mode(model, cfg.lstm.bn_mode):
            held = model.encode_pose(observed[:, -1]).flatten(1)
        yield bank.action[part.sequence].tolist(), truth, predicted, held, content, skips


def _by_action_rows(actions: list[int]):
    """``(action index, boolean row mask)`` for each action present in a chunk's ``actions``."""
    for a in sorted(set(actions)):
        yield a, torch.tensor([x == a for x in actions])


def _group_means(by_action: dict[str, dict], key: str) -> dict[str, object]:
    """``{"moving" | "in place": mean over the group's actions of by_action[action][key]}`` for
    the groups with an action present; ``key``'s values are lists (per step) or dicts (per scale)."""
    out = {}
    for group, names in (("moving", MOVING), ("in place", IN_PLACE)):
        present = [by_action[n][key] for n in names if n in by_action]
        if present and isinstance(present[0], dict):
            out[group] = {k: float(np.mean([p[k] for p in present])) for k in present[0]}
        elif present:
            out[group] = [float(x) for x in np.mean(present, axis=0)]
    return out


@torch.no_grad()
def pose_code_agreement(model, lstm, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig,
                        chunk: int = 32) -> dict[str, dict]:
    """The pose LSTM's predicted motion against the true motion, in code space, over the first
    ``eval.metric_steps`` predicted steps of ``clips`` (see the module's docstring).

    Returns ``{"by_action": {action: {"clips": n, <curve>: [T floats]}}, "moving": {...},
    "in place": {...}}`` with the curves of :func:`summarize` per action (pooled over the action's
    clips); a group's curves are the plain mean of its actions' (each action once, as the book's
    other per-group margins).
    """
    per_action: dict[str, list[dict[str, torch.Tensor]]] = {}
    for actions, truth, predicted, held, _, _ in _chunks(model, lstm, bank, clips, cfg, chunk):
        with frozen_with_bn_mode(model, cfg.lstm.bn_mode):
            true = model.encode_pose(truth.flatten(0, 1)).view(*predicted.shape)
        terms = motion_terms(predicted, true, held)
        for a, rows in _by_action_rows(actions):
            per_action.setdefault(ACTIONS[a], []).append({k: v[rows.to(v.device)] for k, v in terms.items()})
    by_action = {}
    for name in ACTIONS:
        if name in per_action:
            terms = {k: torch.cat([t[k] for t in per_action[name]]) for k in per_action[name][0]}
            by_action[name] = {"clips": len(terms["alignment"]), **summarize(terms)}
    out: dict[str, dict] = {"by_action": by_action}
    for key in next(iter(by_action.values())):
        if key != "clips":
            for group, curve in _group_means(by_action, key).items():
                out.setdefault(group, {})[key] = curve
    return out


# How much of the pose LSTM's predicted motion a shorter-motion guess keeps: 0 is DrNet standing
# still (the last observed pose held), 1 is DrNet's own prediction.
MOTION_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)


@torch.no_grad()
def scaled_motion_psnr(model, lstm, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig,
                       scales=MOTION_SCALES, chunk: int = 32) -> dict[str, dict]:
    """What a shorter predicted motion would be worth in pixels: the frames decoded (content and
    skips of the last observed frame, as in a prediction) from ``p0 + s (q_t - p0)`` for each scale
    ``s``, with ``p0`` the last observed pose code and ``q_t`` the LSTM's prediction, scored by
    mean PSNR over the first ``eval.metric_steps`` predicted steps.

    Returns ``{"by_action": {action: {"clips": n, "psnr_mean": {str(s): dB}}}, "moving": {str(s):
    dB}, "in place": {...}}``; a group's value is the plain mean of its actions' (each action once).
    """
    sums: dict[str, dict[float, float]] = {}
    counts: dict[str, int] = {}
    for actions, truth, predicted, held, content, skips in _chunks(model, lstm, bank, clips, cfg, chunk):
        for s in scales:
            poses = held.unsqueeze(1) + s * (predicted - held.unsqueeze(1))
            frames = decode_pose_codes(model, content, skips, poses, cfg.lstm.bn_mode)
            for a, rows in _by_action_rows(actions):
                rows = rows.to(frames.device)
                psnr = float(frame_psnr(frames[rows], truth[rows]).mean())
                sums.setdefault(ACTIONS[a], {}).setdefault(s, 0.0)
                sums[ACTIONS[a]][s] += psnr * int(rows.sum())
        for a, rows in _by_action_rows(actions):
            counts[ACTIONS[a]] = counts.get(ACTIONS[a], 0) + int(rows.sum())
    by_action = {name: {"clips": counts[name], "psnr_mean": {f"{s:g}": sums[name][s] / counts[name] for s in scales}}
                 for name in ACTIONS if name in counts}
    return {"by_action": by_action, **_group_means(by_action, "psnr_mean")}


@torch.no_grad()
def true_code_statistics(model, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig, chunk: int = 32) -> dict:
    """The size, smoothness and place in the tanh range of the pose codes of ``clips``' frames
    (the observed and the scored ones, ``lstm.n_past + eval.metric_steps`` per clip):
    :func:`.code_motion.code_statistics` of them all, with the model's BatchNorm in ``lstm.bn_mode``
    as the pose LSTM sees them."""
    codes = []
    for _, observed, truth in clip_chunks(bank, clips, cfg, next(model.parameters()).device, chunk):
        frames = torch.cat([observed, truth], dim=1)
        with frozen_with_bn_mode(model, cfg.lstm.bn_mode):
            codes.append(model.encode_pose(frames.flatten(0, 1)).view(*frames.shape[:2], -1).cpu())
    return {"clips": len(clips), **code_statistics(torch.cat(codes))}
