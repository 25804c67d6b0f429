"""The rotating-chairs experiment (the paper's SUNCG chairs): probes, pose interpolation, rollouts.

Every measurement reads frozen codes of *held-out* chairs:

* **azimuth** (where the chair faces) should live in the pose code, not the content code: a ridge
  probe maps each code to (sin, cos) of the azimuth, fitted on the training chairs and scored
  (R²) on the test chairs. Azimuth 0 means the same direction for every chair, so the probe can
  transfer across chairs;
* **identity** (which chair) should live in the content code: a logistic probe names the test
  chair from its codes, fitted on the even azimuth steps and scored on the odd ones (new views of
  chairs it has seen), chance = 1 / number of test chairs;
* **rollouts**: from a few observed frames of an unseen chair, the pose LSTM should keep it
  turning. Each generated frame is matched to the nearest true view of the same chair and
  elevation; ``rollout.azimuth_match`` is the share of frames whose nearest view is the expected
  azimuth (within one step), beside per-step PSNR/SSIM and the copy-last-frame baseline.
"""

from __future__ import annotations

import numpy as np
import torch

from .classification import chance_accuracy, classify, encode_sweeps, ridge_r2
from .config import ExperimentConfig
from .data.sweeps import ClipStarts, SweepVideos
from .frame_metrics import mean_over_chunks, prediction_metrics
from .models import evaluating
from .predict import rollout


def azimuth_circle(azimuth: np.ndarray, num_azimuths: int) -> np.ndarray:
    """Azimuth steps ``(N,)`` -> ``(N, 2)`` (sin, cos): a target with no jump at 360 -> 0 degrees."""
    angle = 2 * np.pi * np.asarray(azimuth) / num_azimuths
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)


def azimuth_r2(x_train, az_train, x_test, az_test, num_azimuths: int) -> float:
    """Test R² of the ridge probe (:func:`.classification.ridge_r2`) from codes to (sin, cos) of the azimuth."""
    return ridge_r2(x_train, azimuth_circle(az_train, num_azimuths), x_test, azimuth_circle(az_test, num_azimuths))


def identity_split(azimuth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``(N,)`` bool of the identity probe's views, from azimuth steps ``(N,)`` int: fitted
    on the even steps, scored on the odd ones."""
    return azimuth % 2 == 0, azimuth % 2 == 1


def identity_accuracy(x, chair, azimuth) -> float:
    """Name the chair from its code with the linear probe, on :func:`identity_split`'s views."""
    train, test = identity_split(azimuth)
    return classify(x[train], chair[train], x[test], chair[test], "linear")


def chair_probes(model, train_bank: SweepVideos, test_bank: SweepVideos) -> dict[str, float]:
    """The four headline probes (see the module docstring) and the identity chance level."""
    train, test = encode_sweeps(model, train_bank), encode_sweeps(model, test_bank)
    A = test_bank.num_azimuths
    out = {}
    for code in ("pose", "content"):
        out[f"probe.{code}_to_azimuth_r2"] = azimuth_r2(train[code], train["azimuth"], test[code],
                                                        test["azimuth"], A)
        out[f"probe.{code}_to_identity"] = identity_accuracy(test[code], test["chair"], test["azimuth"])
    train_views, test_views = identity_split(test["azimuth"])   # every chair has each view: 1 / chairs
    out["probe.identity_chance"] = chance_accuracy(test["chair"][train_views], test["chair"][test_views])
    out["probe.identity_content_minus_pose"] = out["probe.content_to_identity"] - out["probe.pose_to_identity"]
    return out


@torch.no_grad()
def interpolate_pose(model, content_frame: torch.Tensor, pose_a: torch.Tensor, pose_b: torch.Tensor,
                     steps: int = 8, at=None) -> torch.Tensor:
    """Decode one chair's content with poses on the straight line from ``pose_a``'s pose code to
    ``pose_b``'s (as in the paper's chairs figure; its number, Figure 5, is recalled): ``steps`` evenly spaced points, or the points ``at``
    (fractions of the way, 0 = a, 1 = b). Frames are ``(C, S, S)``; returns ``(points, C, S, S)``."""
    device = next(model.parameters()).device
    with evaluating(model):
        content, skips = model.encode_content(content_frame[None].to(device))
        pa, pb = model.encode_pose(torch.stack([pose_a, pose_b]).to(device))
        t = (torch.linspace(0, 1, steps, device=device) if at is None
             else torch.as_tensor(at, dtype=torch.float32, device=device)).view(-1, 1, 1, 1)
        steps = len(t)
        poses = (1 - t) * pa + t * pb
        frames = model.decode(content.expand(steps, -1, -1, -1), [s.expand(steps, -1, -1, -1) for s in skips],
                              poses)
    return frames.float().cpu()


def nearest_azimuth(generated: torch.Tensor, sweeps: torch.Tensor) -> torch.Tensor:
    """For each generated frame ``(B, T, C, S, S)``, the azimuth index of the closest (pixel MSE)
    true view among its own chair's sweep ``(B, A, C, S, S)``: ``(B, T)``."""
    diff = generated.unsqueeze(2) - sweeps.unsqueeze(1)           # (B, T, A, C, S, S)
    return diff.pow(2).flatten(3).mean(-1).argmin(-1)


def rollout_clips(bank: SweepVideos, cfg: ExperimentConfig) -> ClipStarts:
    """The ``eval.rollout_clips`` test sequences rolled out, drawn from a fixed seed
    (``data.test_seed``) so every run and machine rolls out the same ones, each from azimuth 0."""
    clips = bank.all_sweeps()
    pick = torch.randperm(len(clips), generator=torch.Generator().manual_seed(cfg.data.test_seed))
    return clips.subset(pick[:cfg.eval.rollout_clips].to(bank.device))


def rollout_turning(model, lstm, bank: SweepVideos, factors: ClipStarts, cfg: ExperimentConfig,
                    steps: int, keep: int = 4, chunk: int = 16) -> tuple[dict, dict]:
    """Roll out ``steps`` frames after ``lstm.n_past`` observed ones for each clip of ``factors``.

    Returns ``(metrics, samples)``: per-step ``rollout.psnr``/``rollout.ssim`` and the copy-last
    baseline over the first ``eval.metric_steps`` steps; ``rollout.azimuth_match`` (dict step ->
    share of clips whose frame at that step is nearest the expected view, within one azimuth
    step) at ``eval.rollout_checkpoints`` within ``steps``; ``samples`` holds ``keep`` clips'
    observed, generated and true frames for figures.
    """
    n_past, A = cfg.lstm.n_past, bank.num_azimuths
    horizon = min(cfg.eval.metric_steps, steps)
    all_az = torch.arange(A, device=bank.device)
    frame_scores, matches, samples = [], [], {}
    for start in range(0, len(factors), chunk):
        part = factors.subset(slice(start, start + chunk))
        observed = bank.render(part, torch.arange(n_past, device=bank.device))
        generated = rollout(model, lstm, observed, steps, cfg.lstm.bn_mode).to(bank.device)
        truth = bank.render(part, torch.arange(n_past, n_past + steps, device=bank.device))
        frame_scores.append((len(part), prediction_metrics(observed, generated[:, :horizon], truth[:, :horizon])))
        sweep = bank.render(ClipStarts(part.sequence, torch.zeros_like(part.start)), all_az)
        found = nearest_azimuth(generated, sweep)
        expected = (part.start.unsqueeze(1) + torch.arange(n_past, n_past + steps, device=bank.device)) % A
        off = (found - expected).remainder(A)
        matches.append(((off <= 1) | (off >= A - 1)).float().cpu())
        if not samples:
            samples = {"observed": observed[:keep].cpu(), "generated": generated[:keep].cpu(),
                       "truth": truth[:keep].cpu()}
    match = torch.cat(matches).mean(0)
    checkpoints = [s for s in cfg.eval.rollout_checkpoints if s <= steps]
    metrics = {**mean_over_chunks(frame_scores, "rollout."),
               "rollout.azimuth_match": {s: float(match[s - 1]) for s in checkpoints},
               "rollout.azimuth_match_mean": float(match.mean())}
    return metrics, samples
