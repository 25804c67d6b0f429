"""KTH's measurements along one longer DrNet schedule: how far the decoder and the predictions go with training.

    .venv/bin/python tools/kth_schedule.py [--seed 0] [--milestones 1500 3000 6000 12000 24000] \
        [--set lstm.bn_mode=train ...] [--refresh-pair 200] [--tag schedule]

One DrNet of a KTH profile (``cpu`` by default) (the adversarial variant, the profile's seed) trains to the
last milestone; at every milestone a copy of it is frozen, a pose LSTM of the profile's schedule is
trained on it, and the experiment's own measurements run on the copy (the ones ``drnet train
--record`` takes: classification, prediction beside copy-last and the frames decoded from the true
poses, the error split, rollouts). DrNet's trajectory is the one a run of ``m`` iterations would
follow (its batches come from its own generator), so the milestone at the profile's 3,000
iterations is the profile's model of that seed.

Everything goes to ``results/<profile>/kth_<tag>.json`` (``milestones``: iteration -> the metrics and the
provenance of that measurement), rewritten atomically after each milestone; a run that stops resumes
from its DrNet checkpoint (``checkpoints/<profile>/kth_<tag>_seed<k>/``) and skips the milestones already
in the file. The rollouts stop at ``eval.rollout_steps=50`` unless ``--set`` says otherwise.

``--refresh-pair N`` measures every milestone twice: the frozen copy as trained (``metrics``) and
the same copy with its BatchNorm statistics recomputed over N training batches
(:meth:`.DrNetTrainer.refresh_bn_statistics`, what ``lstm.bn_refresh_batches`` does at the end of a
run), with a pose LSTM of its own (``refreshed``: its metrics and provenance). Same weights, same
trajectory: whether training longer helps once the statistics match the weights.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from drnet_lib.checkpoint import atomic_write
from drnet_lib.cli import RepeatableList, parse_set
from drnet_lib.config import get_config
from drnet_lib.predict import train_lstm
from drnet_lib.record import recorded_metrics
from drnet_lib.results import REPO_ROOT, provenance, read_results
from drnet_lib.train import DrNetTrainer, checkpoint_paths

SHORT_ROLLOUTS = {"eval.rollout_steps": 50, "eval.rollout_checkpoints": [10, 50]}


def measure_frozen_copy(cfg, trainer: DrNetTrainer, lstm_checkpoint: Path, refresh_batches: int = 0) -> dict:
    """A milestone's entry, ``{"metrics", "provenance"}``: the experiment's measurements of a frozen
    copy of ``trainer``'s DrNet, with a pose LSTM trained on it (the LSTM freezes the model it is
    given, so the trainer's own keeps training afterwards), timed in the provenance; with
    ``refresh_batches``, the copy's BatchNorm statistics are recomputed first."""
    start = time.perf_counter()
    frozen = copy.deepcopy(trainer.model)
    if refresh_batches:
        trainer.refresh_bn_statistics(refresh_batches, model=frozen)
    lstm = train_lstm(cfg, frozen, trainer.bank, lstm_checkpoint, resume=True, progress=False)
    snapshot = SimpleNamespace(model=frozen, bank=trainer.bank, device=trainer.device, history=trainer.history,
                               iteration=trainer.iteration, wall_s=trainer.wall_s)
    metrics = recorded_metrics(cfg, snapshot, lstm)
    return {"metrics": metrics, "provenance": provenance(trainer.device, time.perf_counter() - start)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--profile", default="cpu", help="the KTH profile the run starts from (smoke for a quick try)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--milestones", type=int, nargs="+", action=RepeatableList, default=[1500, 3000, 6000, 12000, 24000])
    parser.add_argument("--set", nargs="*", action=RepeatableList, default=[], metavar="KEY=VALUE",
                        help="settings changed from the cpu profile for the whole run (train.iterations is the last milestone)")
    parser.add_argument("--refresh-pair", type=int, default=0, metavar="N",
                        help="also measure each milestone with BatchNorm statistics recomputed over N training batches")
    parser.add_argument("--tag", default="schedule", help="names the results file and the checkpoint folder")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "results")
    parser.add_argument("--checkpoint-dir", type=Path, default=REPO_ROOT / "checkpoints")
    parser.add_argument("--data-root", type=Path, default=None, help="where the KTH data is (default: the profile's)")
    args = parser.parse_args(argv)
    milestones = sorted(set(args.milestones))
    if milestones[0] < 1:
        parser.error("--milestones are DrNet iteration counts (>= 1)")
    if args.refresh_pair < 0:
        parser.error("--refresh-pair is a number of training batches (0: measure as trained only)")
    overrides = {**SHORT_ROLLOUTS, **parse_set(args.set), "train.iterations": milestones[-1]}
    cfg = get_config("kth", args.profile, args.seed, overrides,
                     **({"data_root": str(args.data_root)} if args.data_root else {}))
    out = args.results_dir / cfg.profile / f"kth_{args.tag}.json"
    record = read_results(out) if out.exists() else {}
    if record and (record.get("config") != json.loads(json.dumps(cfg.to_dict()))
                   or record.get("refresh_pair", 0) != args.refresh_pair):
        raise SystemExit(f"{out} holds a run of other settings; pass another --tag or move it aside")
    record = record or {"experiment": "kth", "profile": cfg.profile, "seed": cfg.seed, "tag": args.tag,
                        "changed": overrides, "config": cfg.to_dict(), "milestones": {},
                        **({"refresh_pair": args.refresh_pair} if args.refresh_pair else {})}
    drnet_ckpt, _ = checkpoint_paths(cfg, args.checkpoint_dir, args.tag)
    trainer = DrNetTrainer(cfg, "cpu")
    if trainer.resume(drnet_ckpt):
        print(f"resumed {drnet_ckpt} at iteration {trainer.iteration}")
    for m in milestones:
        if str(m) in record["milestones"]:
            continue
        if trainer.iteration > m:
            raise SystemExit(f"the checkpoint is at iteration {trainer.iteration}, past milestone {m} that "
                             f"{out} lacks; delete {drnet_ckpt} to measure it")
        trainer.iterations = m
        trainer.fit(drnet_ckpt)
        entry = measure_frozen_copy(cfg, trainer, drnet_ckpt.with_name(f"lstm_at_{m}.pt"))
        if args.refresh_pair:
            entry["refreshed"] = measure_frozen_copy(cfg, trainer, drnet_ckpt.with_name(f"lstm_at_{m}_refreshed.pt"),
                                                     args.refresh_pair)
        record["milestones"][str(m)] = entry
        atomic_write(out, lambda f: f.write((json.dumps(record, indent=1) + "\n").encode()))
        print(f"iteration {m}: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
