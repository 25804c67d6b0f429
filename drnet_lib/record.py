"""What ``drnet train --record`` measures: each experiment's chapter measurements of a trained run.

A recorded run (``results/<profile>/<experiment>_<tag>_seed<k>.json``) carries the same numbers its
chapter notebook would compute, from the same functions (:mod:`.mnist_experiment`,
:mod:`.norb_experiment`, :mod:`.chairs_experiment`, :mod:`.kth_experiment`), so that the book's
diagnostics can compare a changed setting with the chapter's runs. Some measurements must be made
before the pose LSTM trains (:func:`measure_before_lstm`): with ``lstm.bn_mode="train"`` its training
moves the DrNet's BatchNorm statistics.
"""

from __future__ import annotations

import json
import sys


# the experiments whose chapters measure the trained models (drnet train --record measures them too)
MEASURED = ("mnist", "norb", "suncg", "kth")
# those whose chapters measure some of it before the pose LSTM trains (measure_before_lstm)
MEASURED_BEFORE_LSTM = ("mnist", "norb", "suncg")


def _say(what: str) -> None:
    """Minutes of measuring with no bar of their own (encoding every frame, fitting classifiers)."""
    print(f"measuring: {what}", file=sys.stderr, flush=True)


def measure_before_lstm(cfg, trainer) -> dict:
    """What the experiment's chapter measures of the trained DrNet before its pose LSTM trains,
    as ``{"metrics": {...}, ...}`` with what the later measurements need: Moving MNIST's probes,
    judge and swaps (mnist_experiment.measure_codes; the judge is kept for the rollouts), the
    chairs' probes, NORB's classification. KTH's chapter classifies after the LSTM, and so does
    :func:`recorded_metrics`. ``trainer``: as for recorded_metrics; its model is put in eval mode."""
    from .train import make_test_bank

    out = {"metrics": {}}
    if cfg.experiment not in MEASURED:
        return out
    model, out["test_bank"] = trainer.model.eval(), make_test_bank(cfg, trainer.device, progress=True)
    if cfg.experiment == "mnist":
        from .mnist_experiment import measure_codes

        _say("probes of the codes, the digit judge and swaps")
        out["metrics"], out["judge"] = measure_codes(cfg, model, trainer.bank, out["test_bank"], trainer.device)
    elif cfg.experiment == "norb":
        from .norb_experiment import flat_metrics, score_variant

        _say("the category from content and pose codes of every training and test frame")
        scores = score_variant(cfg, model, trainer.bank, out["test_bank"])
        out["metrics"] = {**flat_metrics(scores), "classification.chance": scores["chance"]}
    elif cfg.experiment == "suncg":
        from .chairs_experiment import chair_probes

        _say("probes of the frozen codes")
        out["metrics"] = chair_probes(model, trainer.bank, out["test_bank"])
    return out


def recorded_metrics(cfg, trainer, lstm, before: dict | None = None) -> dict:
    """Timings and final losses of a ``drnet train --record`` run, and the experiment's own
    measurements of the trained models, as its chapter makes them:

    - Moving MNIST: probes, judge and swaps (``before``), rollouts (mnist_experiment);
    - NORB: the category from each code (``before``);
    - the chairs: probes (``before``), rollouts;
    - KTH: action and person from the codes, prediction against the last frame, rollouts.

    ``trainer``: anything with the trainer's ``model``, ``bank``, ``device``, ``history``,
    ``iteration`` and ``wall_s`` (tools/kth_schedule.py passes a frozen copy's); ``lstm``: the
    pose LSTM's trainer, or None; ``before``: :func:`measure_before_lstm`'s, made before the LSTM
    trained: required with a pose LSTM where the chapter measures before it (MEASURED_BEFORE_LSTM),
    since with ``lstm.bn_mode="train"`` the LSTM's training has moved the DrNet's statistics."""
    metrics = {"train.final": trainer.history[-1], "train.iterations_done": trainer.iteration,
               "train.seconds_per_iteration": trainer.wall_s / max(trainer.iteration, 1)}
    if lstm is not None:
        metrics["lstm.seconds_per_iteration"] = lstm.wall_s / max(lstm.iteration, 1)
    if cfg.experiment not in MEASURED:
        return metrics
    if before is None and lstm is not None and cfg.experiment in MEASURED_BEFORE_LSTM:
        raise ValueError(f"{cfg.experiment}: measure_before_lstm must run before the pose LSTM trains; "
                         "pass its result as before")
    before = before if before is not None else measure_before_lstm(cfg, trainer)
    metrics.update(before["metrics"])
    model, test_bank = trainer.model.eval(), before["test_bank"]
    if cfg.experiment == "mnist" and lstm is not None:
        from .mnist_experiment import measure_rollouts

        _say("rollouts")
        metrics.update(measure_rollouts(cfg, model, lstm.lstm.eval(), test_bank, before["judge"])[0])
        metrics["lstm.final_pose_mse"] = lstm.history[-1]["pose_mse"]
    elif cfg.experiment == "kth":
        from . import kth_experiment

        _say("action and person from the frozen codes")
        scores, action_classifier = kth_experiment.classification_scores(model, trainer.bank, test_bank, cfg)
        metrics.update(scores)
        if lstm is not None:
            _say("prediction against the last frame, and rollouts")
            clips = kth_experiment.test_clips(test_bank, cfg.lstm.n_past + cfg.eval.metric_steps,
                                              cfg.eval.rollout_clips, cfg.data.test_seed)
            predictions, _ = kth_experiment.predict_and_roll_out(model, lstm.lstm.eval(), test_bank, clips,
                                                                 cfg, action_classifier)
            metrics.update(predictions)   # prediction.error_split included
    elif cfg.experiment == "suncg" and lstm is not None:
        from .chairs_experiment import rollout_clips, rollout_turning

        _say("rollouts")
        rollouts, _ = rollout_turning(model, lstm.lstm.eval(), test_bank, rollout_clips(test_bank, cfg),
                                      cfg, cfg.eval.rollout_steps)
        metrics.update(rollouts)
    print(json.dumps({k: v for k, v in metrics.items()
                      if k.startswith(("probe", "class", "swap.", "judge.", "rollout.azimuth", "rollout.identity"))
                      or k.endswith(("_mean", "steps_beating_copy_last"))},
                     indent=1))
    from .claims import CLAIMS, verdicts

    judged = verdicts(cfg.experiment, metrics)   # those the run's metrics reach
    for claim, value, _ in judged:
        print(claim.describe(value))
    if not judged:   # NORB's claims compare two models (with and without the adversarial loss)
        print(f"no claim judged: this run's metrics lack {', '.join(c.key for c in CLAIMS[cfg.experiment])}"
              + (" (the chapter notebook trains both variants: drnet reproduce --experiments norb)"
                 if cfg.experiment == "norb" else ""))
    return metrics
