"""Measurements added to KTH runs after they were recorded, taken on their saved DrNet checkpoints.

    .venv/bin/python tools/kth_remeasure.py [--measure error_split|person_leak|ceiling_by_scenario|self_reconstruction|mcnet_clips|pose_codes|code_statistics|action_confusion] \
        results/cpu/kth_oracle_seed0.json=PATH/drnet.pt [...]

Each argument pairs a recorded run's results JSON (its configuration) with the DrNet checkpoint
that run trained (``checkpoints/<profile>/kth_<tag>_seed<k>/drnet.pt`` of the clone it ran in).
The KTH notebook's results hold two models (``variants``: with and without the adversarial loss);
``RESULTS_JSON:VARIANT=CHECKPOINT`` names one, e.g. ``results/cpu/kth_seed0.json:noadv=PATH/drnet.pt``.
``--measure`` picks what is measured for every pair:

* ``error_split`` (the default): :func:`drnet_lib.kth_decoder.ceiling_error_split` re-renders
  the run's test clips and splits the squared error of the frames decoded from the true poses,
  and of the last observed frame, into the pixels that change and the ones that stay;
* ``person_leak``: :func:`drnet_lib.kth_experiment.scores_across_scenarios` encodes the test
  persons' windows and names the person from each code with the scored scenario held out;
* ``ceiling_by_scenario``: :func:`drnet_lib.kth_decoder.ceiling_by_scenario` scores the frames
  decoded from the true poses, and the last observed frame, per scenario and action group;
* ``self_reconstruction``: :func:`drnet_lib.kth_decoder.self_reconstruction_by_scenario` decodes
  each test clip's last observed frame from its own codes (the autoencoder's fidelity, and the
  brightness offset of its frames), per scenario and action group;
* ``mcnet_clips``: DrNet's prediction (with the run's pose LSTM, ``lstm.pt`` beside ``drnet.pt``),
  copy-last, the ceiling and DrNet standing still (:func:`drnet_lib.kth_decoder.decode_held_pose`)
  scored twice, on the run's own test clips (one per range, what it recorded) and on MCNet's clip list (:func:`drnet_lib.kth_experiment.mcnet_clips`, more clips of the fast actions):
  whether the study's protocol, rather than MCNet's, decides the verdict on copy-last;
* ``pose_codes``: :func:`drnet_lib.kth_pose_codes.pose_code_agreement`, the pose LSTM's predicted
  motion against the true one in code space (direction, length, error against holding the last
  pose), per action and action group: whether its swings fall out of step or die down; and
  :func:`drnet_lib.kth_pose_codes.scaled_motion_psnr`, the PSNR of the predicted motion shortened
  (0: standing still ... 1: the prediction), what a shorter motion would be worth in pixels;
* ``code_statistics``: :func:`drnet_lib.kth_pose_codes.true_code_statistics`, the true pose codes'
  size and smoothness and where they sit in the encoder's tanh range;
* ``action_confusion``: :func:`drnet_lib.kth_experiment.classification_scores` refitted (it
  reproduces the run's recorded scores), kept: the action-from-pose accuracy and where its answers
  go per true action (``classification.action_confusion_from_pose``, recorded by runs from now on).

A run recorded with ``lstm.bn_refresh_batches > 0`` measured its model with BatchNorm statistics
recomputed for the final weights; so does this tool (the checkpoint holds training's own). It also
measures with the CPU thread count the run recorded (``--threads`` to choose): scikit-learn's
classifiers fit slightly differently with another, so only then do refitted scores equal the run's.

``--persons train`` takes the clips of the persons DrNet trained on instead of the test persons
(``error_split`` and ``ceiling_by_scenario``): whether the decoder does better on people it has
seen, i.e. how much of its ceiling is generalisation to new persons. Those measurements go to
``kth_<measure>_train_persons.json``.

The measurements go to ``results/<profile>/kth_<measure>.json`` (one entry per run, with
provenance, and with ``checkpoint_origin`` when the checkpoints were not the run's own but, say,
retrained from its settings and seed: ``--checkpoint-origin TEXT``); entries of runs not named keep their earlier values. ``drnet train --record`` on KTH
records the first two itself (``prediction.error_split``, ``…_across_scenarios``); this tool is for runs
recorded before it did.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from drnet_lib import kth_analysis, kth_decoder, kth_experiment, kth_pose_codes
from drnet_lib.checkpoint import CheckpointError
from drnet_lib.predict import finished_lstm
from drnet_lib.results import REPO_ROOT, provenance, read_results, recorded_cpu_threads, write_measurement
from drnet_lib.runtime import cpu_threads
from drnet_lib.train import DrNetTrainer, make_bank


WHAT = {
    "error_split": ("squared error of the decoder's ceiling and of copy-last, split into the pixels that change "
                    f"(|truth - last observed| > {kth_decoder.CHANGE_THRESHOLD}) and the pixels that stay; "
                    "each part divided by all pixels"),
    "ceiling_by_scenario": ("mean PSNR and SSIM over the first eval.metric_steps predicted steps of the decoder's ceiling "
                            "(frames decoded from the true poses) and of copy-last, per scenario (d1-d4) and action group "
                            "(moving: walking, jogging, running; in place: boxing, handwaving, handclapping)"),
    "self_reconstruction": ("the last observed frame of each test clip decoded from its own content code, skips and pose "
                            "code: mean PSNR, mean signed brightness offset (decoded - true, intensities in [0, 1]) and the "
                            "share of the squared error that offset accounts for, per scenario and action group"),
    "mcnet_clips": ("per-step PSNR and SSIM of DrNet's prediction (the run's DrNet and pose LSTM), of copy-last, of "
                    "the frames decoded from the true poses (oracle) and of the last observed pose held (held_pose) over "
                    "the first eval.metric_steps predicted steps, their means, the share of steps after the first few "
                    "where DrNet beats copy-last, and the same per action, on two clip lists of the test persons: "
                    "the run's own (kth_experiment.test_clips, one clip per range) and MCNet's "
                    "(kth_experiment.mcnet_clips: a clip every 3 frames of running and jogging ranges, every "
                    "eval.metric_steps frames of the others)"),
    "pose_codes": ("per predicted step (the first eval.metric_steps), in pose-code space, with the run's DrNet and pose "
                   "LSTM: the cosine between the predicted and the true motion from the last observed pose (alignment) "
                   "and between each step's predicted and true motion (step_alignment), the predicted motion's mean "
                   "length over the true one's (length_ratio), and the mean squared error of the predicted codes over "
                   "that of holding the last observed pose (error_ratio); per action and per action group (moving: "
                   "walking, jogging, running; in place: boxing, handwaving, handclapping; each action counted once); "
                   "and scaled_motion: the mean PSNR over those steps of frames decoded from the last observed pose "
                   "plus s times the LSTM's predicted motion, for s in kth_pose_codes.MOTION_SCALES (0: standing "
                   "still, 1: DrNet's prediction), per action and group"),
    "code_statistics": ("the pose codes of the test clips' frames (the observed and the scored ones) as the pose LSTM "
                        "sees them: their spread, the mean step between consecutive codes and its ratio to a clip's "
                        "spread, the lag-1 autocorrelation, how far each dimension's mean lies from 0 (offset), each "
                        "dimension's standard deviation and tanh's slope at the codes "
                        "(kth_pose_codes.true_code_statistics, code_motion.code_statistics)"),
    "action_confusion": ("the two-layer action-from-pose classifier of kth_experiment.classification_scores, refitted "
                         "on the training persons' windows: its accuracy on the test persons' windows and, per true "
                         "action, the share of its windows given each action (rows sum to 1); the same for the "
                         "classifier on the windows' frame motion (kth_experiment.frame_motion: no DrNet)"),
    "person_leak": ("the test person named from each code of a scenario's windows by classifiers fitted on the "
                    "same persons' other scenarios (kth_experiment.person_across_scenarios)"),
}


def measure(cfg, checkpoint: Path, what: str, persons: str = "test") -> dict:
    """``what`` (a key of :data:`WHAT`) of one trained model (its configuration ``cfg``), from
    its DrNet checkpoint, on the clips of the ``persons`` split ("test" or "train")."""
    if cfg.experiment != "kth":
        raise SystemExit(f"{checkpoint} belongs to a {cfg.experiment} run; this tool measures KTH runs")
    # as the trainer reads it: another configuration's checkpoint, or an unfinished one, is refused by name
    state = DrNetTrainer.read_finished_checkpoint(cfg, checkpoint)
    # the run's own model, memory layout included (channels-last on the CPU): another layout rounds
    # differently, and the classifiers' fits turn that into other scores
    trainer = DrNetTrainer(cfg, "cpu")
    trainer.model.load_state_dict(state["modules"]["drnet"])
    if cfg.lstm.bn_refresh_batches:   # as the run measured it: statistics recomputed on its training batches
        trainer.refresh_bn_statistics(cfg.lstm.bn_refresh_batches)
    model = trainer.model
    # the trainer already holds the training persons' clips: load the test persons' only when asked for
    bank = trainer.bank if persons == "train" else make_bank(cfg, persons, "cpu")
    if what == "action_confusion":
        scores, _ = kth_experiment.classification_scores(model, trainer.bank, bank, cfg)
        return {"iteration": state["iteration"], "windows": scores["classification.windows"],
                "action_from_pose": scores["classification.action_from_pose"],
                "confusion": scores["classification.action_confusion_from_pose"],
                "action_from_frame_motion": scores["classification.action_from_frame_motion"],
                "frame_motion_confusion": scores["classification.action_confusion_from_frame_motion"]}
    if what == "person_leak":
        windows = kth_experiment.encode_windows(model, bank, cfg.lstm.n_past)
        return {"iteration": state["iteration"], "windows": len(windows["person"]),
                "scores": kth_experiment.scores_across_scenarios(windows, cfg)}
    clips = kth_experiment.test_clips(bank, cfg.lstm.n_past + cfg.eval.metric_steps, cfg.eval.rollout_clips,
                                      cfg.data.test_seed)
    if what == "mcnet_clips":
        lstm = finished_lstm(cfg, checkpoint.with_name("lstm.pt"))
        lists = {"one_per_range": clips, "mcnet": kth_experiment.mcnet_clips(bank, cfg.lstm.n_past, cfg.eval.metric_steps)}
        return {"iteration": state["iteration"], "lists": {name: _prediction_only(model, lstm, bank, part, cfg)
                                                           for name, part in lists.items()}}
    if what == "pose_codes":
        lstm = finished_lstm(cfg, checkpoint.with_name("lstm.pt"))
        return {"iteration": state["iteration"], "clips": len(clips),
                **kth_pose_codes.pose_code_agreement(model, lstm, bank, clips, cfg),
                "scaled_motion": kth_pose_codes.scaled_motion_psnr(model, lstm, bank, clips, cfg)}
    if what == "code_statistics":
        return {"iteration": state["iteration"], **kth_pose_codes.true_code_statistics(model, bank, clips, cfg)}
    if what == "self_reconstruction":
        return {"iteration": state["iteration"], "clips": len(clips),
                "scenarios": kth_decoder.self_reconstruction_by_scenario(model, bank, clips, cfg)}
    if what == "ceiling_by_scenario":
        return {"iteration": state["iteration"], "clips": len(clips),
                "scenarios": kth_decoder.ceiling_by_scenario(model, bank, clips, cfg)}
    return {"iteration": state["iteration"], "clips": len(clips),
            "split": kth_decoder.ceiling_error_split(model, bank, clips, cfg)}


def _prediction_only(model, lstm, bank, clips, cfg) -> dict:
    """:func:`kth_experiment.predict_and_roll_out`'s prediction scores on ``clips``, without the long
    rollouts (generation stops at the last scored step; no rollout checkpoints)."""
    short = replace(cfg, eval=replace(cfg.eval, rollout_steps=cfg.eval.metric_steps, rollout_checkpoints=[]))
    metrics, _ = kth_experiment.predict_and_roll_out(model, lstm, bank, clips, short, action_classifier=None)
    return {"clips": len(clips), **{key.removeprefix("prediction."): value for key, value in metrics.items()
                                    if key.startswith("prediction.") and key != "prediction.error_split"}}


def main(argv: list[str] | None = None) -> int:
    first, _, rest = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=first, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=rest)
    parser.add_argument("pairs", nargs="+", metavar="RESULTS_JSON[:VARIANT]=CHECKPOINT")
    parser.add_argument("--measure", choices=sorted(WHAT), default="error_split",
                        help="what to measure (see below); default %(default)s")
    parser.add_argument("--persons", choices=("test", "train"), default="test",
                        help="whose clips: the test persons (default) or those DrNet trained on")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "results",
                        help="where results/<profile>/kth_<measure>.json is written; default %(default)s")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads to measure with (default: as many as the run recorded in its provenance; "
                             "the classifiers' fits depend on it, so a rerun reproduces the run's scores only with them)")
    parser.add_argument("--checkpoint-origin", metavar="TEXT",
                        help="where the checkpoints come from, when they are not the recorded runs' own "
                             "(e.g. retrained from the same settings and seeds); kept in each entry")
    args = parser.parse_args(argv)
    if args.persons == "train" and args.measure in ("person_leak", "action_confusion"):
        parser.error(f"--persons train: {args.measure} scores the test persons only (its classifiers are fitted on "
                     "them or on the training persons)")
    if any("=" not in a for a in args.pairs):
        parser.error("each argument is RESULTS_JSON=CHECKPOINT, e.g. results/cpu/kth_vgg_seed0.json=checkpoints/cpu/kth_vgg_seed0/drnet.pt")
    runs = []   # (results JSON, variant or None, checkpoint) per argument
    for pair in args.pairs:
        results_arg, checkpoint = pair.split("=", 1)
        results_json, _, variant = results_arg.partition(":")
        runs.append((Path(results_json), variant or None, Path(checkpoint)))
    # every file before any measurement: a misspelt last pair would otherwise stop a long batch at its end
    missing = [str(path) for results_json, _, checkpoint in runs for path in (results_json, checkpoint)
               if not path.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    for results_json, variant, checkpoint in runs:
        start = time.perf_counter()
        run = read_results(results_json)
        if variant is None and run.get("variants"):   # it would silently measure the base settings' model
            raise SystemExit(f"{results_json} records {len(run['variants'])} models: name one, as "
                             f"{results_json}:VARIANT=CHECKPOINT (its variants: {', '.join(run['variants'])})")
        try:
            cfg = kth_analysis.run_config(run, variant)
        except ValueError as err:
            raise SystemExit(f"{results_json}: {err}") from None
        try:
            with cpu_threads(args.threads or recorded_cpu_threads(run) or torch.get_num_threads()):
                entry = {"results": results_json.name, **({"variant": variant} if variant else {}),
                         **({"persons": "train"} if args.persons == "train" else {}),
                         **measure(cfg, checkpoint, args.measure, args.persons)}
                entry["provenance"] = provenance(torch.device("cpu"), time.perf_counter() - start)
        except CheckpointError as err:   # another configuration's, or unfinished: the tool's error, not a traceback
            raise SystemExit(str(err)) from None
        if args.checkpoint_origin:
            entry["checkpoint_origin"] = args.checkpoint_origin
        shown = {k: v for k, v in entry.items() if k in ("split", "scores", "scenarios", "action_from_pose", "confusion",
                                                         "action_from_frame_motion")}
        shown.update({name: {k: v for k, v in scores.items() if not isinstance(v, dict)}   # the means, not the curves
                      for name, scores in entry.get("lists", {}).items()})
        shown.update({group: {k: [round(x, 2) for x in curve] for k, curve in entry[group].items()}
                      for group in ("moving", "in place") if group in entry})       # pose_codes' curves
        if "scaled_motion" in entry:
            shown["scaled_motion"] = {g: v for g, v in entry["scaled_motion"].items() if g != "by_action"}
        print(results_json.stem, json.dumps(shown, indent=1))
        # one file per profile and measurement; each run's entry is replaced, the others kept
        seen = args.persons == "train"
        out = args.results_dir / run["profile"] / f"kth_{args.measure}{'_train_persons' if seen else ''}.json"
        what = WHAT[args.measure] + (" On the clips of the persons DrNet trained on." if seen else "")
        write_measurement(out, what, results_json.stem + (f":{variant}" if variant else ""), entry)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
