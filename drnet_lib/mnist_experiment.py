"""The Moving MNIST measurements of a trained DrNet and pose LSTM, in one call.

The chapter notebook (notebooks/01_mnist.ipynb) takes these steps one cell at a time, with a
figure after each; ``drnet train --experiment mnist --record`` takes them here, so a run trained
without the notebook (a GPU run of the ``paper`` profile, say) records the same metrics, which
the claims (claims.MNIST_CLAIMS) judge. Same settings, same seeds, same numbers as the notebook:

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
from .config import ExperimentConfig
from .data.moving_mnist import MovingMNIST, frozen_test_factors
from .models import DrNet, PoseLSTM
from .predict import rollout_metrics


def frozen_test_clips(cfg: ExperimentConfig, test_bank: MovingMNIST):
    """The frozen test clips, long enough for training-length clips and for the observed plus
    scored frames of a prediction."""
    length = max(cfg.data.clip_length, cfg.lstm.n_past + cfg.eval.metric_steps)
    return frozen_test_factors(test_bank, cfg.data.test_clips, cfg.data.test_seed, length)


def probe_times(cfg: ExperimentConfig) -> torch.Tensor:
    """The frames of each clip whose codes the probes and the judge read: every 4th."""
    return torch.arange(0, cfg.data.clip_length, 4)


def measure(cfg: ExperimentConfig, model: DrNet, lstm: PoseLSTM | None, train_bank: MovingMNIST,
            test_bank: MovingMNIST, device, progress: bool = True) -> dict:
    """Every metric of the chapter's results JSON that measures the models (probes, judge, swaps,
    and with ``lstm`` the rollouts), for ``model`` in eval mode."""
    test_factors, times = frozen_test_clips(cfg, test_bank), probe_times(cfg)
    probe_train_factors = frozen_test_factors(train_bank, cfg.eval.probe_train_clips, cfg.data.test_seed + 1)
    metrics = evaluate.fit_probes(evaluate.encode_clips(model, train_bank, probe_train_factors, times),
                                  evaluate.encode_clips(model, test_bank, test_factors, times),
                                  content_has_skips=cfg.model.content_model == "dcgan_unet")
    judge = evaluate.train_judge(train_bank, cfg.eval.judge_iterations, cfg.eval.judge_batch_size,
                                 torch.Generator(device).manual_seed(cfg.seed), device, progress=progress,
                                 width=cfg.eval.judge_width)
    metrics["judge.real_accuracy"] = evaluate.judge_accuracy(judge, test_bank, test_factors, times)
    metrics["judge.clean_accuracy"] = evaluate.judge_accuracy(judge, test_bank, test_factors, times, occluded=False)
    metrics.update(evaluate.swap_scores(model, test_bank, test_factors, judge, cfg.eval.swap_pairs,
                                        torch.Generator(device).manual_seed(cfg.seed + 7)))
    if lstm is not None:
        rollouts, _ = rollout_metrics(model, lstm, test_bank, test_factors.subset(slice(0, cfg.eval.rollout_clips)),
                                      judge, cfg)
        metrics.update(rollouts)
    return metrics
