"""The KTH decoder under the microscope: how well could any pose predictor do with it, and why not better.

DrNet redraws every predicted frame through its decoder, from the content (and skips) of the last
observed frame and a pose code. Repeating the last observed frame (copy-last) redraws nothing, so
on the clips where little moves it is hard to beat. These measurements separate the decoder's share
of a prediction's error from the pose predictor's, on the clips of :mod:`.kth_experiment`:

* **the ceiling** (:func:`.predict.decode_true_poses`): the frames decoded from the *true* future pose
  codes, the best any pose predictor could reach with this encoder and decoder;
* **standing still** (:func:`decode_held_pose`): the last observed frame's own pose held, what a
  predictor of no motion would show (copy-last, redrawn by the decoder);
* **where it goes wrong** (:func:`error_split`, :func:`ceiling_error_split`): its squared error and
  copy-last's on the pixels that change from the last observed frame and on those that stay;
* **per scenario** (:func:`ceiling_by_scenario`): the ceiling and copy-last by place (the
  stand-in's d1-d3 outdoors, d2 zooming, d4 a flat indoor wall) and action group;
* **redrawing its own frame** (:func:`self_reconstruction_by_scenario`): the decoder given a frame's
  own codes, no pose transferred, which bounds the ceiling from above.

Actions fall in two groups (:data:`MOVING`, :data:`IN_PLACE`) that every split reports.
:func:`.kth_experiment.predict_and_roll_out` measures the ceiling and its error split on every run;
``tools/kth_remeasure.py`` measures all of them on saved checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import ExperimentConfig
from .data.kth import ACTIONS, KTHClips
from .data.sweeps import ClipStarts
from .frame_metrics import frame_metrics, frame_psnr, mean_over_chunks, prediction_metrics
from .predict import decode_true_poses, frozen_with_bn_mode


# The stand-in's actions, as KTH groups them: the person crosses the field, or stays on the spot
# and moves the arms (where the last observed frame is nearly the next one).
MOVING = ("walking", "jogging", "running")
IN_PLACE = ("boxing", "handwaving", "handclapping")
assert sorted(MOVING + IN_PLACE) == sorted(ACTIONS), "every action belongs to one group"


def action_group(action: int) -> str:
    """``"moving"`` or ``"in place"``: the group of the action with index ``action`` in :data:`ACTIONS`."""
    return "moving" if ACTIONS[action] in MOVING else "in place"


@torch.no_grad()
def decode_held_pose(model, observed: torch.Tensor, steps: int, bn_mode: str) -> torch.Tensor:
    """DrNet standing still: the last observed frame decoded from its own content, skips and pose
    code, held for ``steps`` steps. It is what a pose predictor that predicts no motion would show,
    so it tells the pose LSTM's motion from its mere presence, and it is copy-last as redrawn by
    the decoder. ``observed`` ``(B, n_past, C, H, W)`` -> ``(B, steps, C, H, W)``."""
    still = decode_true_poses(model, observed, observed[:, -1:], bn_mode)    # (B, 1, C, H, W)
    return still.expand(-1, steps, -1, -1, -1)


def scored_as(name: str, frames: torch.Tensor, truth: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-step PSNR/SSIM (:func:`frame_metrics`) of ``frames`` against ``truth`` (both
    ``(B, T, C, H, W)``), under the keys ``<name>_psnr`` and ``<name>_ssim``, each ``(T,)``."""
    scores = frame_metrics(frames, truth)
    return {f"{name}_psnr": scores["psnr"], f"{name}_ssim": scores["ssim"]}


# A pixel "changes" when it moves by more than this from the last observed frame to the true one
# (intensities in [0, 1]); below it the difference is the video's noise and compression.
CHANGE_THRESHOLD = 0.05


def error_split(decoded: torch.Tensor, last: torch.Tensor, truth: torch.Tensor,
                threshold: float = CHANGE_THRESHOLD) -> dict[str, float]:
    """Where two guesses of the future frames go wrong: the pixels that change from the last
    observed frame to the true one (``|truth - last| > threshold``) and the ones that stay.

    Args:
        decoded: ``(B, T, C, H, W)`` frames to score (e.g. the decoder's ceiling).
        last: ``(B, C, H, W)`` the last observed frame (the copy-last guess).
        truth: ``(B, T, C, H, W)`` the true future frames.
    Returns:
        ``changing_share`` (fraction of pixels that change) and, for ``decoded`` and ``copy_last``,
        their squared error summed over the ``static`` and over the ``changing`` pixels, each
        divided by *all* pixels: the two parts add up to the mean squared error.
    """
    last = last.unsqueeze(1).expand_as(truth)
    changing = (truth - last).abs() > threshold
    n = truth.numel()
    out = {"changing_share": float(changing.sum()) / n}
    for name, guess in (("decoded", decoded), ("copy_last", last)):
        err = (guess - truth) ** 2
        out[f"{name}_static"] = float(err[~changing].sum()) / n
        out[f"{name}_changing"] = float(err[changing].sum()) / n
    return out


def ceiling_error_split(model, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig, chunk: int = 32
                        ) -> dict[str, dict[str, float]]:
    """:func:`error_split` of the decoder's ceiling (:func:`decode_true_poses`) against copy-last,
    over the first ``eval.metric_steps`` predicted steps of ``clips``: for ``all`` clips and the
    :data:`MOVING` and :data:`IN_PLACE` actions' clips (every clip has as many pixels, so a group's
    value is the mean over its clips)."""
    splits = []
    for part, observed, truth, ceiling in ceiling_chunks(model, bank, clips, cfg, chunk):
        splits += zip(bank.action[part.sequence].tolist(), clip_error_splits(ceiling, observed, truth))
    return grouped_error_split(splits)


def clip_chunks(bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig, device, chunk: int):
    """``clips`` in chunks of ``chunk`` (so hundreds of clips never sit in memory at once):
    ``(part, observed, truth)``, the chunk's clips and their observed ``(b, lstm.n_past, C, H, W)``
    and true future ``(b, eval.metric_steps, C, H, W)`` frames on ``device``."""
    n_past, horizon = cfg.lstm.n_past, cfg.eval.metric_steps
    for start in range(0, len(clips), chunk):
        part = clips.subset(slice(start, start + chunk))
        observed = bank.render(part, torch.arange(n_past, device=bank.device)).to(device)
        truth = bank.render(part, torch.arange(n_past, n_past + horizon, device=bank.device)).to(device)
        yield part, observed, truth


def ceiling_chunks(model, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig, chunk: int):
    """:func:`clip_chunks` on the model's device, each with the frames decoded from the true poses
    (:func:`decode_true_poses`): ``(part, observed, truth, ceiling)``."""
    for part, observed, truth in clip_chunks(bank, clips, cfg, next(model.parameters()).device, chunk):
        yield part, observed, truth, decode_true_poses(model, observed, truth, cfg.lstm.bn_mode)


def clip_error_splits(ceiling: torch.Tensor, observed: torch.Tensor, truth: torch.Tensor) -> list[dict[str, float]]:
    """:func:`error_split` of each clip: ``ceiling``/``truth`` ``(B, T, C, H, W)``, ``observed`` ``(B, n_past, ...)``."""
    return [error_split(ceiling[i:i + 1], observed[i:i + 1, -1], truth[i:i + 1]) for i in range(len(truth))]


def grouped_error_split(splits: list[tuple[int, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per-clip ``(action index, split)`` pairs averaged over ``all`` clips and over the :data:`MOVING`
    and :data:`IN_PLACE` actions' clips (every clip has as many pixels, so the mean over clips is
    the group's value); groups without clips are left out."""
    groups = {"all": [s for _, s in splits],
              **{g: [s for a, s in splits if action_group(a) == g] for g in ("moving", "in place")}}
    return {group: {key: float(np.mean([s[key] for s in rows])) for key in rows[0]}
            for group, rows in groups.items() if rows}



def _scenario_groups(bank: KTHClips, part: ClipStarts) -> list[tuple[int, str]]:
    """Each clip's ``(scenario, action group)``: the groups the by-scenario measurements report."""
    return [(int(d), action_group(a))
            for d, a in zip(bank.scenario[part.sequence].tolist(), bank.action[part.sequence].tolist())]


def ceiling_by_scenario(model, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig, chunk: int = 32
                        ) -> dict[str, dict[str, dict[str, float]]]:
    """The decoder's ceiling (:func:`decode_true_poses`) and copy-last per scenario and action group:
    whether the ceiling's deficit on the in-place clips depends on the place (the stand-in's d1-d3
    are textured outdoor scenes, d2 zooming; d4 is a flat indoor wall).

    Returns ``{"d<k>": {"moving" | "in place": {"clips", "oracle_psnr_mean", "oracle_ssim_mean",
    "copy_last_psnr_mean", "copy_last_ssim_mean"}}}``: means over the first ``eval.metric_steps``
    predicted steps and over the group's clips of ``clips``; groups without clips are left out.
    """
    groups: dict[tuple[int, str], list] = {}
    for part, observed, truth, ceiling in ceiling_chunks(model, bank, clips, cfg, chunk):
        keys = _scenario_groups(bank, part)
        for key in set(keys):
            rows = torch.tensor([k == key for k in keys], device=ceiling.device)
            m = prediction_metrics(observed[rows], ceiling[rows], truth[rows])   # its psnr/ssim: the ceiling's
            groups.setdefault(key, []).append((int(rows.sum()), {
                "oracle_psnr": m["psnr"], "oracle_ssim": m["ssim"],
                "copy_last_psnr": m["copy_last_psnr"], "copy_last_ssim": m["copy_last_ssim"]}))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (d, group), chunks in sorted(groups.items()):
        per_step = mean_over_chunks(chunks, "")
        out.setdefault(f"d{d}", {})[group] = {"clips": sum(n for n, _ in chunks),
                                              **{f"{k}_mean": float(np.mean(v)) for k, v in per_step.items()}}
    return out


def self_reconstruction_by_scenario(model, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig,
                                    chunk: int = 32) -> dict[str, dict[str, dict[str, float]]]:
    """The decoder redrawing the frame it was given: each clip's last observed frame decoded from
    its *own* content code, skips and pose code (BatchNorm as ``lstm.bn_mode``), per scenario and
    action group. No pose is transferred and none predicted, so this bounds the ceiling
    (:func:`decode_true_poses`) from above and tells the autoencoder's fidelity from the rest.

    Returns ``{"d<k>": {"moving" | "in place": {"clips", "self_psnr_mean", "offset_mean",
    "offset_share"}}}``: mean PSNR (:func:`frame_psnr`), the mean signed brightness offset of
    the decoded frame (decoded - true averaged over its pixels, intensities in [0, 1]) and the share
    of the squared error that this per-frame offset accounts for (mean offset² / mean MSE).
    """
    device = next(model.parameters()).device
    groups: dict[tuple[int, str], list] = {}
    last_observed = torch.tensor([cfg.lstm.n_past - 1], device=bank.device)
    with frozen_with_bn_mode(model, cfg.lstm.bn_mode):
        for start in range(0, len(clips), chunk):
            part = clips.subset(slice(start, start + chunk))
            frame = bank.render(part, last_observed).to(device)[:, 0]
            content, skips = model.encode_content(frame)
            decoded = model.decode(content, skips, model.encode_pose(frame))
            psnr = frame_psnr(decoded[None], frame[None])   # the frames as the steps of one clip: one PSNR each
            offset = (decoded - frame).flatten(1).mean(1).tolist()
            mse = ((decoded - frame) ** 2).flatten(1).mean(1).tolist()
            for i, key in enumerate(_scenario_groups(bank, part)):
                groups.setdefault(key, []).append((psnr[i], offset[i], mse[i]))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (d, group), rows in sorted(groups.items()):
        psnr, offset, mse = (np.array(col) for col in zip(*rows))
        out.setdefault(f"d{d}", {})[group] = {"clips": len(rows), "self_psnr_mean": float(psnr.mean()),
                                              "offset_mean": float(offset.mean()),
                                              "offset_share": float((offset ** 2).mean() / mse.mean())}
    return out
