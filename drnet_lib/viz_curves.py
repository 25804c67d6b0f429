"""Training curves and probe tables of the DrNet book: DrNet's losses and the scene discriminator's
accuracy, the pose LSTM's error, and which code a linear probe reads what from.

The conventions of :mod:`.viz` hold here too: every function returns a pyplot Figure and never calls
``plt.show``; seaborn styling stays inside ``matplotlib.rc_context``; figures at most
:data:`.viz.MAX_WIDTH_IN` wide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .viz import MAX_WIDTH_IN, _Style

__all__ = ["plot_training_curves", "plot_lstm_curve", "probe_heatmap"]

LN2 = math.log(2.0)   # the discriminator's BCE when it guesses: the training curves' reference line


# -- line plots --------------------------------------------------------------------------------
def _records(history) -> list[dict]:
    if hasattr(history, "to_dict"):  # a pandas DataFrame
        history = history.to_dict("records")
    return list(history)


def _series(rows: list[dict], key: str, x_key: str = "iteration"):
    """(x, y) of the rows that have a finite value for `key`."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        y = row.get(key)
        if y is None:
            continue
        y = float(y)
        if math.isfinite(y):
            xs.append(float(row.get(x_key, i)))
            ys.append(y)
    return np.asarray(xs), np.asarray(ys)


def _legend_right(ax) -> None:
    """The Axes' legend outside it, to the right, so it never covers a curve or reference line."""
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False,
              handlelength=2.5, borderaxespad=0.2)


def plot_training_curves(history):
    """DrNet training curves in three panels stacked on one iteration axis.

    Args:
        history: list of dicts (or a DataFrame) with ``iteration``, ``reconstruction``,
            ``similarity``, ``pose_adversarial``, ``discriminator_bce`` and
            ``discriminator_accuracy``; missing or non-finite values are skipped.
    Returns:
        A Figure 7.5 in wide with 3 Axes, top to bottom (their titles start with the letter):
        (a) reconstruction and similarity MSE on a log scale, (b) the scene-discriminator BCE
        seen by the pose encoder and by the discriminator, with a dashed line at ln 2 (C at
        chance), (c) the discriminator's accuracy with a dashed line at 0.5. They share the
        x axis (iteration, labelled on the bottom panel); each legend sits to the right of its
        panel, outside it.
    """
    rows = _records(history)
    with _Style("whitegrid"):
        fig, axes = plt.subplots(3, 1, figsize=(MAX_WIDTH_IN, 6.6), sharex=True, layout="constrained")
        ax = axes[0]
        for key, label in (("reconstruction", "reconstruction"), ("similarity", "content similarity")):
            x, y = _series(rows, key)
            if len(x):
                ax.plot(x, y, label=label, lw=1.5)
        ax.set_yscale("log")
        ax.set_ylabel("MSE (log scale)")
        ax.set_title("(a) reconstruction & similarity (MSE)", fontsize=10)

        ax = axes[1]
        for key, label in (("pose_adversarial", "pose encoder (target ½)"),
                           ("discriminator_bce", "discriminator C")):
            x, y = _series(rows, key)
            if len(x):
                ax.plot(x, y, label=label, lw=1.5)
        ax.axhline(LN2, ls="--", color="0.3", lw=1.2, label="ln 2 = 0.693\n(C at chance)")
        ax.set_ylabel("binary\ncross-entropy")
        ax.set_title("(b) scene-discriminator BCE", fontsize=10)

        ax = axes[2]
        x, y = _series(rows, "discriminator_accuracy")
        if len(x):
            ax.plot(x, y, color="C2", lw=1.5, label="C accuracy")
        ax.axhline(0.5, ls="--", color="0.3", lw=1.2, label="chance (0.5)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("accuracy (same\nvs. other clip)")
        ax.set_title("(c) discriminator accuracy", fontsize=10)
        ax.set_xlabel("iteration")

        for ax in axes:
            _legend_right(ax)
        fig.align_ylabels(axes)
    return fig


def plot_lstm_curve(history):
    """The pose LSTM's training loss.

    Args:
        history: list of dicts (or a DataFrame) with ``iteration`` and ``pose_mse``.
    Returns:
        A Figure with one Axes: predicted-pose MSE against iteration, log y (the y label says
        so: ``"MSE (log scale)"``).
    """
    rows = _records(history)
    with _Style("whitegrid"):
        fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
        x, y = _series(rows, "pose_mse")
        ax.plot(x, y, color="C0", lw=1.5, label="predicted-pose MSE")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("MSE (log scale)")
        ax.set_title("Pose LSTM training loss")
        ax.legend(fontsize=8)
    return fig


# -- factorisation grid ---------------------------------------------------------------------
# -- probes ---------------------------------------------------------------------------------
def _lookup(metrics: Mapping, dotted: str) -> float:
    """metrics["probe.x"] or metrics["probe"]["x"]; NaN when absent."""
    if dotted in metrics:
        return float(metrics[dotted])
    node = metrics
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return float("nan")
        node = node[part]
    return float(node)


PROBE_ROWS = ["content", "pose"]
PROBE_COLUMNS = ["digit identity (acc)", "digit position (R²)"]


def probe_heatmap(metrics: Mapping, chance: Mapping[str, float] | None = None):
    """Linear-probe results as a 2 x 2 heatmap: which code knows what.

    Args:
        metrics: holds ``probe.content_to_identity``, ``probe.pose_to_identity``,
            ``probe.content_to_position_r2`` and ``probe.pose_to_position_r2`` (flat dotted keys
            or nested ``{"probe": {...}}``); a missing value leaves its cell empty.
        chance: optional chance levels, keys ``"identity"`` and/or ``"position"``, written as
            ``"chance 0.10"`` under the column label.
    Returns:
        A Figure with the heatmap Axes and its colour bar: rows ``content``, ``pose``; columns
        ``digit identity (acc)``, ``digit position (R²)``; cells annotated with 2 decimals, colour
        scale fixed to [0, 1] (a negative R² is shown with the colour of 0).
    """
    keys = [["probe.content_to_identity", "probe.content_to_position_r2"],
            ["probe.pose_to_identity", "probe.pose_to_position_r2"]]
    data = np.array([[_lookup(metrics, k) for k in row] for row in keys])
    columns = list(PROBE_COLUMNS)
    for c, name in enumerate(("identity", "position")):
        if chance and name in chance and chance[name] is not None:
            columns[c] += f"\nchance {float(chance[name]):.2f}"
    with _Style("white"):
        fig, ax = plt.subplots(figsize=(5.2, 3.4), layout="constrained")
        sns.heatmap(data, ax=ax, annot=True, fmt=".2f", vmin=0.0, vmax=1.0, cmap="viridis",
                    xticklabels=columns, yticklabels=PROBE_ROWS, linewidths=1.5, linecolor="white",
                    square=False, annot_kws={"fontsize": 13}, cbar_kws={"shrink": 0.9})
        ax.tick_params(axis="both", length=0)
        ax.set_yticklabels(PROBE_ROWS, rotation=0)
        ax.set_title("Linear probes on each code\n"
                     "(disentangled: content → identity high, pose → position high)", fontsize=10)
    return fig
