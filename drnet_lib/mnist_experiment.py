"""The Moving MNIST measurements of a trained DrNet and pose LSTM, step by step.

The chapter notebook (notebooks/01_mnist.ipynb) calls these steps one cell at a time, with a
figure after each; ``drnet train --experiment mnist --record`` calls them through
:func:`measure_codes` and :func:`measure_rollouts`, so a run trained without the notebook (a GPU
run of the ``paper`` profile, say) records the same metrics, which the claims
(claims.MNIST_CLAIMS) judge. Steps 1-3 come before the pose LSTM trains, which with
``lstm.bn_mode="train"`` moves the DrNet's BatchNorm statistics; step 4 after:

1. linear probes of the codes of the frozen test clips (:func:`.evaluate.fit_probes`), fitted on
   codes of training-digit clips;
2. the digit judge, trained on real training frames (seeded with the run's seed), and its
   accuracy on real test frames, occluded and not;
3. content/pose swaps scored by the judge (seed + 7);
4. with a pose LSTM, rollouts of ``eval.rollout_steps`` frames (:func:`.predict.rollout_metrics`).
"""

from __future__ import annotations

import torch

from . import evaluate
from .code_motion import code_statistics, motion_kept, step_lengths
from .config import ExperimentConfig
from .data.moving_mnist import MovingMNIST, frozen_test_factors
from .models import DrNet, PoseLSTM
from .predict import frozen_with_bn_mode, predict_poses, rollout_metrics


def frozen_test_clips(cfg: ExperimentConfig, test_bank: MovingMNIST):
    """The frozen test clips, long enough for training-length clips and for the observed plus
    scored frames of a prediction."""
    length = max(cfg.data.clip_length, cfg.lstm.n_past + cfg.eval.metric_steps)
    return frozen_test_factors(test_bank, cfg.data.test_clips, cfg.data.test_seed, length)


def probe_times(cfg: ExperimentConfig) -> torch.Tensor:
    """The frames of each clip whose codes the probes and the judge read: every 4th."""
    return torch.arange(0, cfg.data.clip_length, 4)


def measure_probes(cfg: ExperimentConfig, model: DrNet, train_bank: MovingMNIST, test_bank: MovingMNIST) -> dict:
    """Step 1: linear probes of the codes of the frozen test clips' every 4th frame, fitted on the
    codes of ``eval.probe_train_clips`` clips of training digits; the ``probe.*`` metrics."""
    times = probe_times(cfg)
    probe_train_factors = frozen_test_factors(train_bank, cfg.eval.probe_train_clips, cfg.data.test_seed + 1)
    return evaluate.fit_probes(evaluate.encode_clips(model, train_bank, probe_train_factors, times),
                               evaluate.encode_clips(model, test_bank, frozen_test_clips(cfg, test_bank), times),
                               content_has_skips=cfg.model.content_model == "dcgan_unet")


def measure_judge_and_swaps(cfg: ExperimentConfig, model: DrNet, train_bank: MovingMNIST, test_bank: MovingMNIST,
                            device, progress: bool = True) -> tuple[dict, torch.nn.Module]:
    """Steps 2-3: the digit judge (seeded with the run's seed), its accuracy on the frozen test
    clips' real frames (``judge.real_accuracy``; ``judge.clean_accuracy`` with every digit drawn
    unoccluded), and content/pose swaps that it scores (``swap.*``, seed + 7). Returns the
    metrics and the judge, which scores the rollouts too."""
    test_factors, times = frozen_test_clips(cfg, test_bank), probe_times(cfg)
    judge = evaluate.train_judge(train_bank, cfg.eval.judge_iterations, cfg.eval.judge_batch_size,
                                 torch.Generator(device).manual_seed(cfg.seed), device, progress=progress,
                                 width=cfg.eval.judge_width)
    metrics = {"judge.real_accuracy": evaluate.judge_accuracy(judge, test_bank, test_factors, times),
               "judge.clean_accuracy": evaluate.judge_accuracy(judge, test_bank, test_factors, times, occluded=False)}
    metrics.update(evaluate.swap_scores(model, test_bank, test_factors, judge, cfg.eval.swap_pairs,
                                        torch.Generator(device).manual_seed(cfg.seed + 7)))
    return metrics, judge


def measure_codes(cfg: ExperimentConfig, model: DrNet, train_bank: MovingMNIST, test_bank: MovingMNIST,
                  device, progress: bool = True) -> tuple[dict, torch.nn.Module]:
    """Steps 1-3 (probes, judge, swaps) for ``model`` in eval mode, made before the pose LSTM
    trains; returns the metrics and the judge (for :func:`measure_rollouts`)."""
    metrics = measure_probes(cfg, model, train_bank, test_bank)
    judged, judge = measure_judge_and_swaps(cfg, model, train_bank, test_bank, device, progress)
    return {**metrics, **judged}, judge


def measure_rollouts(cfg: ExperimentConfig, model: DrNet, lstm: PoseLSTM, test_bank: MovingMNIST,
                     judge) -> tuple[dict, dict]:
    """Step 4: rollouts of the first ``eval.rollout_clips`` frozen test clips, scored by the judge.
    Returns the ``rollout.*`` metrics and the frames (``samples``, as
    :func:`.predict.rollout_metrics` returns them) for the figures."""
    clips = frozen_test_clips(cfg, test_bank).subset(slice(0, cfg.eval.rollout_clips))
    return rollout_metrics(model, lstm, test_bank, clips, judge, cfg)


@torch.no_grad()
def measure_pose_codes(cfg: ExperimentConfig, model: DrNet, lstm: PoseLSTM, test_bank: MovingMNIST,
                       chunk: int = 25) -> dict:
    """The rollouts of step 4 in pose-code space (:mod:`.code_motion`), on the same clips: the true
    codes' size and smoothness over the clips' known future (``eval.metric_steps`` frames after the
    ``lstm.n_past`` observed ones), and how far the pose LSTM's predicted codes move per step over
    ``eval.rollout_steps`` steps.

    Returns ``{"clips": n, "true": code_statistics, "step_ratio": [one float per predicted step:
    the mean predicted step length over the true codes' mean step], "motion_kept": {str(step): the
    same averaged over the lstm.n_past steps ending at each of eval.rollout_checkpoints, as the
    pixel motion (rollout.motion_ratio) is}}``.
    """
    n_past = cfg.lstm.n_past
    clips = frozen_test_clips(cfg, test_bank).subset(slice(0, cfg.eval.rollout_clips))
    horizon = min(cfg.eval.metric_steps, clips.positions.shape[1] - n_past)
    true_codes, steps = [], []
    for start in range(0, len(clips), chunk):
        part = clips.subset(slice(start, start + chunk))
        observed = test_bank.render(part, torch.arange(n_past))
        truth = test_bank.render(part, torch.arange(n_past, n_past + horizon))
        predicted, _, _ = predict_poses(model, lstm, observed, cfg.eval.rollout_steps, cfg.lstm.bn_mode)
        with frozen_with_bn_mode(model, cfg.lstm.bn_mode):
            held = model.encode_pose(observed[:, -1]).flatten(1)
            true_codes.append(model.encode_pose(truth.flatten(0, 1)).view(len(part), horizon, -1).cpu())
        steps.append(step_lengths(predicted, held).cpu())
    true = code_statistics(torch.cat(true_codes))
    curve = (torch.cat(steps).double().mean(0) / true["step"]).tolist()
    return {"clips": len(clips), "true": true, "step_ratio": curve,
            "motion_kept": motion_kept(curve, cfg.eval.rollout_checkpoints, n_past)}
