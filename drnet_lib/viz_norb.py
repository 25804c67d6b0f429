"""Figures of the NORB chapter: factorisation grids side by side, the classification table as bars,
and the beta x pose_dim heatmaps. (Generic frame plots live in :mod:`.viz`.)"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .results import grid_cell_summary
from .viz import MAX_WIDTH_IN, decode_pairs


def decoded_mosaic(model, content_frames: torch.Tensor, pose_frames: torch.Tensor) -> np.ndarray:
    """One grey image of the factorisation grid: ``(n+1)*S x (m+1)*S`` in [0, 1].

    Row 0 shows the pose frames ``(m, 1, S, S)``, column 0 the content frames ``(n, 1, S, S)``;
    cell ``(i+1, j+1)`` is ``decode(content(content_frames[i]), pose(pose_frames[j]))``.
    The top-left cell is left white.
    """
    n, m, S = content_frames.shape[0], pose_frames.shape[0], content_frames.shape[-1]
    decoded = decode_pairs(model, content_frames, pose_frames)              # (n, m, 1, S, S)
    mosaic = np.ones(((n + 1) * S, (m + 1) * S), dtype=np.float32)
    for j in range(m):
        mosaic[:S, (j + 1) * S:(j + 2) * S] = pose_frames[j, 0].cpu().numpy()
    for i in range(n):
        mosaic[(i + 1) * S:(i + 2) * S, :S] = content_frames[i, 0].cpu().numpy()
        for j in range(m):
            mosaic[(i + 1) * S:(i + 2) * S, (j + 1) * S:(j + 2) * S] = decoded[i, j, 0]
    return np.clip(mosaic, 0.0, 1.0)


def factorization_pair(models: Mapping[str, torch.nn.Module], content_frames, pose_frames):
    """The paper's NORB factorisation grids (figure number not verified): one grid per model, side by side.

    Args:
        models: title -> DrNet, e.g. ``{"with adversarial loss": m1, "without": m0}``.
        content_frames: ``(n, 1, S, S)`` in [0, 1], one per row (held-out objects).
        pose_frames: ``(m, 1, S, S)``, one per column.
    Returns: a Figure with one Axes per model; thin lines separate the real row/column. The
        grids fill the figure's width, at most 7.5 in (the book's column), with tiles of at most
        1 in.
    """
    n, m, S = content_frames.shape[0], pose_frames.shape[0], content_frames.shape[-1]
    k = len(models)
    tile = min(1.0, (MAX_WIDTH_IN - 0.2 - 0.25 * (k - 1)) / (k * (m + 1)))   # inches per tile
    fig, axes = plt.subplots(1, k, figsize=(k * (m + 1) * tile + 0.2 + 0.25 * (k - 1), (n + 1) * tile + 0.75),
                             layout="constrained", squeeze=False)
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.03)
    for ax, (title, model) in zip(axes[0], models.items()):
        ax.imshow(decoded_mosaic(model, content_frames, pose_frames), cmap="gray", vmin=0, vmax=1)
        ax.axhline(S - 0.5, color="tab:orange", lw=1.5)
        ax.axvline(S - 0.5, color="tab:orange", lw=1.5)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(title, fontsize=10)
    fig.suptitle("Content from each row's object, pose (azimuth) from each column's frame", fontsize=10)
    return fig


def classification_bars(scores: Mapping[str, Mapping[str, float]], chance: float = 0.2,
                        paper: Mapping[str, Mapping[str, float]] | None = None,
                        errors: Mapping[str, Mapping[str, float]] | None = None):
    """Category accuracy per (variant, code) as grouped bars, chance as a dashed line.

    Args:
        scores: ``{"adv": {"content": acc, "pose": acc}, "noadv": {...}}``.
        paper: same shape, the paper's values (drawn as black ticks, labelled as recalled).
        errors: same shape, standard deviations over seeds (error bars).
    """
    rows = [{"variant": v, "code": c, "accuracy": a} for v, d in scores.items() for c, a in d.items()]
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(5.2, 3.4), layout="constrained")
    sns.barplot(df, x="variant", y="accuracy", hue="code", ax=ax, palette="deep")
    codes = list(dict.fromkeys(df["code"]))
    variants = list(dict.fromkeys(df["variant"]))
    width = 0.8 / len(codes)
    for ci, code in enumerate(codes):
        for vi, variant in enumerate(variants):
            x = vi - 0.4 + width * (ci + 0.5)
            if errors:
                ax.errorbar(x, scores[variant][code], yerr=errors[variant][code], color="black",
                            capsize=3, lw=1)
            if paper and variant in paper and code in paper[variant]:
                ax.plot([x - width / 2.5, x + width / 2.5], [paper[variant][code]] * 2, color="black",
                        lw=2.5, label="paper (recalled)" if (ci, vi) == (0, 0) else None)
    ax.axhline(chance, ls="--", color="grey", lw=1, label=f"chance {chance:.2f}")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("object-category accuracy\n(test instances)")
    ax.set_xlabel("")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=4, frameon=False)
    return fig


def grid_heatmaps(runs: pd.DataFrame, values: Mapping[str, str], chance: float = 0.2):
    """One heatmap per metric over the beta x pose_dim grid, each cell the mean over its seeds.

    Args:
        runs: one row per grid run (``results.load_grid``) with columns ``adversarial_weight``,
            ``pose_dim``, ``seed`` and each metric column named in ``values``.
        values: column -> panel title, e.g. ``{"pose": "category from pose"}``.
    Returns:
        A Figure at most 7.5 in wide: the heatmaps side by side (in the order of ``values``;
        ``pose_dim`` is labelled on the first only), all on one colour scale from 0 to 1, and
        one colour bar for that scale at the right (the last Axes).
    """
    cells = grid_cell_summary(runs, list(values))
    seeds = cells["seeds"]
    averaged = f"mean of {seeds.min()} seeds" if seeds.min() == seeds.max() else f"mean of {seeds.min()}-{seeds.max()} seeds"
    k = len(values)
    fig, axes = plt.subplots(1, k, figsize=(min(MAX_WIDTH_IN, 1.3 + 2.1 * k), 3.3), layout="constrained",
                             squeeze=False)
    fig.get_layout_engine().set(wspace=0.04)
    for i, (ax, (column, title)) in enumerate(zip(axes[0], values.items())):
        table = cells.pivot(index="pose_dim", columns="adversarial_weight", values=f"{column} mean")
        table.columns = [f"{b:g}" for b in table.columns]
        sns.heatmap(table, ax=ax, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", cbar=False,
                    annot_kws={"fontsize": 9})
        ax.tick_params(labelsize=9, length=0)
        ax.set_xlabel("adversarial weight β", fontsize=9)
        if i == 0:
            ax.set_ylabel("pose_dim", fontsize=9)
        else:
            ax.set_ylabel("")
            ax.tick_params(labelleft=False)
        ax.set_title(f"{textwrap.fill(title, 26, break_on_hyphens=False)}\n{averaged}; chance {chance:.2f}",
                     fontsize=9)
    cbar = fig.colorbar(axes[0, 0].collections[0], ax=list(axes[0]), shrink=0.9, aspect=25, pad=0.02)
    cbar.set_label("accuracy (shared scale)", fontsize=9)
    cbar.ax.tick_params(labelsize=8)
    return fig
