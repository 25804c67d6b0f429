"""How pose codes move: the true codes' size and smoothness, and how far the pose LSTM's predicted
codes move from step to step over a long rollout.

On Moving MNIST the adversarial term stills the long rollouts (the results page's "Without the
adversarial loss"). Pixels mix the pose LSTM's motion with the decoder's; pose codes do not. These
measures ask where the motion goes, in code space, and what the adversarial term changes in the
codes themselves: their size (``spread``), where they sit in the range of the encoder's final tanh
(``offset``, ``tanh_slope``), or how smoothly they follow the digits (``autocorrelation``,
``step_over_clip_spread``: the same for codes of any size).

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
        one). The last two do not change when the codes are scaled. Where the codes sit in the
        encoder's tanh range (-1, 1): ``offset``, the mean over dimensions of how far each
        dimension's mean lies from 0; ``dimension_sd``, the mean over dimensions of each one's
        standard deviation; ``tanh_slope``, the mean of 1 - code², tanh's slope where the codes are
        (1 at 0, near 0 at the ends of the range, where a code barely moves for a large change of
        what the tanh is given).
    """
    centred = codes - codes.mean(1, keepdim=True)
    step = codes.diff(dim=1).norm(dim=-1).mean()
    clip_spread = centred.norm(dim=-1).mean()
    frames = codes.flatten(0, 1)
    spread = frames.var(0).sum().sqrt()
    autocorrelation = (centred[:, 1:] * centred[:, :-1]).sum() / centred.pow(2).sum()
    return {"spread": float(spread), "clip_spread": float(clip_spread), "step": float(step),
            "step_over_clip_spread": float(step / clip_spread), "autocorrelation": float(autocorrelation),
            "offset": float(frames.mean(0).abs().mean()), "dimension_sd": float(frames.std(0).mean()),
            "tanh_slope": float((1 - frames.pow(2)).mean())}


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
