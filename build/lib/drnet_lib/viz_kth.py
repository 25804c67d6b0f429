"""Figures of the KTH chapter: what each code knows (bars), and how rollouts hold up over time."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
import seaborn as sns

QUESTIONS = (("action_from_pose", "action from pose"), ("action_from_content", "action from content"),
             ("person_from_pose", "person from pose"), ("person_from_content", "person from content"))


def classification_bars(scores: Mapping[str, Mapping[str, float]], chance: Mapping[str, float],
                        errors: Mapping[str, Mapping[str, float]] | None = None):
    """Accuracy of each question (:data:`QUESTIONS`) for each model variant, chance marked.

    Args:
        scores: ``{variant label: {"action_from_pose": acc, ...}}`` (missing questions skipped).
        chance: ``{"action": acc, "person": acc}`` of always answering the commonest label.
        errors: same shape as ``scores``, standard deviations over seeds (error bars).
    Returns:
        A Figure with one Axes: grouped bars per question, a dashed chance tick per question.
    """
    fig, ax = plt.subplots(figsize=(8, 3.4))
    variants = list(scores)
    width = 0.8 / max(len(variants), 1)
    for i, variant in enumerate(variants):
        values = [scores[variant].get(q, np.nan) for q, _ in QUESTIONS]
        err = [errors[variant].get(q, 0.0) for q, _ in QUESTIONS] if errors else None
        x = np.arange(len(QUESTIONS)) + (i - (len(variants) - 1) / 2) * width
        bars = ax.bar(x, values, width, yerr=err, capsize=3, label=variant)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    for j, (q, _) in enumerate(QUESTIONS):
        level = chance[q.split("_")[0]]
        ax.plot([j - 0.45, j + 0.45], [level, level], "k--", lw=1, label="chance" if j == 0 else None)
    ax.set_xticks(range(len(QUESTIONS)), [label for _, label in QUESTIONS])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8, loc="upper right", ncol=len(variants) + 1)
    fig.tight_layout()
    return fig


def horizon_plot(action_accuracy: Mapping, motion_ratio: Mapping, action_chance: float,
                 real_action_accuracy: float | None = None):
    """Long rollouts over time: the action still recognisable? the figure still moving?

    Args:
        action_accuracy: ``{step: accuracy}`` of the action classifier on generated windows.
        motion_ratio: ``{step: generated motion / real motion}`` over the same windows.
        action_chance: chance level of the action classifier.
        real_action_accuracy: the classifier's accuracy on real test windows (a ceiling), or None.
    Returns:
        A Figure with 2 Axes against the predicted step (log scale).
    """
    steps = sorted(int(s) for s in action_accuracy)
    acc = [action_accuracy[s] if s in action_accuracy else action_accuracy[str(s)] for s in steps]
    mot = [motion_ratio[s] if s in motion_ratio else motion_ratio[str(s)] for s in steps]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    a1.plot(steps, acc, "o-", label="generated frames")
    a1.axhline(action_chance, color="k", ls="--", lw=1, label="chance")
    if real_action_accuracy is not None:
        a1.axhline(real_action_accuracy, color="C2", ls=":", lw=1.5, label="real test frames")
    a1.set(xscale="log", ylim=(0, 1.05), xlabel="predicted step", ylabel="action accuracy",
           title="action named from generated poses")
    a1.legend(fontsize=8)
    a2.plot(steps, mot, "o-", color="C1")
    a2.axhline(1.0, color="k", ls=":", lw=1, label="as much as real video")
    a2.set(xscale="log", ylim=(0, max(1.2, max(mot) * 1.1)), xlabel="predicted step",
           ylabel="frame-to-frame change\n(generated / real)", title="is it still moving?")
    a2.legend(fontsize=8)
    for ax in (a1, a2):
        ax.minorticks_off()                       # log axis: label only the measured steps
        ax.set_xticks(steps, [str(s) for s in steps])
    fig.tight_layout()
    return fig


PREDICTORS = (("psnr_mean", "DrNet (predicted poses)"), ("oracle_psnr_mean", "decoded from true poses"),
              ("copy_last_psnr_mean", "copy last frame"))


def prediction_by_action(by_action: Mapping[str, Mapping[str, float]]):
    """Mean PSNR over the scored steps, per action, of DrNet, its decoder ceiling and copy-last.

    Args:
        by_action: ``{action: {"psnr_mean": dB, "oracle_psnr_mean": dB, "copy_last_psnr_mean": dB}}``
            (a results file's ``prediction.by_action``, or its mean over seeds).
    Returns:
        A Figure with one Axes: grouped bars per action (predictors missing from an entry skipped).
    """
    actions = list(by_action)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / len(PREDICTORS)
    for i, (key, label) in enumerate(PREDICTORS):
        values = [by_action[a].get(key, np.nan) for a in actions]
        x = np.arange(len(actions)) + (i - (len(PREDICTORS) - 1) / 2) * width
        bars = ax.bar(x, values, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(range(len(actions)), actions)
    values = [v[k] for v in by_action.values() for k, _ in PREDICTORS if k in v]
    # PSNR bars from a floor near the data (the gaps are what matter), headroom above for the legend
    ax.set_ylim(np.floor(min(values)) - 2, np.ceil(max(values)) + 3)
    ax.set_ylabel("mean PSNR (dB)")
    ax.legend(fontsize=8, loc="upper left", ncol=3)
    fig.tight_layout()
    return fig


SWEEP_PANELS = (("person_from_pose", "person from pose", "person"), ("action_from_pose", "action from pose", "action"),
                ("discriminator_accuracy", "discriminator accuracy (end)", None),
                ("motion_ratio", "rollout motion ratio (last step)", None))


def adversarial_sweep(rows, chance: Mapping[str, float]):
    """What the adversarial weight β moves, one panel per quantity: every run as a dot (its seed
    beside it), the mean over a β's runs as a line, chance as a dashed line.

    Args:
        rows: :func:`drnet_lib.kth_analysis.adversarial_sweep`'s rows (``beta``, ``seed`` and the
            panels' keys).
        chance: ``{"action": ..., "person": ...}`` accuracies of guessing.
    Returns:
        A Figure with four Axes (log-scaled β).
    """
    betas = sorted({r["beta"] for r in rows})
    fig, axes = plt.subplots(1, len(SWEEP_PANELS), figsize=(12, 3))
    for ax, (key, label, chance_key) in zip(axes, SWEEP_PANELS):
        ax.scatter([r["beta"] for r in rows], [r[key] for r in rows], s=14, alpha=0.7)
        for r in rows:
            ax.annotate(str(r["seed"]), (r["beta"], r[key]), fontsize=6, xytext=(3, 0), textcoords="offset points")
        ax.plot(betas, [np.mean([r[key] for r in rows if r["beta"] == b]) for b in betas], "-", label="mean over seeds")
        if chance_key:
            ax.axhline(chance[chance_key], ls="--", color="grey", lw=1, label="chance")
        ax.set(xscale="log", xlabel="adversarial weight β", title=label)
        ax.title.set_fontsize(9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def margin_over_copy_last(gaps: Mapping[str, Mapping[str, float]], ylabel: str = "ceiling − copy last (dB)"):
    """A guess of the future frames minus repeating the last frame (dB of mean PSNR), per action,
    one bar per model: above zero, the guess beats the last frame there. By default the guess is
    the decoder's ceiling (frames decoded from the *true* poses); ``ylabel`` names another.

    Args:
        gaps: ``{model label: {action: dB}}``, each as
            :func:`drnet_lib.kth_analysis.margin_over_copy_last` returns it (its group means
            ``moving`` and ``in place`` are drawn after a gap, as two more groups).
        ylabel: what the bars measure.
    Returns:
        A Figure with one Axes.
    """
    labels = list(gaps)
    groups = [k for k in next(iter(gaps.values())) if k not in ("moving", "in place")] + ["moving", "in place"]
    x = np.arange(len(groups), dtype=float)
    x[-2:] += 0.6                                        # set the two group means apart
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(10, 3.4))
    for i, label in enumerate(labels):
        bars = ax.bar(x + (i - (len(labels) - 1) / 2) * width, [gaps[label].get(g, np.nan) for g in groups],
                      width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [g if g not in ("moving", "in place") else f"mean:\n{g}" for g in groups], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(labels), 3), frameon=False)
    fig.tight_layout()
    return fig


def psnr_by_clip_list(curves: Mapping[str, Mapping[str, np.ndarray]], baseline: str = "copy last"):
    """Per-step mean PSNR of several guesses, one panel per clip list (or per set of models).

    Args:
        curves: ``{panel title: {series label: (T,) mean PSNR at predicted steps 1..T}}``; the series
            named ``baseline`` is drawn dashed and black, the others solid.
        baseline: the name of the baseline series.
    Returns:
        A Figure with one Axes per list, sharing the PSNR axis.
    """
    fig, axes = plt.subplots(1, len(curves), figsize=(4.6 * len(curves), 3.2), sharey=True, squeeze=False)
    for ax, (title, series) in zip(axes[0], curves.items()):
        for label, values in series.items():
            steps = np.arange(1, len(values) + 1)
            style = dict(color="black", ls="--", lw=1.4) if label == baseline else dict(lw=1.8)
            ax.plot(steps, values, label=label, **style)
        ax.set(title=title, xlabel="predicted step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # steps are whole frames
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean PSNR (dB)")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def error_split(splits: Mapping[str, Mapping[str, Mapping[str, float]]], groups=("moving", "in place")):
    """Where the error of a guess of the future frames sits: one stacked bar per guess, its squared
    error on the pixels that stay (bottom) and on the pixels that change (top), one panel per group
    of actions. Copy-last is drawn once (it is the same on every run's clips).

    Args:
        splits: ``{run label: {group: split}}``, each split as
            :func:`drnet_lib.kth_decoder.error_split` returns it (``decoded_*``: the ceiling).
        groups: which groups to draw, one panel each.
    Returns:
        A Figure with one Axes per group.
    """
    labels = list(splits)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.2), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, group in zip(axes, groups):
        first = splits[labels[0]][group]
        names = ["copy last"] + labels
        static = [first["copy_last_static"]] + [splits[k][group]["decoded_static"] for k in labels]
        changing = [first["copy_last_changing"]] + [splits[k][group]["decoded_changing"] for k in labels]
        x = np.arange(len(names))
        ax.bar(x, static, 0.6, label="pixels that stay", color="tab:grey")
        ax.bar(x, changing, 0.6, bottom=static, label="pixels that change", color="tab:orange")
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{group} actions", fontsize=9)
    axes[0].set_ylabel("contribution to the MSE")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def person_or_place(groups: Mapping[str, Mapping[str, float]], chance: Mapping[str, float]):
    """The person named from pose codes when the scored windows' scenario was seen in fitting
    (even/odd ranges of the same videos) and when it was held out, one panel per classifier.

    Args:
        groups: ``{model label: {"even_odd_mlp", "across_mlp", "even_odd_probe", "across_probe": accuracy}}``
            (means of :func:`drnet_lib.kth_analysis.person_leak_rows`' rows).
        chance: ``{"even_odd": ..., "across": ...}`` accuracies of always naming the most frequent person.
    Returns:
        A Figure with two Axes.
    """
    labels = list(groups)
    x = np.arange(len(labels))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
    for ax, (kind, title) in zip(axes, (("mlp", "two-layer classifier"), ("probe", "linear probe"))):
        for i, (split, name) in enumerate((("even_odd", "scenario seen (even/odd ranges)"),
                                           ("across", "scenario held out"))):
            bars = ax.bar(x + (i - 0.5) * 0.38, [groups[g][f"{split}_{kind}"] for g in labels], 0.38,
                          label=name, color=f"C{i}")
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
            ax.axhline(chance[split], ls="--", lw=1, color=f"C{i}", label=f"chance, {name.split(' (')[0]}")
        ax.set_xticks(x, labels, fontsize=7, rotation=20, ha="right")
        ax.set_title(f"person from pose: {title}", fontsize=9)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    return fig


def schedule_plot(rows, chance: Mapping[str, float]):
    """What a longer DrNet schedule buys (``tools/kth_schedule.py``): left, DrNet's and the decoder's
    ceiling's margin over repeating the last frame on the moving and the in-place clips; right, the
    action and the person named from the pose codes, against their chance levels.

    Args:
        rows: :func:`drnet_lib.kth_analysis.schedule_rows` (``iterations``, ``margin.<guess>.<group>``,
            ``classification.action_from_pose``, ``classification.person_from_pose``).
        chance: ``{"action": ..., "person": ...}``.
    Returns:
        A Figure with two Axes, DrNet iterations on a log axis.
    """
    it = [r["iterations"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    for guess, style in (("drnet", "-"), ("ceiling", "--")):
        for group, color in (("moving", "C0"), ("in place", "C1")):
            name = "DrNet" if guess == "drnet" else "decoded from true poses"
            left.plot(it, [r[f"margin.{guess}.{group}"] for r in rows], style, color=color, marker="o",
                      label=f"{name}, {group}")
    left.axhline(0, color="black", lw=0.8)
    left.set_ylabel("PSNR − copy last (dB)")
    left.legend(fontsize=7, frameon=False)
    for key, what, color in (("action_from_pose", "action", "C2"), ("person_from_pose", "person", "C3")):
        right.plot(it, [r[f"classification.{key}"] for r in rows], "-o", color=color, label=f"{what} from pose")
        right.axhline(chance[what], color=color, ls=":", lw=1, label=f"{what}: chance")
    right.set_ylabel("accuracy (test persons)")
    right.set_ylim(0, 1)
    right.legend(fontsize=7, frameon=False)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(it, [f"{i:,}" for i in it], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("DrNet iterations")
    fig.tight_layout()
    return fig


def refreshed_schedule_plot(rows: Mapping[str, list]):
    """One schedule measured with BatchNorm statistics as trained and recomputed
    (``tools/kth_schedule.py --refresh-pair``): the margin over repeating the last frame of the
    frames decoded from the true poses (left) and of DrNet's own prediction (right), per action
    group, one line style per setting.

    Args:
        rows: ``{setting label: schedule_rows(...)}``, e.g. ``{"as trained": ..., "refreshed": ...}``;
            the first setting is drawn dashed, the others solid.
    Returns:
        A Figure with two Axes sharing the dB axis, DrNet iterations on a log axis.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, (guess, title) in zip(axes, (("ceiling", "decoded from true poses"), ("drnet", "DrNet's prediction"))):
        for i, (setting, setting_rows) in enumerate(rows.items()):
            it = [r["iterations"] for r in setting_rows]
            for group, color in (("moving", "C0"), ("in place", "C1")):
                ax.plot(it, [r[f"margin.{guess}.{group}"] for r in setting_rows], "--" if i == 0 else "-",
                        color=color, marker="o", mfc="white" if i == 0 else color, label=f"{group}, {setting}")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(it, [f"{n:,}" for n in it], fontsize=7)
        ax.minorticks_off()
        ax.set(title=title, xlabel="DrNet iterations")
    axes[0].set_ylabel("PSNR − copy last (dB)")
    axes[1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


POSE_CODE_PANELS = {"alignment": "direction: cos(predicted, true motion)",
                    "length_ratio": "length: predicted / true motion",
                    "error_ratio": "code error: predicted / pose held"}


def pose_code_motion(curves: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]):
    """The pose LSTM's predicted motion against the true one in code space, per predicted step
    (:mod:`drnet_lib.kth_pose_codes`): its direction, its length and the error it leaves, one
    panel each. A dotted line marks where the prediction would be perfect (direction and length
    1) and, on the error panel (log scale), where it equals holding the last observed pose.

    Args:
        curves: ``{group: {setting: {"alignment" | "length_ratio" | "error_ratio": (T,)}}}``; one
            colour per group (e.g. moving, in place), one line style per setting.
    Returns:
        A Figure with one Axes per quantity.
    """
    fig, axes = plt.subplots(1, len(POSE_CODE_PANELS), figsize=(4.4 * len(POSE_CODE_PANELS), 3.2))
    styles = ("-", "--", ":", "-.")
    for colour, (group, settings) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], curves.items()):
        for style, (setting, values) in zip(styles, settings.items()):
            for ax, key in zip(axes, POSE_CODE_PANELS):
                steps = np.arange(1, len(values[key]) + 1)
                ax.plot(steps, values[key], color=colour, ls=style, lw=1.8, label=f"{group}, {setting}")
    for ax, (key, title) in zip(axes, POSE_CODE_PANELS.items()):
        ax.axhline(1.0, color="black", ls=":", lw=1)
        ax.set(title=title, xlabel="predicted step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # steps are whole frames
        ax.grid(alpha=0.3)
    axes[-1].set_yscale("log")
    axes[0].axhline(0.0, color="grey", lw=0.8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def action_confusion(confusions: Mapping[str, Mapping[str, Mapping[str, float]]]):
    """Where an action classifier's answers go: one heatmap per panel, a row per true action and a
    column per answer, each cell the share of the true action's windows given that answer (rows
    sum to 1; the diagonal is each action's accuracy).

    Args:
        confusions: ``{panel title: {true action: {answered action: share}}}`` (e.g.
            ``classification.action_confusion_from_pose``, or its mean over seeds).
    Returns:
        A Figure with one Axes per panel, actions in the order of the first panel's rows.
    """
    fig, axes = plt.subplots(1, len(confusions), figsize=(4.6 * len(confusions), 4.0), layout="constrained",
                             squeeze=False)
    for ax, (title, shares) in zip(axes[0], confusions.items()):
        order = list(shares)
        table = pd.DataFrame(shares).T.loc[order, order]      # rows: true action, columns: answer
        sns.heatmap(table, ax=ax, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", cbar=False,
                    annot_kws={"fontsize": 9})
        ax.set(title=title, xlabel="answered", ylabel="true action")
    return fig

