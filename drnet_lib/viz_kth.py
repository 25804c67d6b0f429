"""Figures of the KTH chapter: what each code knows (bars and confusion heatmaps), PSNR per step.

The chapter's rollout figure is :func:`.viz_rollout.horizon_plot` (shared with Moving MNIST); the
figures of the diagnostics page are :mod:`.viz_kth_diagnostics`'. Both take their colours and
legends from here (:data:`SERIES_COLOURS`)."""

from __future__ import annotations

import math
import textwrap
from typing import Mapping

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
import seaborn as sns

from .viz import MAX_WIDTH_IN, MIN_FONT, _text_width_in   # the book column's width, its smallest text


# One colour per guess of the future frames, on every figure that draws it (the chapter's figure of
# the four guesses set them: DrNet blue, its decoder's ceiling orange, DrNet standing still green,
# copy-last black).
SERIES_COLOURS = {"DrNet (pose LSTM)": "C0", "DrNet (predicted poses)": "C0",
                  "decoded from true poses": "C1", "DrNet standing still": "C2",
                  "copy last": "black", "copy last frame": "black"}


def series_colours(labels) -> dict[str, str]:
    """A colour per series label: :data:`SERIES_COLOURS`' for the guesses it names, the others the
    colour cycle's in order of appearance, skipping the colours the named guesses take."""
    labels = list(dict.fromkeys(labels))
    taken = {mcolors.to_hex(SERIES_COLOURS[k]) for k in labels if k in SERIES_COLOURS}
    cycle = [c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"] if mcolors.to_hex(c) not in taken]
    free = iter(cycle * (1 + len(labels) // max(len(cycle), 1)))
    return {k: SERIES_COLOURS[k] if k in SERIES_COLOURS else next(free) for k in labels}



def _wrap(title: str, width: int) -> str:
    """``title`` in lines of at most ``width`` characters, broken after its first colon if it has one."""
    head, colon, tail = title.partition(": ")
    if len(title) <= width or not colon or len(head) >= width:
        return textwrap.fill(title, width)
    return f"{head}:\n{textwrap.fill(tail, width)}"


def _legend_columns(labels, width: float = MAX_WIDTH_IN - 0.3, fontsize: float = MIN_FONT) -> int:
    """How many legend columns of ``labels`` fit in ``width`` inches at ``fontsize``."""
    longest = max((_text_width_in(str(k), fontsize) for k in labels), default=0.0)
    column = longest + 4.5 * fontsize / 72                # the text, its handle and the gaps around them
    return max(1, min(len(labels), int(width // column)))


def _legend_below(fig, handles, names, ncol: int | None = None, **options) -> None:
    """One legend for the whole figure, under its panels, in as many columns as fit (``ncol``)."""
    fig.legend(handles, names, fontsize=MIN_FONT, loc="outside lower center", frameon=False,
               ncol=ncol or _legend_columns(names), **options)


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
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, 3.4))
    variants = list(scores)
    width = 0.8 / max(len(variants), 1)
    for i, variant in enumerate(variants):
        values = [scores[variant].get(q, np.nan) for q, _ in QUESTIONS]
        err = [errors[variant].get(q, 0.0) for q, _ in QUESTIONS] if errors else None
        x = np.arange(len(QUESTIONS)) + (i - (len(variants) - 1) / 2) * width
        bars = ax.bar(x, values, width, yerr=err, capsize=3, label=variant)
        ax.bar_label(bars, fmt="%.2f", fontsize=MIN_FONT, padding=2)   # above the error bar; NaN blank
    for j, (q, _) in enumerate(QUESTIONS):
        level = chance[q.split("_")[0]]
        ax.plot([j - 0.45, j + 0.45], [level, level], "k--", lw=1, label="chance" if j == 0 else None)
    ax.set_xticks(range(len(QUESTIONS)), [label for _, label in QUESTIONS])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8, loc="upper right", ncol=len(variants) + 1)
    fig.tight_layout()
    return fig


def psnr_by_clip_list(curves: Mapping[str, Mapping[str, np.ndarray]], baseline: str = "copy last"):
    """Per-step mean PSNR of several guesses, one panel per clip list (or per set of models), side
    by side (two to a row); the legend in the panel if there is one, else under the panels.

    Args:
        curves: ``{panel title: {series label: (T,) mean PSNR at predicted steps 1..T}}``; the series
            named ``baseline`` is drawn dashed and black, the others solid, each guess named in
            :data:`SERIES_COLOURS` in its colour and the other series in the colour cycle's (the same
            colour for a label on every panel).
        baseline: the name of the baseline series.
    Returns:
        A Figure with one Axes per list, sharing the PSNR axis.
    """
    ncols = min(len(curves), 2)
    nrows = math.ceil(len(curves) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(MAX_WIDTH_IN, 4.6 * ncols), 3.2 * nrows + 0.3 * (ncols > 1)),
                             sharey=True, squeeze=False, layout="constrained")
    colours = series_colours(label for series in curves.values() for label in series if label != baseline)
    for ax, (title, series) in zip(axes.flat, curves.items()):
        for label, values in series.items():
            steps = np.arange(1, len(values) + 1)
            style = dict(color="black", ls="--", lw=1.4) if label == baseline else dict(color=colours[label], lw=1.8)
            ax.plot(steps, values, label=label, **style)
        ax.set(title=title, xlabel="predicted step")
        ax.title.set_fontsize(10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # steps are whole frames
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(curves):]:
        fig.delaxes(ax)
    for row in axes:
        row[0].set_ylabel("mean PSNR (dB)")
    if len(curves) == 1:
        fig.axes[0].legend(fontsize=MIN_FONT)
    else:                                                   # under the panels, where it hides no curve
        named = {}
        for ax in fig.axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                named.setdefault(label, handle)
        _legend_below(fig, list(named.values()), list(named.keys()))
    return fig


def action_confusion(confusions: Mapping[str, Mapping[str, Mapping[str, float]]]):
    """Where an action classifier's answers go: one heatmap per panel (up to three side by side,
    left to right, then further rows), a row per true action and a column per answer, each cell the
    share of the true action's windows given that answer (rows sum to 1; the diagonal is each
    action's accuracy).

    Args:
        confusions: ``{panel title: {true action: {answered action: share}}}`` (e.g.
            ``classification.action_confusion_from_pose``, or its mean over seeds).
    Returns:
        A Figure with one Axes per panel, actions in the order of the first panel's rows (their
        names on the first panel of each row only).
    """
    ncols = min(len(confusions), 3)
    nrows = math.ceil(len(confusions) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(MAX_WIDTH_IN, 1.2 + 2.1 * ncols), 3.6 * nrows),
                             layout="constrained", squeeze=False)
    order = list(next(iter(confusions.values())))
    for k, (ax, (title, shares)) in enumerate(zip(axes.flat, confusions.items())):
        table = pd.DataFrame(shares).T.reindex(index=order, columns=order)   # rows: true action, columns: answer
        first = k % ncols == 0
        sns.heatmap(table, ax=ax, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", cbar=False,
                    annot_kws={"fontsize": MIN_FONT}, yticklabels=first)
        ax.set_title(_wrap(title, 28), fontsize=9)
        ax.set_xlabel("answered")
        ax.set_ylabel("true action" if first else "")
        ax.tick_params(labelsize=9)
    for ax in axes.flat[len(confusions):]:
        fig.delaxes(ax)
    return fig
