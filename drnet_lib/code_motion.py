"""How pose codes move: the true codes' size and smoothness, and how far the pose LSTM's predicted
codes move from step to step over a long rollout.

On Moving MNIST the adversarial term stills the long rollouts (the results page's "Without the
adversarial loss"). Pixels mix the pose LSTM's motion with the decoder's; pose codes do not. These
measures ask where the motion goes, in code space, and what the adversarial term changes in the
codes themselves: their size (``spread``), or how smoothly they follow the digits
(``autocorrelation``, ``step_over_clip_spread``: the same for codes of any size).

Codes are compared with codes of the same model only: a model's code units are its own.
"""

from __future__ import annotations

import torch


def code_statistics(codes: torch.Tensor) -> dict[str, float]:
    """Size and smoothness of true pose-code trajectories.

    Args:
        codes: ``(B, T, dp)`` the pose codes of T consecutive frames of B clips.
    Returns:
        ``spread``: the codes' typical distance from their mean over all frames (square root of
        the summed per-dimension variances); ``clip_spread``: the mean distance of a code from its
        own clip's mean code; ``step``: the mean distance between consecutive codes;
        ``step_over_clip_spread``: the two over each other (small for a smooth trajectory, about
        1.4 for codes drawn independently); ``autocorrelation``: the lag-1 autocorrelation of the
        codes centred on their clip's mean, pooled over dimensions (1: each code is the previous
        one). The last two do not change when the codes are scaled.
    """
    centred = codes - codes.mean(1, keepdim=True)
    step = codes.diff(dim=1).norm(dim=-1).mean()
    clip_spread = centred.norm(dim=-1).mean()
    spread = codes.flatten(0, 1).var(0).sum().sqrt()
    autocorrelation = (centred[:, 1:] * centred[:, :-1]).sum() / centred.pow(2).sum()
    return {"spread": float(spread), "clip_spread": float(clip_spread), "step": float(step),
            "step_over_clip_spread": float(step / clip_spread), "autocorrelation": float(autocorrelation)}


def step_lengths(predicted: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """How far predicted codes move at each step: ``predicted`` ``(B, S, dp)`` the S codes after
    the observed frames, ``held`` ``(B, dp)`` the last observed frame's code (where the first step
    starts) -> ``(B, S)`` distances between consecutive codes."""
    return torch.cat([held.unsqueeze(1), predicted], dim=1).diff(dim=1).norm(dim=-1)


def motion_kept(step_ratio: list[float], checkpoints, window: int) -> dict[str, float]:
    """``step_ratio`` (per predicted step: the mean predicted step length over the true codes' mean
    step) averaged over the ``window`` steps ending at each checkpoint (1-indexed step numbers, as
    the rollouts' checkpoints): ``{str(step): ratio}``, 1 where the prediction moves as far per step
    as the truth does."""
    return {str(s): sum(step_ratio[max(0, s - window):s]) / len(step_ratio[max(0, s - window):s]) for s in checkpoints}
