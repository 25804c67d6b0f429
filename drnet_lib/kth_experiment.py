"""The KTH experiment: future frames from ten observed ones, and what each code knows of the action.

Every measurement uses the *test persons* (people DrNet never saw):

* **prediction** (MCNet's protocol, reference/repro_anchors.md §2.2): for ``eval.rollout_clips``
  fixed test clips, the pose LSTM sees ``lstm.n_past`` frames and generates on; per-step PSNR and
  SSIM (:func:`.evaluate.frame_metrics`, scikit-image) of the first ``eval.metric_steps`` generated
  frames against the truth, beside the copy-last-observed-frame baseline;
* **long range**: the same rollouts continue to ``eval.rollout_steps`` frames, far past the end of
  any real clip, so there is no truth to compare with. Two checks need none: the generated frames
  are re-encoded and the action classifier (trained on *real* pose windows, below) names the
  action of the window ending at each of ``eval.rollout_checkpoints`` (``rollout.action_accuracy``),
  and ``rollout.motion_ratio`` compares how much the generated frames change from one to the next
  with how much real frames do (1 = as lively as real video; 0 = frozen);
* **classification** on frozen codes of windows of ``lstm.n_past`` consecutive frames (every
  non-overlapping window of every annotated range): the action from the window's pose codes
  (concatenated in time order) and from its first frame's content code, fitted on the training
  persons and scored on the test persons (chance 1/6); the person from the same codes, fitted on
  the test persons' even-numbered ranges and scored on their odd ones (chance 1 / test persons).
  Each with the two-layer classifier and the linear probe of :mod:`.classification`. The person
  once more with each scenario held out in turn (:func:`person_across_scenarios`): what a code
  knows of the person beyond the place where the person was filmed.
"""

from __future__ import annotations

import numpy as np
import torch

from .classification import chance_accuracy, classify, fit_classifier
from .config import ExperimentConfig, apply_overrides, config_from_dict, differences, get_config
from .data.kth import ACTIONS, KTHClips
from .data.sweeps import ClipStarts
from .evaluate import frame_metrics, mean_over_chunks, prediction_metrics
from .models import evaluating
from .predict import rollout, set_bn_mode

FIRST_FEW = 3   # "beats copy-last at most steps beyond the first few": steps after this one count


def test_clips(bank: KTHClips, length: int, count: int, seed: int) -> ClipStarts:
    """``count`` fixed clips of ``length`` frames from ``bank`` (at most one per annotated range,
    drawn with ``seed``), so every run and machine scores the same clips. Ranges shorter than
    ``length`` cannot give one."""
    g = torch.Generator().manual_seed(seed)
    lengths = bank.lengths.cpu()
    eligible = torch.nonzero(lengths >= length).flatten()
    if len(eligible) == 0:
        raise ValueError(f"no test range has {length} frames (n_past + eval.metric_steps); "
                         f"the longest has {int(lengths.max())}")
    chosen = eligible[torch.randperm(len(eligible), generator=g)[:count]]
    room = lengths[chosen] - length + 1
    start = (torch.rand(len(chosen), generator=g, dtype=torch.float64) * room).long()
    return ClipStarts(chosen, start).to(bank.device)


def window_starts(bank: KTHClips, window: int) -> ClipStarts:
    """Every non-overlapping window of ``window`` frames of every range, in range order."""
    lengths = bank.lengths.cpu()
    counts = lengths // window
    sequence = torch.repeat_interleave(torch.arange(len(lengths)), counts)
    first = torch.cumsum(counts, 0) - counts
    start = (torch.arange(int(counts.sum())) - torch.repeat_interleave(first, counts)) * window
    return ClipStarts(sequence, start).to(bank.device)


@torch.no_grad()
def encode_windows(model, bank: KTHClips, window: int, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Frozen codes of every :func:`window_starts` window.

    Returns (N windows): ``pose`` ``(N, window * dp)`` (the window's pose codes in time order),
    ``content`` ``(N, dc)`` (its first frame's), and ``action``, ``person``, ``scenario``,
    ``range_index`` ``(N,)``.
    """
    device = next(model.parameters()).device
    windows = window_starts(bank, window)
    times = torch.arange(window, device=bank.device)
    pose, content = [], []
    with evaluating(model):
        for start in range(0, len(windows), batch_size):
            frames = bank.render(windows.subset(slice(start, start + batch_size)), times).to(device)
            pose.append(model.encode_pose(frames.flatten(0, 1)).reshape(len(frames), -1).cpu())
            content.append(model.encode_content(frames[:, 0])[0].flatten(1).cpu())
    seq = windows.sequence.cpu()
    out = {"pose": torch.cat(pose).numpy(), "content": torch.cat(content).numpy()}
    for name in ("action", "person", "scenario", "range_index"):
        out[name] = getattr(bank, name).cpu()[seq].numpy()
    return out


def classification_scores(model, train_bank: KTHClips, test_bank: KTHClips, cfg: ExperimentConfig) -> tuple[dict, object]:
    """Action and person from each code (module docstring), as results keys
    ``classification.{action,person}_from_{pose,content}`` (two-layer classifier) and
    ``probe.…`` (linear), the person from each code with the scored scenario held out
    (``…person_from_{pose,content}_across_scenarios``, :func:`person_across_scenarios`), plus the
    chance levels. Also returns the fitted action-from-pose
    classifier, for the generated frames."""
    e, window = cfg.eval, cfg.lstm.n_past
    train, test = encode_windows(model, train_bank, window), encode_windows(model, test_bank, window)
    odd = test["range_index"] % 2 == 1
    out, fitted = {}, {}
    for kind, prefix in (("mlp", "classification."), ("linear", "probe.")):
        for code in ("pose", "content"):
            fitted[kind, code] = clf = fit_classifier(train[code], train["action"], kind, e.classifier_hidden,
                                                      e.classifier_max_iter, cfg.seed)
            out[f"{prefix}action_from_{code}"] = float(clf.score(test[code], test["action"]))
            out[f"{prefix}person_from_{code}"] = classify(
                test[code][~odd], test["person"][~odd], test[code][odd], test["person"][odd], kind,
                e.classifier_hidden, e.classifier_max_iter, cfg.seed)
    out["classification.action_chance"] = chance_accuracy(train["action"], test["action"])
    out["classification.person_chance"] = chance_accuracy(test["person"][~odd], test["person"][odd])
    out.update(scores_across_scenarios(test, cfg))
    out["classification.windows"] = {"train": len(train["action"]), "test": len(test["action"])}
    return out, fitted["mlp", "pose"]


def person_across_scenarios(codes: dict[str, np.ndarray], code: str, kind: str, hidden: int = 256,
                            max_iter: int = 200, seed: int = 0) -> tuple[float, float]:
    """The person named from the ``code`` codes of one scenario's windows by a classifier fitted on
    the same persons' *other* scenarios (each scenario held out in turn, pooled over the windows).

    The person split of :func:`classification_scores` (even against odd ranges) has the same videos
    on both sides, so a code that keeps the place (background, where the person stands, the
    clothes) scores as knowing the person. Here the scored scenario's place, and in d3 the
    clothes, were never seen in fitting: what can still name the person is what goes with them
    from one scenario to the next (height, build, gait).

    Args:
        codes: :func:`encode_windows` output (``code``, ``person`` and ``scenario`` used).
        code: ``"pose"`` or ``"content"``; kind, hidden, max_iter, seed: the classifier's.
    Returns:
        ``(accuracy, chance)``, chance by always naming the fitted side's most frequent person.
        Only windows of persons seen in the other scenarios are scored, and a held-out scenario
        whose other scenarios show fewer than two persons is skipped; ``(nan, nan)`` if none is left.
    """
    correct = majority = scored = 0
    for scenario in np.unique(codes["scenario"]):
        held = codes["scenario"] == scenario
        seen = np.unique(codes["person"][~held])
        if len(seen) < 2:
            continue
        scored_mask = held & np.isin(codes["person"], seen)
        clf = fit_classifier(codes[code][~held], codes["person"][~held], kind, hidden, max_iter, seed)
        correct += int((clf.predict(codes[code][scored_mask]) == codes["person"][scored_mask]).sum())
        n = int(scored_mask.sum())
        majority += chance_accuracy(codes["person"][~held], codes["person"][scored_mask]) * n
        scored += n
    return (correct / scored, majority / scored) if scored else (float("nan"), float("nan"))


def scores_across_scenarios(test: dict[str, np.ndarray], cfg: ExperimentConfig) -> dict[str, float]:
    """:func:`person_across_scenarios` from each code with each classifier, as results keys
    ``{classification,probe}.person_from_{pose,content}_across_scenarios`` and
    ``classification.person_chance_across_scenarios``; ``test``: the test persons' windows."""
    e, out = cfg.eval, {}
    for kind, prefix in (("mlp", "classification."), ("linear", "probe.")):
        for code in ("pose", "content"):
            out[f"{prefix}person_from_{code}_across_scenarios"], chance = person_across_scenarios(
                test, code, kind, e.classifier_hidden, e.classifier_max_iter, cfg.seed)
    out["classification.person_chance_across_scenarios"] = chance
    return out


@torch.no_grad()
def decode_true_poses(model, observed: torch.Tensor, truth: torch.Tensor, bn_mode: str) -> torch.Tensor:
    """The decoder's ceiling: the frames decoded from the *true* future pose codes, with content
    and skips from the last observed frame (as in a rollout), the best any pose predictor could do
    with this encoder and decoder. ``observed`` ``(B, n_past, C, H, W)``, ``truth`` ``(B, T, C, H, W)``
    -> ``(B, T, C, H, W)``; the model's train/eval flag is restored."""
    was_training = model.training
    set_bn_mode(model, bn_mode)
    content, skips = model.encode_content(observed[:, -1])
    T = truth.shape[1]
    poses = model.encode_pose(truth.flatten(0, 1))
    decoded = model.decode(content.repeat_interleave(T, 0), [s.repeat_interleave(T, 0) for s in skips], poses)
    model.train(was_training)
    return decoded.view_as(truth)


def _oracle_metrics(ceiling: torch.Tensor, truth: torch.Tensor) -> dict[str, np.ndarray]:
    """PSNR/SSIM of :func:`decode_true_poses`' frames. Keys ``oracle_psnr``, ``oracle_ssim``, each ``(T,)``."""
    scores = frame_metrics(ceiling, truth)
    return {"oracle_psnr": scores["psnr"], "oracle_ssim": scores["ssim"]}


def _summary(per_step: dict[str, list[float]]) -> dict[str, float]:
    """Each per-step curve's mean over the steps (``<key>_mean``), and ``steps_beating_copy_last``:
    the share of the steps after :data:`FIRST_FEW` where DrNet's mean PSNR beats copy-last's."""
    out = {f"{key}_mean": round(float(np.mean(values)), 4) for key, values in per_step.items()}
    later = slice(FIRST_FEW, None)
    out["steps_beating_copy_last"] = float(np.mean(
        np.array(per_step["psnr"][later]) > np.array(per_step["copy_last_psnr"][later])))
    return out


def _motion(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute change between consecutive frames ``(B, T, C, S, S)`` -> ``(B, T-1)``."""
    return (frames[:, 1:] - frames[:, :-1]).abs().flatten(2).mean(-1)


@torch.no_grad()
def predict_and_roll_out(model, lstm, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig,
                         action_classifier, keep: int = 4, chunk: int = 32) -> tuple[dict, dict]:
    """Roll every clip of ``clips`` out to ``eval.rollout_steps`` frames and score it.

    Returns ``(metrics, samples)``. Metrics: per-step ``prediction.{psnr,ssim}``,
    ``prediction.copy_last_{psnr,ssim}`` and ``prediction.oracle_{psnr,ssim}`` (decoded from the
    true future poses: the decoder's ceiling; dicts step -> mean over clips, steps 1..metric_steps),
    their means, ``prediction.steps_beating_copy_last`` (share of steps after :data:`FIRST_FEW`
    where DrNet's PSNR is higher), ``prediction.by_action`` (action name -> clips, mean PSNR/SSIM of
    DrNet, copy-last and the ceiling, and that share, over that action's clips),
    ``prediction.error_split`` (where the ceiling and copy-last go wrong, :func:`ceiling_error_split`'s
    groups, from the same decoded frames), ``rollout.action_accuracy`` and ``rollout.motion_ratio``
    (dicts checkpoint step -> value; module docstring). ``samples``: the first ``keep`` clips'
    observed, generated and true frames (the truth stops at ``metric_steps``).
    """
    e, n_past, window = cfg.eval, cfg.lstm.n_past, cfg.lstm.n_past
    device = next(model.parameters()).device
    horizon = e.metric_steps
    checkpoints = [s for s in e.rollout_checkpoints if window <= s <= e.rollout_steps]
    scores, hits, motion, real_motion, samples = [], {s: 0.0 for s in checkpoints}, {s: [] for s in checkpoints}, [], {}
    splits = []   # (action, error_split of one clip's ceiling)
    for start in range(0, len(clips), chunk):
        part = clips.subset(slice(start, start + chunk))
        observed = bank.render(part, torch.arange(n_past, device=bank.device)).to(device)
        truth = bank.render(part, torch.arange(n_past, n_past + horizon, device=bank.device)).to(device)
        generated = rollout(model, lstm, observed, e.rollout_steps, cfg.lstm.bn_mode)
        labels = bank.action[part.sequence].cpu().numpy()
        for action in np.unique(labels):   # scored per action, so the per-action means come for free
            rows = torch.as_tensor(labels == action, device=device)
            ceiling = decode_true_poses(model, observed[rows], truth[rows], cfg.lstm.bn_mode)
            scores.append((int(action), int(rows.sum()), {
                **prediction_metrics(observed[rows], generated[rows, :horizon], truth[rows]),
                **_oracle_metrics(ceiling, truth[rows])}))
            splits += [(int(action), split) for split in _clip_splits(ceiling, observed[rows], truth[rows])]
        real_motion.append(_motion(truth).cpu())
        with evaluating(model):
            poses = model.encode_pose(generated.flatten(0, 1)).view(len(part), e.rollout_steps, -1).cpu()
        for s in checkpoints:
            guess = action_classifier.predict(poses[:, s - window:s].flatten(1).numpy())
            hits[s] += float((guess == labels).sum())
            motion[s].append(_motion(generated[:, s - window:s]).cpu())
        if not samples:
            samples = {"observed": observed[:keep].cpu(), "generated": generated[:keep].cpu(),
                       "truth": truth[:keep].cpu(), "action": labels[:keep]}
    per_step = mean_over_chunks([(n, m) for _, n, m in scores], "")
    metrics = {f"prediction.{key}": {step: v for step, v in enumerate(values, start=1)}
               for key, values in per_step.items()}
    metrics.update({f"prediction.{key}": value for key, value in _summary(per_step).items()})
    metrics["prediction.by_action"] = {}
    for action in sorted({a for a, _, _ in scores}):
        mine = [(n, m) for a, n, m in scores if a == action]
        metrics["prediction.by_action"][ACTIONS[action]] = {
            "clips": sum(n for n, _ in mine), **_summary(mean_over_chunks(mine, ""))}
    real = float(torch.cat(real_motion).mean())
    metrics["rollout.action_accuracy"] = {s: hits[s] / len(clips) for s in checkpoints}
    metrics["rollout.motion_ratio"] = {s: float(torch.cat(motion[s]).mean()) / real for s in checkpoints}
    metrics["prediction.error_split"] = _grouped_error_split(splits)
    return metrics, samples


def run_config(result, variant: str | None = None) -> ExperimentConfig:
    """The configuration a recorded run (a results dict) trained, or that of one of its
    ``variants`` (the KTH notebook records two models: ``adv`` and ``noadv``)."""
    cfg = config_from_dict(result["config"])
    if variant is None:
        return cfg
    variants = result.get("variants", {})
    if variant not in variants:
        raise ValueError(f"the results have no variant {variant!r}; they have: {', '.join(variants) or 'none'}")
    return apply_overrides(cfg, variants[variant])


def changed_settings(result, variant: str | None = None) -> dict[str, object]:
    """What a recorded run (a results dict) changed from its profile, seed aside:
    ``{dotted key: the run's value}``, e.g. ``{"model.content_model": "vgg_unet"}``. ``variant``
    names one of the models of a run that recorded several (the KTH notebook's ``variants``)."""
    cfg = run_config(result, variant)
    return {key: ours for key, ours, _ in differences(cfg, get_config(cfg.experiment, cfg.profile, seed=cfg.seed))}


def person_leak_rows(leak_runs: dict[str, dict], results: dict[str, dict]) -> list[dict]:
    """The person named from each model's codes on the two splits, one row per model measured by
    ``tools/kth_remeasure.py --measure person_leak``.

    Args:
        leak_runs: that file's ``"runs"``: ``{name: entry}``, the name a results file's stem, with
            ``":<variant>"`` for one model of the notebook's results (``kth_seed0:noadv``).
        results: ``{stem: results dict}`` holding every named run.
    Returns:
        Rows with ``changed`` (what the model changed from the cpu profile, as text), ``only_beta``
        (whether that is at most the adversarial weight), ``beta``,
        ``seed``, and the person named from the pose codes on the even/odd ranges (``even_odd_mlp``,
        ``even_odd_probe``, from the results) and with the scenario held out (``across_mlp``,
        ``across_probe``), from the content codes (``content_even_odd_probe``,
        ``content_across_probe``), and ``chance_across``. A model measured twice (the notebook's,
        re-evaluated under a tag: same settings and seed) gives one row.
    """
    rows, seen = [], set()
    for name, entry in leak_runs.items():
        stem, _, variant = name.partition(":")
        result, variant = results[stem], variant or None
        changed = changed_settings(result, variant)
        key = (tuple(sorted(changed.items())), result["seed"])
        if key in seen:
            continue
        seen.add(key)
        m, s = result["metrics"], entry["scores"]
        # a run recording several models keeps its own configuration's scores unprefixed, the others' as <variant>.
        recorded = f"{variant}." if variant and changed != changed_settings(result) else ""
        rows.append({"changed": ", ".join(f"{k} = {v}" for k, v in changed.items()) or "cpu profile",
                     "only_beta": set(changed) <= {"train.adversarial_weight"},
                     "beta": run_config(result, variant).train.adversarial_weight,
                     "seed": result["seed"],
                     "even_odd_mlp": m[f"classification.{recorded}person_from_pose"],
                     "even_odd_probe": m[f"probe.{recorded}person_from_pose"],
                     "across_mlp": s["classification.person_from_pose_across_scenarios"],
                     "across_probe": s["probe.person_from_pose_across_scenarios"],
                     "content_even_odd_probe": m[f"probe.{recorded}person_from_content"],
                     "content_across_probe": s["probe.person_from_content_across_scenarios"],
                     "chance_across": s["classification.person_chance_across_scenarios"]})
    return rows


def against_same_seeds(runs, reference_runs, keys) -> dict[str, float]:
    """A model recorded from several seeds beside the reference runs of the same seeds (paired by
    seed, so a model with fewer seeds is compared with the same seeds' reference, not all of it).

    Args:
        runs, reference_runs: results dicts (``read_results``); every run's seed needs a reference run.
        keys: metric names, each a float in ``result["metrics"]``.
    Returns:
        ``seeds`` (how many) and, per key: ``<key>`` (the mean over ``runs``), ``<key>.reference``
        (the mean over the same seeds' reference runs) and ``<key>.gain``, ``.gain_min``,
        ``.gain_max`` (the per-seed difference run - reference: mean, min, max), ``.gain_max_seed``
        (the seed with the largest).
    """
    reference = {r["seed"]: r for r in reference_runs}
    missing = sorted({r["seed"] for r in runs} - set(reference))
    if missing:
        raise ValueError(f"no reference run for seed(s) {missing}: record them first, or compare fewer seeds")
    out = {"seeds": len(runs)}
    for key in keys:
        ours = np.array([r["metrics"][key] for r in runs], dtype=float)
        theirs = np.array([reference[r["seed"]]["metrics"][key] for r in runs], dtype=float)
        gain = ours - theirs
        out.update({key: float(ours.mean()), f"{key}.reference": float(theirs.mean()), f"{key}.gain": float(gain.mean()),
                    f"{key}.gain_min": float(gain.min()), f"{key}.gain_max": float(gain.max()),
                    f"{key}.gain_max_seed": int(runs[int(gain.argmax())]["seed"])})
    return out


def last_motion_ratio(metrics: dict) -> float:
    """``rollout.motion_ratio`` at the rollout's last checkpoint (1 = as lively as real video)."""
    return list(metrics["rollout.motion_ratio"].values())[-1]


def with_rollout_summary(result) -> dict:
    """A results dict with two more metrics (a copy; the original is left alone):
    ``prediction.gap_to_ceiling``, how many dB DrNet's own prediction is below the frames decoded
    from the true poses, and ``rollout.motion_ratio.last``, the motion ratio at the rollout's last
    checkpoint."""
    m = result["metrics"]
    return {**result, "metrics": {**m, "prediction.gap_to_ceiling": m["prediction.oracle_psnr_mean"] - m["prediction.psnr_mean"],
                                  "rollout.motion_ratio.last": last_motion_ratio(m)}}


def drnet_twin(tag: str, by_tag: dict[str, list[str]], changed: dict[str, dict], lstm_settings) -> str:
    """The tag whose runs trained the same DrNet as ``tag``'s: the same changed settings once
    ``lstm_settings`` are left out (a run that retrained only the LSTM on copied DrNet checkpoints
    against the runs it copied them from). ``by_tag``: tag -> run names; ``changed``: run name ->
    :func:`changed_settings`."""
    drnet_changes = {k: v for k, v in changed[by_tag[tag][0]].items() if k not in lstm_settings}
    twins = [t for t, names in by_tag.items() if t != tag and changed[names[0]] == drnet_changes]
    if not twins:
        raise ValueError(f"no recorded tag trains the DrNet of {tag!r} ({drnet_changes or 'the profile'}) "
                         "with the profile's LSTM")
    return twins[0]


def lost_action(action_from_pose: float, action_chance: float) -> bool:
    """Whether pose codes name the action no better than chance (within 0.05 of it): a pose
    encoder that has stopped carrying the motion."""
    return action_from_pose < action_chance + 0.05


def adversarial_sweep(results) -> list[dict]:
    """The runs of ``results`` (results dicts, as ``read_results`` returns them) whose configuration
    is their profile's except, at most, the adversarial weight β: one row per run with ``beta``,
    ``seed`` and what β should move: the scene discriminator's accuracy at the end of training, the
    person and the action named from pose codes (two-layer classifier; person also by the linear
    probe), DrNet's mean prediction PSNR and the rollout's motion ratio at its last checkpoint.
    Runs changed in anything else (a longer schedule, ...) are left out: they answer another question."""
    rows = []
    for r in results:
        if not set(changed_settings(r)) <= {"train.adversarial_weight"}:
            continue
        m = r["metrics"]
        rows.append({"beta": r["config"]["train"]["adversarial_weight"], "seed": r["config"]["seed"],
                     "discriminator_accuracy": m["train.final"]["discriminator_accuracy"],
                     "person_from_pose": m["classification.person_from_pose"],
                     "probe_person_from_pose": m["probe.person_from_pose"],
                     "action_from_pose": m["classification.action_from_pose"],
                     "psnr_mean": m["prediction.psnr_mean"],
                     "motion_ratio": last_motion_ratio(m)})
    return sorted(rows, key=lambda row: (row["beta"], row["seed"]))


def sweep_by_beta(rows: list[dict], action_chance: float, reference_beta: float) -> dict[float, dict]:
    """Per beta, over :func:`adversarial_sweep`'s rows: ``seeds`` (text), ``runs``, the mean of every
    quantity, ``<key>_min``/``<key>_max`` (spread over seeds) for the person, action and motion,
    ``person_from_pose_sd``, ``collapsed`` (runs whose pose code says nothing: the action from it
    within 0.05 of ``action_chance`` and rollouts that stand still, motion ratio < 0.01),
    ``seeds_with_less_leak`` (text "k of n": seeds whose person-from-pose is below the same seed's
    at ``reference_beta``) and ``leak_reduction`` (1 - mean person-from-pose / its mean at
    ``reference_beta``; NaN without reference runs)."""
    quantities = [k for k in (rows[0] if rows else {}) if k not in ("beta", "seed")]
    reference = {r["seed"]: r["person_from_pose"] for r in rows if r["beta"] == reference_beta}
    out = {}
    for beta in sorted({r["beta"] for r in rows}):
        mine = [r for r in rows if r["beta"] == beta]
        s = {"seeds": ", ".join(str(r["seed"]) for r in mine), "runs": len(mine),
             **{k: float(np.mean([r[k] for r in mine])) for k in quantities}}
        for k in ("person_from_pose", "action_from_pose", "motion_ratio"):
            s[f"{k}_min"], s[f"{k}_max"] = min(r[k] for r in mine), max(r[k] for r in mine)
        s["person_from_pose_sd"] = float(np.std([r["person_from_pose"] for r in mine], ddof=1)) if len(mine) > 1 else float("nan")
        s["collapsed"] = sum(lost_action(r["action_from_pose"], action_chance) and r["motion_ratio"] < 0.01 for r in mine)
        paired = [r["person_from_pose"] < reference[r["seed"]] for r in mine if r["seed"] in reference]
        s["seeds_with_less_leak"] = f"{sum(paired)} of {len(paired)}"
        out[beta] = s
    base = out.get(reference_beta, {}).get("person_from_pose", float("nan"))
    for s in out.values():
        s["leak_reduction"] = 1 - s["person_from_pose"] / base
    return out


# The stand-in's actions, as KTH groups them: the person crosses the field, or stays on the spot
# and moves the arms (where the last observed frame is nearly the next one).
MOVING = ("walking", "jogging", "running")
IN_PLACE = ("boxing", "handwaving", "handclapping")
assert sorted(MOVING + IN_PLACE) == sorted(ACTIONS), "every action belongs to one group"


def by_action_mean(results) -> dict[str, dict[str, float]]:
    """``prediction.by_action`` averaged over runs: ``{action: {score: mean}}`` for the scores
    every run has (``clips`` and other counts are left out)."""
    tables = [r["metrics"]["prediction.by_action"] for r in results]
    out = {}
    for action in tables[0]:
        keys = [k for k, v in tables[0][action].items() if isinstance(v, float) and all(k in t[action] for t in tables)]
        out[action] = {k: float(np.mean([t[action][k] for t in tables])) for k in keys}
    return out


def margin_over_copy_last(by_action: dict[str, dict[str, float]], score: str = "oracle_psnr_mean") -> dict[str, float]:
    """How far a guess of the future frames is above repeating the last frame, in dB of mean PSNR:
    per action, and the plain mean over the ``moving`` and the ``in place`` actions (each action
    counts once, whatever its clip count).

    ``score`` names the guess in ``by_action``: ``"oracle_psnr_mean"`` (the decoder's ceiling,
    frames decoded from the true future poses) or ``"psnr_mean"`` (DrNet's own prediction).
    """
    gap = {a: v[score] - v["copy_last_psnr_mean"] for a, v in by_action.items()}
    return {**gap, "moving": float(np.mean([gap[a] for a in MOVING if a in gap])),
            "in place": float(np.mean([gap[a] for a in IN_PLACE if a in gap]))}


# A pixel "changes" when it moves by more than this from the last observed frame to the true one
# (intensities in [0, 1]); below it the difference is the video's noise and compression.
CHANGE_THRESHOLD = 0.05


def error_split(decoded: torch.Tensor, last: torch.Tensor, truth: torch.Tensor,
                threshold: float = CHANGE_THRESHOLD) -> dict[str, float]:
    """Where two guesses of the future frames go wrong: the pixels that change from the last
    observed frame to the true one (``|truth - last| > threshold``) and the ones that stay.

    Args:
        decoded: ``(B, T, C, H, W)`` frames to score (e.g. the decoder's ceiling).
        last: ``(B, C, H, W)`` the last observed frame (the copy-last guess).
        truth: ``(B, T, C, H, W)`` the true future frames.
    Returns:
        ``changing_share`` (fraction of pixels that change) and, for ``decoded`` and ``copy_last``,
        their squared error summed over the ``static`` and over the ``changing`` pixels, each
        divided by *all* pixels: the two parts add up to the mean squared error.
    """
    last = last.unsqueeze(1).expand_as(truth)
    changing = (truth - last).abs() > threshold
    n = truth.numel()
    out = {"changing_share": float(changing.sum()) / n}
    for name, guess in (("decoded", decoded), ("copy_last", last)):
        err = (guess - truth) ** 2
        out[f"{name}_static"] = float(err[~changing].sum()) / n
        out[f"{name}_changing"] = float(err[changing].sum()) / n
    return out


def ceiling_error_split(model, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig, chunk: int = 32
                        ) -> dict[str, dict[str, float]]:
    """:func:`error_split` of the decoder's ceiling (:func:`decode_true_poses`) against copy-last,
    over the first ``eval.metric_steps`` predicted steps of ``clips``: for ``all`` clips and the
    :data:`MOVING` and :data:`IN_PLACE` actions' clips (every clip has as many pixels, so a group's
    value is the mean over its clips)."""
    device = next(model.parameters()).device
    n_past, horizon = cfg.lstm.n_past, cfg.eval.metric_steps
    splits = []
    for start in range(0, len(clips), chunk):
        part = clips.subset(slice(start, start + chunk))
        observed = bank.render(part, torch.arange(n_past, device=bank.device)).to(device)
        truth = bank.render(part, torch.arange(n_past, n_past + horizon, device=bank.device)).to(device)
        ceiling = decode_true_poses(model, observed, truth, cfg.lstm.bn_mode)
        splits += zip(bank.action[part.sequence].tolist(), _clip_splits(ceiling, observed, truth))
    return _grouped_error_split(splits)


def _clip_splits(ceiling: torch.Tensor, observed: torch.Tensor, truth: torch.Tensor) -> list[dict[str, float]]:
    """:func:`error_split` of each clip: ``ceiling``/``truth`` ``(B, T, C, H, W)``, ``observed`` ``(B, n_past, ...)``."""
    return [error_split(ceiling[i:i + 1], observed[i:i + 1, -1], truth[i:i + 1]) for i in range(len(truth))]


def _grouped_error_split(splits: list[tuple[int, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per-clip ``(action index, split)`` pairs averaged over ``all`` clips and over the :data:`MOVING`
    and :data:`IN_PLACE` actions' clips (every clip has as many pixels, so the mean over clips is
    the group's value); groups without clips are left out."""
    groups = {"all": [s for _, s in splits],
              "moving": [s for a, s in splits if ACTIONS[a] in MOVING],
              "in place": [s for a, s in splits if ACTIONS[a] in IN_PLACE]}
    return {group: {key: float(np.mean([s[key] for s in rows])) for key in rows[0]}
            for group, rows in groups.items() if rows}


def mean_error_split(splits: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Several runs' :func:`ceiling_error_split` averaged, group by group and key by key."""
    return {group: {key: float(np.mean([s[group][key] for s in splits])) for key in splits[0][group]}
            for group in splits[0]}
