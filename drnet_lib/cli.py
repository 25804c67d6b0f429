"""The ``drnet`` command: train, reproduce, bench, data prepare.

    drnet train --experiment mnist --profile cpu --seed 0 [--resume|--no-resume] [--set train.iterations=500]
    drnet reproduce --profile cpu --experiments mnist norb --seeds 0 1 2 [--force] [--workers 2]
    torchrun --nproc_per_node=2 -m drnet_lib.cli train --experiment mnist ...   (DistributedDataParallel)
    drnet reproduce --experiments norb_grid --seeds 0 --grid adversarial_weight=0,0.1 pose_dim=2,10
    drnet bench [--device cpu|cuda] [--profiles paper cpu] [--json]
    drnet data prepare mnist|norb|suncg|kth --source embedded|real [--root DIR] [--size ci|cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .stopping import BatchInterrupted
from .checkpoint import CheckpointError
from .loop import TrainingInterrupted
from .config import ANY_DATA_SOURCE, EVERY_EXPERIMENTS_DATA_SOURCE, PROFILES
from .data.registry import DownloadError
from .reproduce import NOTEBOOKS
from .results import DEFAULT_DATA_ROOT, REPO_ROOT

# help texts shared by the subcommands
_PROFILE_HELP = ("smoke (seconds, tiny networks; its numbers mean nothing) | cpu (the book's CPU runs) | "
                 "paper (the authors' setting, for a GPU); default %(default)s")
_DEVICE_HELP = "auto (a GPU when PyTorch sees one, else the CPU) | cpu | cuda | cuda:N; default %(default)s"


class RepeatableList(argparse.Action):
    """A list option that may be given more than once: ``--set a=1 --set b=2`` keeps both.

    With argparse's plain ``nargs`` the last use replaces the earlier ones silently, so a setting
    given first would be dropped without a word. The first use replaces the default; each later
    use adds to what came before.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        earlier = [] if current is None or current is self.default else list(current)
        setattr(namespace, self.dest, earlier + list(values))


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (repeats, iterations, sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_tag(text: str) -> str:
    """An argparse type for ``--record``: part of a file name, so not empty and no folders."""
    if not text or any(c in text for c in "/\\") or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"a tag is part of a file name: letters, digits, '-', '_' or '.', got {text!r}")
    return text


def parse_set(items: list[str]) -> dict:
    """``key=value`` pairs; values are parsed as JSON where possible (numbers, lists, booleans)."""
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value (e.g. train.iterations=500), got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


# The NORB chapter asks what the codes know (classification), not what comes next: no pose LSTM
# (its profiles do not scale the LSTM schedule down: training one would take the paper's 120,000 steps).
WITHOUT_POSE_LSTM = frozenset({"norb"})


def cmd_train(args) -> int:
    from .config import get_config
    from .distributed import init_from_env
    from .predict import train_lstm
    from .record import measure_before_lstm, recorded_metrics
    from .runtime import note_paper_profile_on_cpu, resolve_device
    from .train import checkpoint_paths, train_drnet

    overrides = parse_set(args.set)
    cfg = get_config(args.experiment, args.profile, args.seed, overrides, **data_fields(args, overrides))
    if args.record and cfg.train.iterations == 0:
        raise ValueError("--record with train.iterations=0: nothing would be trained to record")
    if args.record:   # a results folder that cannot be made is found now, not after training
        (args.results_dir / cfg.profile).mkdir(parents=True, exist_ok=True)
    # Under torchrun, DrNet trains on every process (DistributedDataParallel, see distributed.py);
    # the pose LSTM and the measurements then run on rank 0 alone.
    device = resolve_device(args.device)
    rank, world = init_from_env(device)
    drnet_ckpt, lstm_ckpt = checkpoint_paths(cfg, args.checkpoint_dir, args.record)
    if rank == 0:
        print(f"DrNet checkpoint: {drnet_ckpt}" + (f" ({world} processes)" if world > 1 else ""))
        note_paper_profile_on_cpu(cfg, device)
    trainer = train_drnet(cfg, device, drnet_ckpt, resume=args.resume)
    if rank != 0:
        return 0
    print(f"DrNet: {trainer.iteration} iterations, {trainer.wall_s / 60:.1f} min")
    # what the chapter measures before its pose LSTM trains (with lstm.bn_mode=train that training
    # moves the DrNet's BatchNorm statistics), measured here at the same point
    before = measure_before_lstm(cfg, trainer) if args.record else None
    lstm = None
    if cfg.experiment in WITHOUT_POSE_LSTM and not args.skip_lstm:
        print(f"{cfg.experiment}: no pose LSTM in this experiment (its chapter classifies the codes): skipped")
    elif not args.skip_lstm:
        print(f"LSTM checkpoint: {lstm_ckpt}")
        lstm = train_lstm(cfg, trainer.model, trainer.bank, lstm_ckpt, resume=args.resume)
        print(f"pose LSTM: {lstm.iteration} iterations, {lstm.wall_s / 60:.1f} min")
    if args.record:
        from .results import write_results

        metrics = recorded_metrics(cfg, trainer, lstm, before)
        histories = {"drnet": trainer.history, **({"lstm": lstm.history} if lstm else {})}
        wall_s = trainer.wall_s + (lstm.wall_s if lstm else 0.0)
        path = write_results(args.results_dir, cfg, metrics, trainer.device, wall_s, tag=args.record,
                             extra={"history": histories, "note": "run recorded by drnet train --record"})
        print(f"recorded: {path}")
    return 0


def data_fields(args, overrides: dict) -> dict:
    """``--data-source`` and ``--data-root`` as get_config's fields: an option given beside
    ``--set data.source=...`` (or ``data.root``) is refused by get_config as a setting given twice;
    neither given, the data root is the repository's ``data/``."""
    fields = {}
    if args.data_source is not None:
        fields["data_source"] = args.data_source
    if args.data_root is not None:
        fields["data_root"] = str(args.data_root)
    elif "data.root" not in overrides:
        fields["data_root"] = str(DEFAULT_DATA_ROOT)
    return fields


def _grid_value(item: str, text: str):
    """One value of ``--grid name=v1,v2``, read as JSON (numbers, true/false, "quoted strings")."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"--grid {item}: cannot read {text!r}; give numbers, true/false, or a string in "
                         f"double quotes (JSON)") from None


def cmd_reproduce(args) -> int:
    from .reproduce import reproduce
    from .runtime import resolve_device

    grid = {}
    for item in args.grid or []:
        key, sep, raw = item.partition("=")
        if not sep or not raw:
            raise ValueError(f"--grid expects name=v1,v2,... (e.g. pose_dim=2,5,10), got {item!r}")
        grid[key] = [_grid_value(item, v) for v in raw.split(",")]
    if any(seed < 0 for seed in args.seeds):
        raise ValueError(f"--seeds must not be negative, got {args.seeds}")
    resolve_device(args.device)   # a device this machine lacks is refused here, not in every notebook
    if args.prose_only:
        from .reproduce import refresh_prose_of_runs

        outcomes = refresh_prose_of_runs(args.experiments, args.seeds, args.profile, args.results_dir, grid)
        return 1 if any(o.status in ("rerun", "missing", "damaged") for o in outcomes) else 0
    outcomes = reproduce(args.experiments, args.seeds, args.profile, args.results_dir, args.device,
                         args.data_source, force=args.force, grid=grid, workers=args.workers)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    from .bench import profile_breakdown, scaling_rows
    from .bench_layers import layer_breakdown

    if args.scaling or args.breakdown or args.layers:   # the performance chapter's extra tables, as JSON lines
        for e in args.experiments or ["mnist"]:
            for p in args.profiles or ["paper"]:
                rows = scaling_rows(e, p, args.device, args.scaling_batch, args.scaling_size) if args.scaling else []
                rows += [profile_breakdown(e, p, args.device)] if args.breakdown else []
                rows += [layer_breakdown(e, p, args.device)] if args.layers else []
                for row in rows:
                    print(json.dumps(row), flush=True)
        return 0
    run_bench(args.experiments, args.profiles, args.device, args.repeats, as_json=args.json,
              variants=args.variants, loss_iterations=args.loss_iterations)
    return 0


def cmd_data(args) -> int:
    from .config import check_data_root

    check_data_root(args.root, "--root")
    if args.dataset == "mnist":
        from .data import mnist

        print(json.dumps(mnist.prepare(args.source, args.root), indent=2, default=str))
    elif args.dataset == "norb":
        from .data import norb

        folder = norb.prepare(args.source, args.root, size=args.size)
        counts = {split: len(norb.read_matrix(folder / norb.file_name(split, "cat")))
                  for split in norb.SPLITS}
        print(json.dumps({"source": args.source, "folder": str(folder), "counts": counts}, indent=2))
    elif args.dataset in ("suncg", "chairs"):
        from .data import chairs

        root = chairs.prepare_chairs(args.source, args.root, size=args.size)
        tree = chairs.load_chairs_tree(root, progress=True)
        print(json.dumps({"source": args.source, "root": str(root), "chairs": len(tree),
                          "elevations": list(tree.elevation_names), "azimuths": tree.num_azimuths}, indent=2))
    elif args.dataset == "kth":
        from .data import kth

        root = kth.prepare(args.source, args.root, size=args.size, image_size=args.image_size,
                           skip_corrupt=args.skip_corrupt)
        counts = {split: len(kth.load_split(root, split, args.image_size)) for split in ("train", "test")}
        print(json.dumps({"source": args.source, "root": str(root), "image_size": args.image_size,
                          "sequences": counts}, indent=2))
    else:
        raise ValueError(f"unknown dataset {args.dataset!r}; available: mnist, norb, suncg (or chairs), kth")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="drnet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"drnet_lib {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train DrNet and its pose LSTM (resumable)")
    t.add_argument("--experiment", default="mnist", help=f"{' | '.join(PROFILES)}; default %(default)s")
    t.add_argument("--profile", default="cpu", help=_PROFILE_HELP)
    t.add_argument("--seed", type=int, default=0, help="the run's seed (weights, training batches); default %(default)s")
    t.add_argument("--device", default="auto", help=_DEVICE_HELP)
    t.add_argument("--data-source", choices=ANY_DATA_SOURCE,
                   help="embedded: the offline stand-ins; real: the published dataset, downloaded; "
                        "authors: the authors' chairs tree (suncg); default embedded (or --set data.source=...)")
    t.add_argument("--checkpoint-dir", type=Path, default=REPO_ROOT / "checkpoints",
                   help="checkpoints go to <dir>/<profile>/<experiment>[_<TAG>]_seed<k>/ (drnet.pt, lstm.pt); "
                        "default %(default)s")
    t.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from the last checkpoint (default; a finished run asked for more iterations "
                        "continues too); --no-resume starts over, replacing the old checkpoint when it saves its first")
    t.add_argument("--skip-lstm", action="store_true", help="train DrNet only")
    t.add_argument("--data-root", type=Path,
                   help=f"where datasets are downloaded, converted or generated; default {DEFAULT_DATA_ROOT} "
                        "(or --set data.root=...)")
    t.add_argument("--record", metavar="TAG", type=run_tag,
                   help="write losses, timings and the experiment's measurements of the trained models (what its "
                        "chapter records; verdicts printed) to <results-dir>/<profile>/<experiment>_<TAG>_seed<k>.json")
    t.add_argument("--results-dir", type=Path, default=REPO_ROOT / "results",
                   help="where --record writes; default %(default)s")
    t.add_argument("--set", nargs="*", action=RepeatableList, metavar="KEY=VALUE",
                   help="override settings by name, e.g. train.iterations=500 lstm.hidden=128 (may be repeated; "
                        "an unknown name lists the valid ones)")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("reproduce", help="run experiment notebooks through papermill into results/")
    r.add_argument("--profile", default="cpu", help=_PROFILE_HELP)
    r.add_argument("--experiments", nargs="+", action=RepeatableList, default=["mnist"],
                   help=f"notebooks to run: {' | '.join(NOTEBOOKS)}; default mnist")
    r.add_argument("--seeds", nargs="+", action=RepeatableList, type=int, default=[0, 1, 2], help="default 0 1 2")
    r.add_argument("--device", default="auto", help=_DEVICE_HELP)
    r.add_argument("--data-source", default="embedded", choices=EVERY_EXPERIMENTS_DATA_SOURCE,
                   help="embedded: the offline stand-ins; real: the published datasets, downloaded; default %(default)s")
    r.add_argument("--results-dir", type=Path, default=REPO_ROOT / "results",
                   help="executed notebooks and results files go to <dir>/<profile>/; default %(default)s")
    r.add_argument("--workers", type=positive_int, default=1,
                   help="notebooks run at once (each in its own kernel; cores are shared out between them); "
                        "default %(default)s")
    r.add_argument("--grid", nargs="*", action=RepeatableList, metavar="NAME=V1,V2",
                   help="notebook parameters to sweep, e.g. adversarial_weight=0,0.0001,0.01,0.1 pose_dim=2,5,10")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--force", action="store_true",
                   help="rerun the notebooks even where results exist (outside smoke, training still continues from, or loads, "
                        "the checkpoints in checkpoints/: delete them to train again)")
    g.add_argument("--skip-existing", action="store_true",
                   help="skip runs whose results file and executed notebook exist (default)")
    g.add_argument("--prose-only", action="store_true",
                   help="run nothing: copy the source notebooks' markdown, code comments and figure captions into "
                        "the executed runs whose code is the source's (a prose fix without a rerun); lists "
                        "the runs that need one")
    r.set_defaults(func=cmd_reproduce)

    b = sub.add_parser("bench", help="time training iterations and data generation (JSON lines)")
    b.add_argument("--device", default="auto", help=_DEVICE_HELP)
    b.add_argument("--experiments", nargs="+", action=RepeatableList,
                   help=f"{' | '.join(PROFILES)}; default all (mnist with --scaling, --breakdown, --layers)")
    b.add_argument("--profiles", nargs="+", action=RepeatableList,
                   help="paper | cpu | smoke; default paper and cpu (paper with --scaling, --breakdown, --layers)")
    b.add_argument("--repeats", type=positive_int, default=10, help="timed iterations after warm-up (their median is reported); "
                                                           "default %(default)s")
    b.add_argument("--json", action=argparse.BooleanOptionalAction, default=True,
                   help="one JSON object per line (default); --no-json prints a line of text per row")
    b.add_argument("--variants", nargs="+", action=RepeatableList, default=["fp32"],
                   help="fp32 | bf16 | compile | bf16+compile | cuda_graphs | channels_last | nchw | adam_fused | adam_for_loop | "
                        "strict_fp32 | cudnn_benchmark | "
                        "plain: each timed against fp32 (the default configuration) in the same run, "
                        "with a short fp32-vs-variant training run (loss_check); plain is the literal "
                        "reference iteration (drnet_lib/reference_step.py)")
    b.add_argument("--loss-iterations", type=positive_int, default=50,
                   help="iterations of each loss_check run; default %(default)s")
    b.add_argument("--scaling", action="store_true",
                   help="instead: seconds per iteration over --scaling-batch x --scaling-size")
    b.add_argument("--scaling-batch", nargs="+", action=RepeatableList, type=positive_int, default=[16, 32, 64],
                   help="batch sizes for --scaling; default 16 32 64")
    b.add_argument("--scaling-size", nargs="+", action=RepeatableList, type=positive_int, default=[64, 128],
                   help="frame sizes in pixels for --scaling; default 64 128")
    b.add_argument("--breakdown", action="store_true",
                   help="instead: a torch.profiler breakdown of one iteration (top operators by self time)")
    b.add_argument("--layers", action="store_true",
                   help="instead: every convolution of one iteration timed alone, with its GFLOP/s beside the "
                        "matmul rate (drnet_lib/bench_layers.py)")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("data", help="dataset utilities")
    dsub = d.add_subparsers(dest="action", required=True)
    prep = dsub.add_parser("prepare", help="write the stand-in (embedded) or download and convert (real) a dataset, "
                                           "then read it back")
    prep.add_argument("dataset", help=" | ".join(PROFILES) + " (suncg may be spelt chairs)")
    prep.add_argument("--source", default="embedded", choices=ANY_DATA_SOURCE,
                      help="authors: the authors' chairs tree, extracted by hand (suncg only); default %(default)s")
    prep.add_argument("--root", type=Path, default=DEFAULT_DATA_ROOT,
                      help="where the dataset goes (drnet train's --data-root); default %(default)s")
    prep.add_argument("--size", default="cpu", choices=["ci", "cpu"],
                      help="stand-in size for NORB, the chairs and KTH (embedded source only): ci is the smoke "
                           "profile's, cpu the cpu profile's; default %(default)s")
    prep.add_argument("--image-size", type=int, default=64, choices=[32, 64, 128],
                      help="KTH: frames are squashed to this square size when converted (the smoke profile's 32, "
                           "the cpu profile's 64, the paper profile's 128); default %(default)s")
    prep.add_argument("--skip-corrupt", action="store_true",
                      help="KTH: skip (and report) videos that cannot be decoded or fail their recorded "
                           "checksum, instead of stopping")
    prep.set_defaults(func=cmd_data)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError, OSError, CheckpointError, DownloadError) as err:   # OSError: a folder that is a file, no permission
        message = err.args[0] if isinstance(err, KeyError) and err.args else err   # str(KeyError) adds quotes
        print(f"drnet {args.command}: error: {message}", file=sys.stderr)
        return 2
    except (TrainingInterrupted, BatchInterrupted) as stop:
        print(f"drnet {args.command}: {stop}", file=sys.stderr)
        return 130   # the shell's code for a process stopped by Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
