"""Figures of predictions: long rollouts beside the truth, their animation, per-step metrics.

The conventions of :mod:`.viz` hold here (frames ``(C, H, W)`` in [0, 1], one labelled Axes per
tile, figures returned and never shown); ``rollout_animation`` returns an HTML string instead and
closes the figure it used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
from matplotlib.animation import FuncAnimation

# the tile machinery is shared with viz's grids (package-internal helpers)
from .viz import _TILE_FONT, _blank, _frames, _show, _Style, _tile_figure, _to_numpy, frame_to_rgb

__all__ = ["rollout_strip", "rollout_animation", "plot_frame_metrics", "plot_rollout_identity"]


# -- rollout strip --------------------------------------------------------------------------
def rollout_strip(generated, truth, steps: Sequence[int], n_observed: int):
    """The paper's long-rollout figure (figure number not verified): long rollouts shown at chosen steps.

    ``generated[:, k]`` and ``truth[:, k]`` are the same moment: the ``(k + 1)``-th frame after
    the ``n_observed`` conditioning frames, so step ``s`` (1-indexed) shows index ``s - 1``.

    Args:
        generated: ``(N, T, C, H, W)`` predicted frames.
        truth: ``(N, T', C, H, W)`` real frames, or None; ``T'`` may be shorter than ``T``
            (tiles beyond it are left blank).
        steps: 1-indexed steps to show, e.g. ``[1, 2, 3, 5, 10, 20, 50, 100, 200, 300, 400, 500]``;
            steps beyond ``T`` are dropped.
        n_observed: number of observed frames the rollout was conditioned on (for the title).
    Returns:
        A Figure with, per clip, a ground-truth row (when ``truth`` is given) above a generated
        row, one column per kept step titled ``"t=s"``. Tiles are labelled ``"truth i t=s"``,
        ``"generated i t=s"``; blank ones ``"blank truth i t=s"``.
    """
    gen = _frames(generated, 5, "generated")
    tru = None if truth is None else _frames(truth, 5, "truth")
    if tru is not None and tru.shape[0] != gen.shape[0]:
        raise ValueError(f"truth has {tru.shape[0]} clips but generated has {gen.shape[0]}")
    if any(int(s) < 1 for s in steps):
        raise ValueError(f"steps are 1-indexed, got {list(steps)}")
    kept = [int(s) for s in steps if int(s) <= gen.shape[1]]
    if not kept:
        raise ValueError(f"no step in {list(steps)} is within the {gen.shape[1]} generated frames")
    N = gen.shape[0]
    per_clip = 1 if tru is None else 2
    rows = N * per_clip
    wide_rows = {i * per_clip: 0.14 for i in range(1, N)}
    title = (f"DrNet rollout after {n_observed} observed frames (t = predicted step)"
             + ("\n(each clip: real frames above, generated below)" if tru is not None else ""))
    aspect = gen.shape[3] / gen.shape[4]
    fig, axes = _tile_figure(rows, len(kept), tile=0.7, aspect=aspect, wide_rows=wide_rows,
                             title=title, col_titles=True, row_labels=True)
    for i in range(N):
        r = i * per_clip
        for c, s in enumerate(kept):
            if tru is not None:
                if s <= tru.shape[1]:
                    _show(axes[r, c], tru[i, s - 1], f"truth {i} t={s}")
                else:
                    _blank(axes[r, c], f"blank truth {i} t={s}")
            _show(axes[r + per_clip - 1, c], gen[i, s - 1], f"generated {i} t={s}")
            if i == 0:
                axes[0, c].set_title(f"t={s}", fontsize=_TILE_FONT, pad=3)
        if tru is not None:
            axes[r, 0].set_ylabel("real", fontsize=_TILE_FONT, labelpad=3)
        axes[r + per_clip - 1, 0].set_ylabel("DrNet" if tru is not None else f"clip {i + 1}",
                                             fontsize=_TILE_FONT, labelpad=3)
    return fig


# -- animation ------------------------------------------------------------------------------
def rollout_animation(generated, truth=None, fps: int = 10, max_frames: int = 200) -> str:
    """An HTML/JavaScript player of one rollout, real frames beside generated ones.

    Args:
        generated: ``(T, C, H, W)`` predicted frames.
        truth: ``(T', C, H, W)`` real frames aligned with ``generated`` (index k = step k + 1),
            or None. Where ``T' < T`` the real panel turns grey and says so.
        fps: playback speed.
        max_frames: frames are subsampled evenly (first and last kept) to at most this many.
    Returns:
        The output of ``FuncAnimation.to_jshtml()`` (frames embedded as PNG, small figure at
        dpi 60); display it with ``IPython.display.HTML``. The figure used is closed.
    """
    gen = _frames(generated, 4, "generated")
    tru = None if truth is None else _frames(truth, 4, "truth")
    T = gen.shape[0]
    if T < 1:
        raise ValueError("generated has no frames")
    if T > max_frames:
        idx = np.unique(np.linspace(0, T - 1, max_frames).round().astype(int))
    else:
        idx = np.arange(T)
    panels = [("real", tru), ("DrNet", gen)] if tru is not None else [("DrNet", gen)]
    side = 1.9
    fig = plt.figure(figsize=(side * len(panels) + 0.1 * (len(panels) + 1), side + 0.55),
                     dpi=60, facecolor="white")
    images, titles = [], []
    width, height = fig.get_size_inches()
    for p, (name, arr) in enumerate(panels):
        left = 0.1 + p * (side + 0.1)
        ax = fig.add_axes((left / width, 0.05 / height, side / width, side / height))
        ax.set_xticks([]); ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        images.append(ax.imshow(frame_to_rgb(arr[0]), interpolation="nearest"))
        titles.append(ax.set_title(name, fontsize=12, pad=2))
    step_text = fig.text(0.5, 1.0 - 0.04 / height, "", ha="center", va="top", fontsize=12)
    blank = np.full(frame_to_rgb(gen[0]).shape, 0.35, dtype=np.float32)

    def update(n):
        k = int(idx[n])
        step_text.set_text(f"t = {k + 1} / {T}")
        for (name, arr), im, ttl in zip(panels, images, titles):
            if k < arr.shape[0]:
                im.set_data(frame_to_rgb(arr[k]))
                ttl.set_text(name)
            else:
                im.set_data(blank)
                ttl.set_text(f"{name}: ended")
        return images

    anim = FuncAnimation(fig, update, frames=len(idx), interval=1000.0 / fps, blit=False)
    try:
        with matplotlib.rc_context({"animation.frame_format": "png", "savefig.dpi": 60}):
            html = anim.to_jshtml(fps=fps, default_mode="loop")
    finally:
        plt.close(fig)
    return html


# -- frame metrics --------------------------------------------------------------------------
def plot_frame_metrics(psnr, ssim, baseline_psnr=None, baseline_ssim=None,
                       label: str = "DrNet", baseline_label: str = "baseline"):
    """PSNR and SSIM of predicted frames against the real ones, per predicted step.

    Args:
        psnr, ssim: ``(T,)`` mean over test clips at predicted steps 1..T.
        baseline_psnr, baseline_ssim: optional ``(T,)`` curves of a baseline, drawn dashed.
        label, baseline_label: legend entries.
    Returns:
        A Figure with 2 Axes (PSNR in dB, SSIM) against the 1-indexed predicted step.
    """
    with _Style("whitegrid"):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
        for ax, values, base, name in ((axes[0], psnr, baseline_psnr, "PSNR (dB)"),
                                       (axes[1], ssim, baseline_ssim, "SSIM")):
            v = _to_numpy(values).reshape(-1)
            ax.plot(np.arange(1, len(v) + 1), v, color="C0", lw=1.8, label=label)
            if base is not None:
                b = _to_numpy(base).reshape(-1)
                ax.plot(np.arange(1, len(b) + 1), b, color="C3", lw=1.5, ls="--", label=baseline_label)
            ax.set_xlabel("predicted step t")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))   # steps are whole
            ax.set_ylabel(name)
            ax.set_title(f"{name.split()[0]} per predicted frame (higher is better)")
            ax.legend(fontsize=8)
    return fig


# -- identity along a rollout ---------------------------------------------------------------
def plot_rollout_identity(acc: Mapping, chance: float | None = 0.1, reference: float | None = None):
    """How well a digit classifier (the judge) still recognises the digits along a rollout.

    Args:
        acc: ``{step: accuracy}`` with 1-indexed predicted steps (string keys, as read back from
            JSON, are accepted).
        chance: chance accuracy, drawn dashed (None to omit).
        reference: the judge's accuracy on real frames, drawn dotted (None to omit).
    Returns:
        A Figure with one Axes: accuracy against step on a log x axis, y in [0, 1].
    """
    pairs = sorted((int(k), float(v)) for k, v in acc.items())
    with _Style("whitegrid"):
        fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
        if pairs:
            x, y = zip(*pairs)
            ax.plot(x, y, marker="o", color="C0", lw=1.8, label="judge on generated frames")
        if reference is not None:
            ax.axhline(float(reference), ls=":", color="C2", lw=1.8,
                       label=f"judge on real frames ({float(reference):.2f})")
        if chance is not None:
            ax.axhline(float(chance), ls="--", color="0.35", lw=1.2, label=f"chance ({float(chance):.2f})")
        ax.set_xscale("log")
        if pairs and len(pairs) <= 16:  # label the measured steps themselves, as plain integers
            ax.set_xticks([p[0] for p in pairs])
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("predicted step t (log scale)")
        ax.set_ylabel("digit identity accuracy")
        ax.set_title("Do the digits keep their identity along the rollout?")
        ax.legend(fontsize=8, loc="best")
    return fig
