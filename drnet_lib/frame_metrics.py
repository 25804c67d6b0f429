"""Scores of predicted frames against the truth, shared by every experiment's predictions: per-step
PSNR and SSIM (the implementation pinned: anchors TL;DR 4, the SSIM implementation changes the
numbers), the copy-last-frame baseline beside them, and how much a long rollout still moves.

Frames are ``(..., C, S, S)`` float in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

PSNR_CAP_DB = 100.0  # PSNR of identical frames is infinite; report this instead


def frame_metrics(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-step PSNR and SSIM, each averaged over clips: ``(N, T, C, S, S)`` x2 -> ``(T,)`` each.

    Implementation (pinned, anchors §2.3): scikit-image ``peak_signal_noise_ratio(truth, pred,
    data_range=1)`` and ``structural_similarity(truth, pred, channel_axis=0, data_range=1)``
    (7x7 uniform window, or the largest odd window that fits frames smaller than 7 px), on
    float64 frames in [0, 1] (values are not clipped), all C channels including an empty one.
    PSNR is computed per frame, capped at ``PSNR_CAP_DB`` = 100 dB (identical frames would give
    infinity), then averaged over clips in dB.
    """
    p, t = _as_float64_arrays(pred, truth)
    N, T = p.shape[:2]
    win = min(7, min(p.shape[-2:]) - (1 - min(p.shape[-2:]) % 2))  # odd, <= frame side
    ssim = np.zeros((N, T))
    for i in range(N):
        for j in range(T):
            ssim[i, j] = structural_similarity(t[i, j], p[i, j], channel_axis=0, data_range=1, win_size=win)
    return {"psnr": _psnr_per_frame(p, t).mean(axis=0), "ssim": ssim.mean(axis=0)}


def frame_psnr(pred: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """:func:`frame_metrics`' PSNR alone, ``(N, T, C, S, S)`` x2 -> ``(T,)``: for measurements that
    keep no SSIM (SSIM takes most of frame_metrics' time)."""
    return _psnr_per_frame(*_as_float64_arrays(pred, truth)).mean(axis=0)


def _as_float64_arrays(pred: torch.Tensor, truth: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    if pred.shape != truth.shape or pred.dim() != 5:
        raise ValueError("expected two (N, T, C, S, S) tensors of one shape, "
                         f"got {tuple(pred.shape)} and {tuple(truth.shape)}")
    return pred.detach().cpu().double().numpy(), truth.detach().cpu().double().numpy()


def _psnr_per_frame(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(N, T)`` PSNR of each frame in dB, capped at ``PSNR_CAP_DB``."""
    psnr = np.zeros(p.shape[:2])
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            with np.errstate(divide="ignore"):  # mse 0 -> inf, capped
                psnr[i, j] = min(peak_signal_noise_ratio(t[i, j], p[i, j], data_range=1), PSNR_CAP_DB)
    return psnr


def prediction_metrics(observed: torch.Tensor, generated: torch.Tensor, truth: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-step :func:`frame_metrics` of ``generated`` against ``truth`` (both ``(N, T, C, S, S)``),
    and of the baseline that repeats the last of the ``observed`` frames: keys ``psnr``, ``ssim``,
    ``copy_last_psnr``, ``copy_last_ssim``, each ``(T,)`` averaged over the N clips."""
    model = frame_metrics(generated, truth)
    baseline = frame_metrics(observed[:, -1:].expand_as(truth), truth)
    return {"psnr": model["psnr"], "ssim": model["ssim"],
            "copy_last_psnr": baseline["psnr"], "copy_last_ssim": baseline["ssim"]}


def mean_over_chunks(chunks: list[tuple[int, dict[str, np.ndarray]]], prefix: str) -> dict[str, list[float]]:
    """Clip-weighted mean of per-chunk :func:`prediction_metrics` ``[(clips, metrics)]``, as
    ``{prefix + key: per-step list rounded to 4 decimals}``."""
    n = sum(size for size, _ in chunks)
    keys = chunks[0][1].keys()
    return {prefix + k: [round(float(v), 4) for v in sum(size * m[k] for size, m in chunks) / n] for k in keys}


def frame_change(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute change between consecutive frames ``(B, T, C, S, S)`` -> ``(B, T-1)``."""
    return (frames[:, 1:] - frames[:, :-1]).abs().flatten(2).mean(-1)


class RolloutMotion:
    """Is a long rollout still moving? Collected chunk by chunk, for rollouts that run past any truth.

    At each checkpoint step ``s`` it takes the generated frames' :func:`frame_change` over the
    ``window`` frames ending at ``s`` (frames ``max(0, s - window) .. s - 1``), and divides its mean by
    the mean change of the real frames seen (those the rollout is scored against): 1 is as lively as
    real video, 0 a frozen picture. A rollout that fades to a blank frame stops moving too.

    A decoder that blurs also lowers the ratio, whatever the pose predictor does: a blurred shape
    moved by a pixel changes its pixels by less than a sharp one. So the same ratio is taken of the
    *oracle* frames (the true future poses decoded, :func:`.predict.decode_true_poses`): the motion
    this decoder draws when the poses are right. The rollout's ratio over the oracle's says how
    much of the motion the decoder can draw the rollout still has: 1 as lively as the truth
    redrawn, 0 stopped, blur or not.
    """

    def __init__(self, checkpoints, window: int):
        if window < 2:
            raise ValueError(f"a motion window needs two frames or more, not {window}")
        self.window = window
        self.checkpoints = [s for s in checkpoints if s >= 2]   # a change needs two frames
        self._generated = {s: [] for s in self.checkpoints}
        self._real, self._oracle = [], []

    def add(self, generated: torch.Tensor, truth: torch.Tensor, oracle: torch.Tensor) -> None:
        """One chunk: ``generated`` ``(B, steps, C, S, S)`` (step ``s`` at index ``s - 1``), ``truth``
        ``(B, T, C, S, S)`` the real frames of the same clips (any length of two or more), ``oracle``
        the same ``T`` steps decoded from the true poses."""
        self._real.append(frame_change(truth).cpu())
        self._oracle.append(frame_change(oracle).cpu())
        for s in self.checkpoints:
            self._generated[s].append(frame_change(generated[:, max(0, s - self.window):s]).cpu())

    def metrics(self) -> dict:
        """Over every chunk added: ``rollout.motion_ratio`` (``{checkpoint step: generated change / real
        change}``), ``rollout.oracle_motion_ratio`` (the oracle frames' change over the real frames',
        both over every step of the truth) and ``rollout.motion_of_oracle`` (``{step: the first over
        the second}``)."""
        real = float(torch.cat(self._real).mean())
        ratio = {s: float(torch.cat(self._generated[s]).mean()) / real for s in self.checkpoints}
        oracle = float(torch.cat(self._oracle).mean()) / real
        # a decoder that draws no motion at all leaves nothing to compare with (NaN, null in JSON)
        return {"rollout.motion_ratio": ratio, "rollout.oracle_motion_ratio": oracle,
                "rollout.motion_of_oracle": {s: r / oracle if oracle > 0 else math.nan for s, r in ratio.items()}}
