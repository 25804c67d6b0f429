"""What the adversarial weight β changes, run by run: one figure for the Moving MNIST results page
and the KTH diagnostics page, each with its own panels (generic frame plots live in :mod:`.viz`)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .viz import MAX_WIDTH_IN, MIN_FONT

# (row key, panel title, chance or None) per panel of by_adversarial_weight. The scene discriminator
# guessing "same clip or not" is right half the time; the other chances are measured, given per call.
DISCRIMINATOR_CHANCE = 0.5
MNIST_PANELS = (   # keys of a Moving MNIST results file's metrics
    ("train.final.discriminator_accuracy", "scene discriminator accuracy (end of training)", DISCRIMINATOR_CHANCE),
    ("probe.pose_to_identity", "digit identity from the pose code (probe)", None),
    ("probe.pose_to_position_r2", "digit position from the pose code (probe R²)", None),
    ("rollout.motion_of_oracle.500", "rollout step 500: motion kept (of the true poses')", None),
)
KTH_PANELS = (     # keys of drnet_lib.kth_analysis.adversarial_sweep's rows
    ("person_from_pose", "person from pose", None),
    ("action_from_pose", "action from pose", None),
    ("discriminator_accuracy", "discriminator accuracy (end)", DISCRIMINATOR_CHANCE),
    ("motion_ratio", "rollout motion ratio (last step)", None),
)


def by_adversarial_weight(rows: Sequence[dict], panels: Sequence[tuple], chance: dict | None = None):
    """One panel per quantity (2 columns, in reading order), the adversarial weight β on a
    categorical x axis (β = 0 cannot sit on a log axis): every run as a dot labelled with its seed
    (a β's runs side by side in the order of their seeds), the mean over a β's runs as a bar, and
    a panel's chance level as a dashed line.

    Args:
        rows: one dict per run with ``beta``, ``seed`` and every panel's key.
        panels: ``(key, title, chance or None)`` per panel (:data:`MNIST_PANELS`, :data:`KTH_PANELS`).
        chance: ``{key: value}`` adding or overriding a panel's chance (e.g. the digit probe's measured one).
    Returns:
        A Figure with one Axes per panel (unused cells of the last row removed).
    """
    betas = sorted({r["beta"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    offsets = {s: (i - (len(seeds) - 1) / 2) * 0.2 for i, s in enumerate(seeds)}  # seeds side by side
    ncols = 2
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(MAX_WIDTH_IN, 2.6 * nrows), squeeze=False)
    for ax, (key, title, level) in zip(axes.flat, panels):
        means = [np.mean([r[key] for r in rows if r["beta"] == b]) for b in betas]
        ax.bar(range(len(betas)), means, width=0.75, color="#c6dbef", label="mean over seeds")
        for r in rows:
            x = betas.index(r["beta"]) + offsets[r["seed"]]
            ax.plot(x, r[key], "o", ms=4, color="#08519c")
            ax.annotate(str(r["seed"]), (x, r[key]), fontsize=MIN_FONT, xytext=(0, 2.5),
                        textcoords="offset points", ha="center", va="bottom")
        level = (chance or {}).get(key, level)
        if level is not None:
            ax.axhline(level, ls="--", color="grey", lw=1, label="chance")
        ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
        ax.set_xlabel("adversarial weight β")
        ax.set_title(title, fontsize=10)
        ax.margins(y=0.15)                                   # room for the seed labels above the top dots
    for ax in list(axes.flat)[len(panels):]:
        ax.remove()
    axes[0, 0].legend(fontsize=MIN_FONT, loc="lower left")
    fig.tight_layout()
    return fig


def code_motion_by_beta(step_ratios: dict[float, Sequence[Sequence[float]]]):
    """How far the pose LSTM's predicted codes move per step over a rollout, per adversarial weight:
    one colour per β, a thin line per run and a thick one for the mean over its runs, on a log step
    axis; the dashed line at 1 is the true codes' mean step.

    Args:
        step_ratios: ``{β: [one curve per run: per predicted step, the mean predicted step length
            over the true codes' mean step]}`` (``mnist_pose_codes.json``'s ``step_ratio``).
    Returns:
        A Figure with one Axes.
    """
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, 3.2))
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(step_ratios)))
    for colour, (beta, curves) in zip(colours, sorted(step_ratios.items())):
        steps = np.arange(1, len(curves[0]) + 1)
        for curve in curves:
            ax.plot(steps, curve, color=colour, lw=0.7, alpha=0.45)
        ax.plot(steps, np.mean(curves, axis=0), color=colour, lw=2.2, label=f"β = {beta:g} (mean of {len(curves)})")
    ax.axhline(1.0, ls="--", color="grey", lw=1, label="the true codes' step")
    ax.set_xscale("log")
    ax.set_xlabel("predicted step (log scale)")
    ax.set_ylabel("predicted step length\n/ true step length")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=MIN_FONT, loc="upper right")
    fig.tight_layout()
    return fig
