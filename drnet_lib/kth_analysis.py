"""Reading recorded KTH runs back: the comparisons the KTH diagnostics page draws between runs.

:mod:`.kth_experiment` measures one model and ``drnet train --record`` writes its results dict;
the functions here take such dicts (``results.read_results``) and answer the page's questions:
what a run changed from its profile (:func:`changed_settings`), how a variant compares with the
reference runs of the same seeds (:func:`against_same_seeds`), what the adversarial weight moves
(:func:`adversarial_sweep`, :func:`sweep_by_beta`), how the scores split by action
(:func:`by_action_mean`, :func:`margin_over_copy_last`), whether a run trained the chapter's model (:func:`same_training`), what the person-leak measurement says
(:func:`recorded_leak_scores`, :func:`person_leak_rows`) and how the clip list weighs the verdict (:func:`clip_list_rows`). They
compute nothing from a model.
"""

from __future__ import annotations

import numpy as np

from .config import ExperimentConfig, apply_overrides, config_from_dict, differences, get_config
from .kth_decoder import IN_PLACE, MOVING


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


def same_training(run: dict, chapter_run: dict) -> bool:
    """Whether a recorded run trained exactly the KTH notebook's β = 10⁻⁴ model of its seed: the
    same final training losses to the last digit (the notebook records ``train.final`` per
    variant, ``drnet train --record`` for its one model). A run retrained from the same settings and
    seed on the same kind of processor passes; one from another processor or commit may not."""
    final = chapter_run["metrics"]["train.final"]
    return run["metrics"]["train.final"] == final.get("adv", final)


def recorded_leak_scores(name: str, result: dict) -> dict[str, dict]:
    """The person-across-scenarios scores a run measured itself, as entries of
    ``tools/kth_remeasure.py --measure person_leak``'s file: a measurement recorded with the run
    is about its own models, so it supersedes one made earlier on other checkpoints.

    Args:
        name: the results file's stem (``kth_seed0``, ``kth_cosine_seed1``).
        result: its results dict. A run of the KTH notebook records two models (``variants``):
            ``adv`` under the plain keys, ``noadv`` under ``classification.noadv.…`` and
            ``probe.noadv.…`` (the chance is shared).
    Returns:
        ``{entry name: {"scores": {...}}}`` with the keys :func:`person_leak_rows` reads
        (``name``, or ``name:adv`` and ``name:noadv``); empty for a run that measured none.
    """
    m = result["metrics"]
    plain = {k: v for k, v in m.items() if k.endswith("_across_scenarios") and ".noadv." not in k}
    if "probe.person_from_pose_across_scenarios" not in plain:
        return {}
    if "variants" not in result:
        return {name: {"scores": plain}}
    noadv = {k.replace(".noadv.", ".", 1): v for k, v in m.items() if k.endswith("_across_scenarios") and ".noadv." in k}
    chance = {k: v for k, v in plain.items() if "chance" in k}
    return {f"{name}:adv": {"scores": plain}, f"{name}:noadv": {"scores": {**noadv, **chance}}}


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


def collapsed(row: dict, action_chance: float) -> bool:
    """Whether a run of :func:`adversarial_sweep` has a pose code that says nothing: the action from
    it no better than chance (:func:`lost_action`) and rollouts that stand still (motion ratio < 0.01)."""
    return lost_action(row["action_from_pose"], action_chance) and row["motion_ratio"] < 0.01


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
    ``person_from_pose_sd``, ``collapsed`` (runs whose pose code says nothing, :func:`collapsed`),
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
        s["collapsed"] = sum(collapsed(r, action_chance) for r in mine)
        paired = [r["person_from_pose"] < reference[r["seed"]] for r in mine if r["seed"] in reference]
        s["seeds_with_less_leak"] = f"{sum(paired)} of {len(paired)}"
        out[beta] = s
    base = out.get(reference_beta, {}).get("person_from_pose", float("nan"))
    for s in out.values():
        s["leak_reduction"] = 1 - s["person_from_pose"] / base
    return out


def by_action_mean(results) -> dict[str, dict[str, float]]:
    """``prediction.by_action`` averaged over runs: ``{action: {score: mean}}`` for the scores
    every run has (``clips`` and other counts are left out)."""
    return mean_by_action([r["metrics"]["prediction.by_action"] for r in results])


def clip_list_by_action(entries: list[dict], clip_list: str) -> dict[str, dict[str, float]]:
    """One clip list's ``by_action`` table averaged over several ``tools/kth_remeasure.py
    --measure mcnet_clips`` entries, as :func:`by_action_mean` does for recorded runs."""
    return mean_by_action([entry["lists"][clip_list]["by_action"] for entry in entries])


def mean_by_action(tables: list[dict]) -> dict[str, dict[str, float]]:
    """Several ``{action: {score: value}}`` tables averaged, for the float scores all of them have."""
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


def mean_error_split(splits: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Several runs' :func:`ceiling_error_split` averaged, group by group and key by key."""
    return {group: {key: float(np.mean([s[group][key] for s in splits])) for key in splits[0][group]}
            for group in splits[0]}


# What compares KTH runs of different sizes at a glance (the diagnostics page's table of the short
# paper-profile runs on a GPU beside the cpu profile): scores read as they are, then margins.
SUMMARY_KEYS = ("prediction.psnr_mean", "prediction.oracle_psnr_mean", "prediction.copy_last_psnr_mean",
                "prediction.ssim_mean", "prediction.copy_last_ssim_mean", "prediction.steps_beating_copy_last",
                "classification.action_from_pose", "classification.action_from_content",
                "classification.action_chance", "classification.person_from_pose", "classification.person_chance",
                "classification.person_from_pose_across_scenarios", "classification.person_chance_across_scenarios")


def run_summary(result, extra_scores: dict | None = None) -> dict[str, float]:
    """One recorded run's numbers for a side-by-side of runs at different frame sizes, where the
    PSNR values themselves do not compare but their margins over repeating the last frame do.

    Returns ``{name: value}``: the :data:`SUMMARY_KEYS` (``nan`` where the run lacks one), DrNet's
    and the ceiling's margin over copy-last on the moving and the in-place actions in dB
    (``margin.{drnet,ceiling}.{moving,in place}``, :func:`margin_over_copy_last`), the rollout's
    motion ratio at its last checkpoint (``rollout.motion_ratio.last``) and the scene
    discriminator's accuracy at the end of training (``train.discriminator_accuracy``).
    ``extra_scores`` fill keys measured after the run was recorded (``tools/kth_remeasure.py``
    entries' ``scores``); the run's own values win.
    """
    m = {**(extra_scores or {}), **result["metrics"]}
    out = {k: float(m[k]) if k in m else float("nan") for k in SUMMARY_KEYS}
    by_action = m.get("prediction.by_action", {})
    for guess, score in (("drnet", "psnr_mean"), ("ceiling", "oracle_psnr_mean")):
        has = by_action and all(score in v for v in by_action.values())
        margins = margin_over_copy_last(by_action, score) if has else {}
        for group in ("moving", "in place"):
            out[f"margin.{guess}.{group}"] = margins.get(group, float("nan"))
    out["rollout.motion_ratio.last"] = float(last_motion_ratio(m))
    final = m["train.final"]
    out["train.discriminator_accuracy"] = float(final.get("adv", final)["discriminator_accuracy"])
    return out


# Scenarios filmed with a still camera: KTH's d2 (and the stand-in's) zooms in and out, so there
# even the background changes from frame to frame.
STILL_CAMERA = ("d1", "d3", "d4")


def scenario_rows(entries: dict[str, dict]) -> list[dict]:
    """``tools/kth_remeasure.py --measure ceiling_by_scenario`` entries (``{run: entry}``) as one
    row per run, scenario and action group: ``run``, ``scenario``, ``group``, ``clips``, mean PSNR
    of the ``ceiling`` and of ``copy last``, and their difference ``margin`` (dB)."""
    return [{"run": run, "scenario": scenario, "group": group, "clips": v["clips"],
             "ceiling": v["oracle_psnr_mean"], "copy last": v["copy_last_psnr_mean"],
             "margin": v["oracle_psnr_mean"] - v["copy_last_psnr_mean"]}
            for run, entry in entries.items() for scenario, groups in entry["scenarios"].items()
            for group, v in groups.items()]


def self_reconstruction_rows(entries: dict[str, dict]) -> list[dict]:
    """``tools/kth_remeasure.py --measure self_reconstruction`` entries (``{run: entry}``) as one
    row per run, scenario and action group: ``run``, ``scenario``, ``group``, ``clips``, the mean
    ``PSNR`` of the frames redrawn from their own codes, their mean brightness ``offset`` in grey
    levels (of 255; positive: too bright) and the ``offset share`` of their squared error."""
    return [{"run": run, "scenario": scenario, "group": group, "clips": v["clips"], "PSNR": v["self_psnr_mean"],
             "offset": 255 * v["offset_mean"], "offset share": v["offset_share"]}
            for run, entry in entries.items() for scenario, groups in entry["scenarios"].items()
            for group, v in groups.items()]


def pooled_ceiling(entry: dict) -> float:
    """One such entry's ceiling over all its clips (the groups' means weighted by their clips): the
    number a run records as ``prediction.oracle_psnr_mean``."""
    groups = [v for g in entry["scenarios"].values() for v in g.values()]
    return sum(v["clips"] * v["oracle_psnr_mean"] for v in groups) / sum(v["clips"] for v in groups)


def schedule_rows(record, refreshed: bool = False) -> list[dict]:
    """``tools/kth_schedule.py``'s record (one DrNet measured at milestones of its schedule) as
    one row per milestone, in iteration order: ``iterations``, the DrNet wall time up to there in
    minutes, and that milestone's :func:`run_summary`. ``refreshed``: the measurements of the same
    weights with BatchNorm statistics recomputed (a record made with ``--refresh-pair``)."""
    rows = []
    for iterations, entry in sorted(record["milestones"].items(), key=lambda kv: int(kv[0])):
        m = entry["metrics"]
        rows.append({"iterations": int(iterations),
                     "minutes": m["train.seconds_per_iteration"] * m["train.iterations_done"] / 60,
                     **run_summary(entry["refreshed"] if refreshed else entry)})
    return rows


def clip_list_rows(entries: dict[str, dict]) -> list[dict]:
    """``tools/kth_remeasure.py --measure mcnet_clips`` entries (``{run: entry}``) as one row per run
    and clip list (``one_per_range``, ``mcnet``): ``run``, ``list``, ``clips``, the share of them from
    the :data:`MOVING` actions (``moving share``), DrNet's and copy-last's mean PSNR over the scored
    steps (``DrNet``, ``copy last``), DrNet's ``margin`` over copy-last (dB, the mean over clips, so the
    clip list weights the actions) and ``steps beating`` (the share of steps after the first few where
    DrNet's mean PSNR is the higher)."""
    rows = []
    for run, entry in entries.items():
        for name, scores in entry["lists"].items():
            per_action = scores["by_action"]
            moving = sum(v["clips"] for a, v in per_action.items() if a in MOVING)
            rows.append({"run": run, "list": name, "clips": scores["clips"], "moving share": moving / scores["clips"],
                         "DrNet": scores["psnr_mean"], "copy last": scores["copy_last_psnr_mean"],
                         "margin": scores["psnr_mean"] - scores["copy_last_psnr_mean"],
                         "steps beating": scores["steps_beating_copy_last"]})
    return rows


def clip_list_mean_curve(entries: list[dict], clip_list: str, score: str) -> np.ndarray:
    """The per-step mean over several runs of one clip list's ``score`` curve (``"psnr"`` or
    ``"copy_last_psnr"``, each ``{step: value}`` with string steps) from ``tools/kth_remeasure.py
    --measure mcnet_clips`` entries: ``(T,)`` for predicted steps 1..T."""
    curves = [entry["lists"][clip_list][score] for entry in entries]
    return np.mean([[curve[s] for s in sorted(curve, key=int)] for curve in curves], axis=0)


def steps_ahead(curve: np.ndarray, baseline: np.ndarray) -> list[int]:
    """The predicted steps (1-based) at which ``curve`` is above ``baseline``."""
    return [step for step, (a, b) in enumerate(zip(curve, baseline), start=1) if a > b]


def steps_text(steps: list[int]) -> str:
    """Steps for a sentence: ``[]`` -> "no step", ``[3]`` -> "step 3", ``[2, 3, 4]`` -> "steps 2–4",
    ``[2, 5]`` -> "steps 2, 5"."""
    if not steps:
        return "no step"
    if len(steps) == 1:
        return f"step {steps[0]}"
    if steps == list(range(steps[0], steps[-1] + 1)):
        return f"steps {steps[0]}–{steps[-1]}"
    return "steps " + ", ".join(map(str, steps))


def mean_code_curves(entries: list[dict], group: str) -> dict[str, np.ndarray]:
    """One action group's pose-code curves (``tools/kth_remeasure.py --measure pose_codes``
    entries: ``alignment``, ``length_ratio``, ``error_ratio``, ...) averaged step by step over
    several runs: ``{curve: (T,)}`` for predicted steps 1..T."""
    return {key: np.mean([entry[group][key] for entry in entries], axis=0) for key in entries[0][group]}
