"""Figures of the KTH diagnostics page: the decoder's ceiling and its error split, per action and
per clip list, the person or the place, the schedules, the pose codes' motion.

Colours and legends follow the chapter's (:mod:`.viz_kth`): one colour per guess of the future
frames (:data:`.viz_kth.SERIES_COLOURS`), legends under the panels, no text under
:data:`.viz.MIN_FONT`, at most the book column's width.
"""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory
import numpy as np

from .viz import MAX_WIDTH_IN, MIN_FONT   # the book column's width, its smallest text
from .viz_kth import _legend_below, _legend_columns, series_colours   # the chapter's legends and colours


def _log_x(ax, what: str) -> None:
    """A log-scaled x axis whose label says so."""
    ax.set_xscale("log")
    ax.set_xlabel(f"{what} (log scale)")


PREDICTORS = (("psnr_mean", "DrNet (predicted poses)"), ("oracle_psnr_mean", "decoded from true poses"),
              ("copy_last_psnr_mean", "copy last frame"))


def prediction_by_action(by_action: Mapping[str, Mapping[str, float]]):
    """Mean PSNR over the scored steps, per action, of DrNet, its decoder ceiling and copy-last,
    each in its colour of :data:`.viz_kth.SERIES_COLOURS`.

    Args:
        by_action: ``{action: {"psnr_mean": dB, "oracle_psnr_mean": dB, "copy_last_psnr_mean": dB}}``
            (a results file's ``prediction.by_action``, or its mean over seeds).
    Returns:
        A Figure with one Axes: grouped bars per action (predictors missing from an entry skipped).
    """
    actions = list(by_action)
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, 3.4))
    width = 0.84 / len(PREDICTORS)
    colours = series_colours(label for _, label in PREDICTORS)
    for i, (key, label) in enumerate(PREDICTORS):
        values = [by_action[a].get(key, np.nan) for a in actions]
        x = np.arange(len(actions)) + (i - (len(PREDICTORS) - 1) / 2) * width
        bars = ax.bar(x, values, width, label=label, color=colours[label])
        ax.bar_label(bars, fmt="%.1f", fontsize=MIN_FONT, padding=2, rotation=90)
    ax.set_xticks(range(len(actions)), actions)
    values = [v[k] for v in by_action.values() for k, _ in PREDICTORS if k in v]
    # PSNR bars from a floor near the data (the gaps are what matter), headroom above for the
    # upright value labels and the legend
    low, high = np.floor(min(values)) - 2, np.ceil(max(values))
    ax.set_ylim(low, high + 0.3 * (high - low))
    ax.set_ylabel("mean PSNR (dB)")
    ax.legend(fontsize=MIN_FONT, loc="upper left", ncol=3)
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
        A Figure with one Axes, each bar's value written upright at its end.
    """
    labels = list(gaps)
    groups = [k for k in next(iter(gaps.values())) if k not in ("moving", "in place")] + ["moving", "in place"]
    x = np.arange(len(groups), dtype=float)
    x[-2:] += 0.6                                        # set the two group means apart
    width = 0.86 / len(labels)
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, 3.9), layout="constrained")
    for i, label in enumerate(labels):
        bars = ax.bar(x + (i - (len(labels) - 1) / 2) * width, [gaps[label].get(g, np.nan) for g in groups],
                      width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=MIN_FONT, padding=2, rotation=90)
    ax.axhline(0, color="black", lw=0.8)
    ax.margins(x=0.02, y=0.2)                            # headroom for the upright labels at both ends
    ax.set_xticks(x, [g if g not in ("moving", "in place") else f"mean:\n{g}" for g in groups], fontsize=MIN_FONT)
    ax.set_ylabel(ylabel)
    # above the axes, centred on the figure (its longest labels need the figure's whole width)
    ax.legend(fontsize=MIN_FONT, loc="lower center", ncol=_legend_columns(labels), frameon=False,
              bbox_to_anchor=(0.5, 1.0), bbox_transform=blended_transform_factory(fig.transFigure, ax.transAxes))
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
        A Figure with one Axes per group, side by side.
    """
    labels = list(splits)
    fig, axes = plt.subplots(1, len(groups), figsize=(min(MAX_WIDTH_IN, 4.5 * len(groups)), 3.6), sharey=True,
                             squeeze=False)
    axes = axes[0]
    for ax, group in zip(axes, groups):
        first = splits[labels[0]][group]
        names = ["copy last"] + labels
        static = [first["copy_last_static"]] + [splits[k][group]["decoded_static"] for k in labels]
        changing = [first["copy_last_changing"]] + [splits[k][group]["decoded_changing"] for k in labels]
        x = np.arange(len(names))
        ax.bar(x, static, 0.6, label="pixels that stay", color="tab:grey")
        ax.bar(x, changing, 0.6, bottom=static, label="pixels that change", color="tab:orange")
        ax.set_xticks(x, names, rotation=30, ha="right", rotation_mode="anchor", fontsize=MIN_FONT)
        ax.set_title(f"{group} actions", fontsize=10)
    axes[0].set_ylabel("contribution to the MSE")
    axes[0].legend(fontsize=MIN_FONT)
    fig.tight_layout()
    return fig


PERSON_SPLITS = (("even_odd", "scenario seen (even/odd ranges)"), ("across", "scenario held out"))


def person_or_place(groups: Mapping[str, Mapping[str, float]], chance: Mapping[str, float]):
    """The person named from pose codes when the scored windows' scenario was seen in fitting
    (even/odd ranges of the same videos) and when it was held out, one panel per classifier (the
    two-layer classifier left, the linear probe right). Each split's chance level is a dashed line
    of its colour, its value in the legend; where the two are equal (within 0.005) one grey dashed
    line stands for both.

    Args:
        groups: ``{model label: {"even_odd_mlp", "across_mlp", "even_odd_probe", "across_probe": accuracy}}``
            (means of :func:`drnet_lib.kth_analysis.person_leak_rows`' rows).
        chance: ``{"even_odd": ..., "across": ...}`` accuracies of always naming the most frequent person.
    Returns:
        A Figure with two Axes side by side, the legend above them.
    """
    labels = list(groups)
    x = np.arange(len(labels))
    same_chance = abs(chance["even_odd"] - chance["across"]) <= 0.005
    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 4.0), sharey=True, layout="constrained")
    for ax, (kind, title) in zip(axes, (("mlp", "two-layer classifier"), ("probe", "linear probe"))):
        for i, (split, name) in enumerate(PERSON_SPLITS):
            bars = ax.bar(x + (i - 0.5) * 0.4, [groups[g][f"{split}_{kind}"] for g in labels], 0.4,
                          label=name, color=f"C{i}")
            ax.bar_label(bars, fmt="%.2f", fontsize=MIN_FONT, padding=2, rotation=90)
        if same_chance:
            values = sorted({f"{chance[s]:.2f}" for s, _ in PERSON_SPLITS})
            ax.axhline(chance["even_odd"], ls="--", lw=1.2, color="0.3",
                       label=f"chance, both splits ({' / '.join(values)})")
        else:
            for i, (split, name) in enumerate(PERSON_SPLITS):
                ax.axhline(chance[split], ls="--", lw=1.2, color=f"C{i}",
                           label=f"chance, {name.split(' (')[0]} ({chance[split]:.2f})")
        ax.set_xticks(x, labels, fontsize=MIN_FONT, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_title(f"person from pose: {title}", fontsize=10)
        ax.margins(y=0.16)                                 # headroom for the upright value labels
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel("accuracy")
    handles, names = axes[0].get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda k: names[k].startswith("chance"))   # the bars, then chance
    fig.legend([handles[k] for k in order], [names[k] for k in order], fontsize=MIN_FONT, loc="outside upper center",
               ncol=3 if len(names) == 3 else 2, frameon=False)
    return fig


def schedule_plot(rows, chance: Mapping[str, float]):
    """What a longer DrNet schedule buys (``tools/kth_schedule.py``): left, DrNet's (solid, filled
    markers) and the decoder's ceiling's (dashed, open markers) margin over repeating the last frame
    on the moving and the in-place clips; right, the action and the person named from the pose
    codes, against their chance levels. Each panel's legend sits under it.

    Args:
        rows: :func:`drnet_lib.kth_analysis.schedule_rows` (``iterations``, ``margin.<guess>.<group>``,
            ``classification.action_from_pose``, ``classification.person_from_pose``).
        chance: ``{"action": ..., "person": ...}``.
    Returns:
        A Figure with two Axes, DrNet iterations on a log axis.
    """
    it = [r["iterations"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 4.3), layout="constrained")
    for guess, style in (("drnet", "-"), ("ceiling", "--")):
        for group, color in (("moving", "C0"), ("in place", "C1")):
            name = "DrNet" if guess == "drnet" else "decoded from true poses"
            left.plot(it, [r[f"margin.{guess}.{group}"] for r in rows], style, color=color, marker="o",
                      mfc=color if guess == "drnet" else "white", label=f"{name}, {group}")
    left.axhline(0, color="black", lw=0.8)
    left.set_ylabel("PSNR − copy last (dB)")
    for key, what, color in (("action_from_pose", "action", "C2"), ("person_from_pose", "person", "C3")):
        right.plot(it, [r[f"classification.{key}"] for r in rows], "-o", color=color, label=f"{what} from pose")
        right.axhline(chance[what], color=color, ls=":", lw=1.2, label=f"{what}: chance")
    right.set_ylabel("accuracy (test persons)")
    right.set_ylim(0, 1)
    for ax, ncol in ((left, 1), (right, 2)):
        _log_x(ax, "DrNet iterations")
        ax.set_xticks(it, [f"{i:,}" for i in it], fontsize=MIN_FONT)
        ax.minorticks_off()
        ax.legend(fontsize=MIN_FONT, frameon=False, handlelength=3.5, ncol=ncol, loc="upper center",
                  bbox_to_anchor=(0.5, -0.2))
    return fig


def refreshed_schedule_plot(rows: Mapping[str, list]):
    """One schedule measured with BatchNorm statistics as trained and recomputed
    (``tools/kth_schedule.py --refresh-pair``): the margin over repeating the last frame of the
    frames decoded from the true poses (left) and of DrNet's own prediction (right), per action
    group, one line style per setting.

    Args:
        rows: ``{setting label: schedule_rows(...)}``, e.g. ``{"as trained": ..., "refreshed": ...}``;
            the first setting is drawn dashed with open markers, the others solid.
    Returns:
        A Figure with two Axes sharing the dB axis, DrNet iterations on a log axis, the legend under
        them.
    """
    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.9), sharey=True, layout="constrained")
    for ax, (guess, title) in zip(axes, (("ceiling", "decoded from true poses"), ("drnet", "DrNet's prediction"))):
        for i, (setting, setting_rows) in enumerate(rows.items()):
            it = [r["iterations"] for r in setting_rows]
            for group, color in (("moving", "C0"), ("in place", "C1")):
                ax.plot(it, [r[f"margin.{guess}.{group}"] for r in setting_rows], "--" if i == 0 else "-",
                        color=color, marker="o", mfc="white" if i == 0 else color, label=f"{group}, {setting}")
        ax.axhline(0, color="black", lw=0.8)
        _log_x(ax, "DrNet iterations")
        ax.set_xticks(it, [f"{n:,}" for n in it], fontsize=MIN_FONT)
        ax.minorticks_off()
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("PSNR − copy last (dB)")
    handles, names = axes[1].get_legend_handles_labels()
    _legend_below(fig, handles, names, ncol=min(len(rows), _legend_columns(names, MAX_WIDTH_IN - 1.5)),
                  handlelength=3.5)   # a column per setting; long handles
    return fig


POSE_CODE_PANELS = {"alignment": "direction:\ncos(predicted, true motion)",
                    "length_ratio": "length:\npredicted / true motion",
                    "error_ratio": "code error (log scale):\npredicted / pose held"}


def pose_code_motion(curves: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]):
    """The pose LSTM's predicted motion against the true one in code space, per predicted step
    (:mod:`drnet_lib.kth_pose_codes`): its direction, its length and the error it leaves, one
    panel each, left to right. A dotted line marks where the prediction would be perfect (direction
    and length 1) and, on the error panel (log scale), where it equals holding the last observed pose.

    Args:
        curves: ``{group: {setting: {"alignment" | "length_ratio" | "error_ratio": (T,)}}}``; one
            colour per group (e.g. moving, in place), one line style per setting.
    Returns:
        A Figure with one Axes per quantity, side by side, the legend under them.
    """
    fig, axes = plt.subplots(1, len(POSE_CODE_PANELS), figsize=(MAX_WIDTH_IN, 3.5), layout="constrained")
    styles = ("-", "--", ":", "-.")
    for colour, (group, settings) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], curves.items()):
        for style, (setting, values) in zip(styles, settings.items()):
            for ax, key in zip(axes, POSE_CODE_PANELS):
                steps = np.arange(1, len(values[key]) + 1)
                ax.plot(steps, values[key], color=colour, ls=style, lw=1.8, label=f"{group}, {setting}")
    for ax, (key, title) in zip(axes, POSE_CODE_PANELS.items()):
        ax.axhline(1.0, color="black", ls=":", lw=1)
        ax.set(xlabel="predicted step")
        ax.set_title(title, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # steps are whole frames
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    axes[-1].set_yscale("log")
    axes[0].axhline(0.0, color="grey", lw=0.8)
    handles, names = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, names, handlelength=3)
    return fig
