"""Measurements added to Moving MNIST runs after they were recorded, taken on their saved checkpoints.

    .venv/bin/python tools/mnist_remeasure.py [--measure pose_codes] \\
        results/cpu/mnist_noadv_seed0.json=checkpoints/cpu/mnist_noadv_seed0/drnet.pt [...]

Each argument pairs a recorded run's results JSON (its configuration) with the DrNet checkpoint
that run trained; its pose LSTM is read from ``lstm.pt`` beside it. ``--measure`` picks what is
measured for every pair:

* ``pose_codes`` (the only one so far): :func:`drnet_lib.mnist_experiment.measure_pose_codes`,
  the rollouts in pose-code space: the true codes' size and smoothness, and how far the pose
  LSTM's predicted codes move per step over the whole rollout (:mod:`drnet_lib.code_motion`).

The measurements go to ``results/<profile>/mnist_<measure>.json`` (one entry per run, with
provenance); entries of runs not named keep their earlier values.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from drnet_lib import mnist_experiment
from drnet_lib.checkpoint import CheckpointError
from drnet_lib.config import config_from_dict
from drnet_lib.predict import finished_lstm
from drnet_lib.results import REPO_ROOT, provenance, read_results, recorded_cpu_threads, write_measurement
from drnet_lib.runtime import cpu_threads
from drnet_lib.train import DrNetTrainer, make_bank

WHAT = {
    "pose_codes": ("on the rollouts' clips (the first eval.rollout_clips frozen test clips), in pose-code space, with "
                   "the run's DrNet and pose LSTM: the true codes of the eval.metric_steps frames after the observed "
                   "ones (true: spread, clip_spread, step, step_over_clip_spread, autocorrelation, offset, dimension_sd, "
                   "tanh_slope; "
                   "drnet_lib.code_motion.code_statistics), the predicted codes' mean step length per step of "
                   "eval.rollout_steps over the true codes' mean step (step_ratio), and that ratio averaged over the "
                   "lstm.n_past steps ending at each rollout checkpoint (motion_kept)"),
}


def measure(cfg, checkpoint: Path, what: str) -> dict:
    """``what`` (a key of :data:`WHAT`) of one trained model (its configuration ``cfg``), from its
    DrNet checkpoint and the pose LSTM's beside it."""
    if cfg.experiment != "mnist":
        raise SystemExit(f"{checkpoint} belongs to a {cfg.experiment} run; this tool measures Moving MNIST runs")
    # as the trainer reads them: another configuration's checkpoint, or an unfinished one, is refused by name
    state = DrNetTrainer.read_finished_checkpoint(cfg, checkpoint)
    trainer = DrNetTrainer(cfg, "cpu")
    trainer.model.load_state_dict(state["modules"]["drnet"])
    lstm = finished_lstm(cfg, checkpoint.with_name("lstm.pt"))
    test_bank = make_bank(cfg, "test", "cpu")
    return {"iteration": state["iteration"],
            **mnist_experiment.measure_pose_codes(cfg, trainer.model, lstm, test_bank)}


def main(argv: list[str] | None = None) -> int:
    first, _, rest = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=first, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=rest)
    parser.add_argument("pairs", nargs="+", metavar="RESULTS_JSON=CHECKPOINT")
    parser.add_argument("--measure", choices=sorted(WHAT), default="pose_codes",
                        help="what to measure (see below); default %(default)s")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "results",
                        help="where results/<profile>/mnist_<measure>.json is written; default %(default)s")
    args = parser.parse_args(argv)
    if any("=" not in a for a in args.pairs):
        parser.error("each argument is RESULTS_JSON=CHECKPOINT, e.g. "
                     "results/cpu/mnist_seed0.json=checkpoints/cpu/mnist_seed0/drnet.pt")
    runs = [(Path(a), Path(b)) for a, b in (pair.split("=", 1) for pair in args.pairs)]
    # every file before any measurement: a misspelt last pair would otherwise stop a batch at its end
    missing = [str(p) for results_json, checkpoint in runs
               for p in (results_json, checkpoint, checkpoint.with_name("lstm.pt")) if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    for results_json, checkpoint in runs:
        start = time.perf_counter()
        run = read_results(results_json)
        cfg = config_from_dict(run["config"])
        try:
            with cpu_threads(recorded_cpu_threads(run) or torch.get_num_threads()):   # as the run measured its rollouts
                entry = {"results": results_json.name, **measure(cfg, checkpoint, args.measure)}
                entry["provenance"] = provenance(torch.device("cpu"), time.perf_counter() - start)
        except CheckpointError as err:   # another configuration's, or unfinished: the tool's error, not a traceback
            raise SystemExit(str(err)) from None
        print(results_json.stem, json.dumps({"true": entry["true"], "motion_kept": entry["motion_kept"]}, indent=1))
        out = args.results_dir / run["profile"] / f"mnist_{args.measure}.json"
        write_measurement(out, WHAT[args.measure], results_json.stem, entry)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
