"""The NORB experiment in two calls: train one DrNet variant, then score its frozen codes.

The chapter notebook runs it twice (with and without the adversarial loss); the grid notebook
once per (beta, pose_dim) cell. Both write the same metric names, built by :func:`flat_metrics`.
"""

from __future__ import annotations

from .classification import category_scores, chance_accuracy, encode_sweeps
from .config import ExperimentConfig
from .train import DrNetTrainer, checkpoint_paths, train_drnet


def train_variant(cfg: ExperimentConfig, device, train_bank, checkpoint_dir, tag: str,
                  resume: bool = True, progress: bool = True) -> DrNetTrainer:
    """Train (or resume, or just load) the DrNet of ``cfg``, checkpointed under its own ``tag``."""
    drnet_ckpt, _ = checkpoint_paths(cfg, checkpoint_dir, tag)
    return train_drnet(cfg, device, drnet_ckpt, resume=resume, progress=progress, bank=train_bank)


def score_variant(cfg: ExperimentConfig, model, train_bank, test_bank) -> dict:
    """Category accuracy on the test instances from each frozen code, with each classifier.

    Returns ``{"content": {"mlp": acc, "linear": acc}, "pose": {...}, "chance": acc}``.
    """
    train_codes = encode_sweeps(model, train_bank)
    test_codes = encode_sweeps(model, test_bank)
    scores = category_scores(train_codes, test_codes, cfg.eval.classifier_hidden,
                             cfg.eval.classifier_max_iter, seed=cfg.seed)
    scores["chance"] = chance_accuracy(train_codes["category"], test_codes["category"])
    return scores


def flat_metrics(scores: dict, variant: str | None = None) -> dict[str, float]:
    """Results-JSON keys for one variant's scores: the two-layer classifier's accuracy under
    ``classification.[<variant>.]{content,pose}``, the linear probe's under
    ``probe.[<variant>.]{content,pose}_to_category``."""
    infix = f"{variant}." if variant else ""
    out = {}
    for code in ("content", "pose"):
        out[f"classification.{infix}{code}"] = scores[code]["mlp"]
        out[f"probe.{infix}{code}_to_category"] = scores[code]["linear"]
    return out
