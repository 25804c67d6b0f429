"""Where the KTH decoder's ceiling loses to copy-last, measured on saved DrNet checkpoints.

    .venv/bin/python tools/kth_error_split.py results/cpu/kth_oracle_seed0.json=PATH/drnet.pt [...]

Each argument pairs a recorded run's results JSON (its configuration) with the DrNet checkpoint
that run trained (``checkpoints/<profile>/kth_<tag>_seed<k>/drnet.pt`` of the clone it ran in).
For every pair, :func:`drnet_lib.kth_experiment.ceiling_error_split` re-renders the run's test
clips and splits the squared error of the frames decoded from the true poses, and of the last
observed frame, into the pixels that change and the ones that stay. The measurements go to
``results/<profile>/kth_error_split.json`` (one entry per run, with provenance); entries of runs
not named keep their earlier values. ``drnet train --record`` on KTH records the same split as
``prediction.error_split``; this tool is for runs recorded before it did.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from drnet_lib import kth_experiment
from drnet_lib.checkpoint import atomic_write, load_checkpoint
from drnet_lib.config import config_from_dict
from drnet_lib.models import DrNet
from drnet_lib.results import REPO_ROOT, provenance, read_results
from drnet_lib.train import make_test_bank


WHAT = ("squared error of the decoder's ceiling and of copy-last, split into the pixels that change "
        f"(|truth - last observed| > {kth_experiment.CHANGE_THRESHOLD}) and the pixels that stay; each part "
        "divided by all pixels")


def measure(run: dict, checkpoint: Path) -> dict:
    """The split of one recorded run (its results dict) from the DrNet checkpoint it trained."""
    cfg = config_from_dict(run["config"])
    if cfg.experiment != "kth":
        raise SystemExit(f"{checkpoint} belongs to a {cfg.experiment} run; this tool measures KTH runs")
    # the trainer's fingerprint: a checkpoint of any other configuration is refused by name
    state = load_checkpoint(checkpoint, cfg.fingerprint("experiment", "seed", "model", "data", "train"))
    model = DrNet(cfg.model)
    model.load_state_dict(state["modules"]["drnet"])
    bank = make_test_bank(cfg, "cpu")
    clips = kth_experiment.test_clips(bank, cfg.lstm.n_past + cfg.eval.metric_steps, cfg.eval.rollout_clips,
                                      cfg.data.test_seed)
    return {"iteration": state["iteration"], "clips": len(clips),
            "split": kth_experiment.ceiling_error_split(model, bank, clips, cfg)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("pairs", nargs="+", metavar="RESULTS_JSON=CHECKPOINT")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "results")
    args = parser.parse_args(argv)
    if any("=" not in a for a in args.pairs):
        parser.error("each argument is RESULTS_JSON=CHECKPOINT, e.g. results/cpu/kth_vgg_seed0.json=checkpoints/cpu/kth_vgg_seed0/drnet.pt")
    for pair in args.pairs:
        results_json, checkpoint = (Path(x) for x in pair.split("=", 1))
        start = time.perf_counter()
        run = read_results(results_json)
        entry = {"results": results_json.name, **measure(run, checkpoint)}
        entry["provenance"] = provenance(torch.device("cpu"), time.perf_counter() - start)
        print(results_json.stem, json.dumps(entry["split"], indent=1))
        # one file per profile; each run's entry is replaced, the others kept
        out = args.results_dir / run["profile"] / "kth_error_split.json"
        record = json.loads(out.read_text()) if out.exists() else {"what": WHAT, "runs": {}}
        record["runs"][results_json.stem] = entry
        atomic_write(out, lambda f, record=record: f.write((json.dumps(record, indent=1) + "\n").encode()))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
