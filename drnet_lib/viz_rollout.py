"""Figures of predictions: long rollouts beside the truth, their animation, per-step metrics.

The conventions of :mod:`.viz` hold here (frames ``(C, H, W)`` in [0, 1], one labelled Axes per
tile, figures returned and never shown); ``rollout_animation`` returns an HTML string instead and
closes the figure it used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path
from tempfile import TemporaryDirectory

import matplotlib
import matplotlib.lines
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
from matplotlib.animation import FuncAnimation, HTMLWriter
from PIL import Image

# the tile machinery is shared with viz's grids (package-internal helpers)
from .viz import (MAX_WIDTH_IN, MIN_FONT, fitting_tile, _blank, _frames, _show, _Style, _tile_figure, _to_numpy,
                  frame_to_rgb)

__all__ = ["rollout_strip", "rollout_animation", "plot_frame_metrics", "horizon_plot"]


# -- rollout strip --------------------------------------------------------------------------




def rollout_strip(generated, truth, steps: Sequence[int], n_observed: int, tile: float | None = None):
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
        tile: tile width in inches; None (the default) picks the largest that keeps the figure
            within 7.5 in (the book's column), at most 1 in.
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
    tile = fitting_tile(len(kept), 1.0, row_label_lines=1) if tile is None else float(tile)
    fig, axes = _tile_figure(rows, len(kept), tile=tile, aspect=aspect, wide_rows=wide_rows,
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
                axes[0, c].set_title(f"t={s}", fontsize=MIN_FONT, pad=3)
        if tru is not None:
            axes[r, 0].set_ylabel("real", fontsize=MIN_FONT, labelpad=3)
        axes[r + per_clip - 1, 0].set_ylabel("DrNet" if tru is not None else f"clip {i + 1}",
                                             fontsize=MIN_FONT, labelpad=3)
    return fig


# -- animation ------------------------------------------------------------------------------
# The player embeds every frame as a PNG of the whole figure. At dpi 80 its labels (13 pt: 14 px)
# and frames (1.9 in: 152 px) are readable; the weight this adds is taken back by encoding each
# frame without its (opaque) alpha channel, as one grey channel where the frame is grey (KTH).
_ANIM_DPI = 80
_ANIM_SIDE_IN = 1.9
_ANIM_FONT_PT = 13


class _CompactPNG:
    """Stands in for the figure an ``HTMLWriter`` grabs frames from: ``savefig`` writes the same
    pixels as a smaller PNG (RGB without alpha, or 8-bit grey when all three channels agree)."""

    def __init__(self, fig):
        self._fig = fig

    def __getattr__(self, name):
        return getattr(self._fig, name)

    def savefig(self, fname, **kwargs):
        if kwargs.get("format") != "png":
            return self._fig.savefig(fname, **kwargs)
        buf = BytesIO()
        self._fig.savefig(buf, **kwargs)
        image = Image.open(buf).convert("RGB")
        rgb = np.asarray(image)
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            image = image.convert("L")
        image.save(fname, format="png", optimize=True)


class _CompactHTMLWriter(HTMLWriter):
    def setup(self, fig, outfile, *args, **kwargs):
        super().setup(fig, outfile, *args, **kwargs)
        self.fig = _CompactPNG(self.fig)


def _to_jshtml(anim, fps: int) -> str:
    """``anim.to_jshtml(fps, default_mode="loop")`` with the frames encoded by ``_CompactPNG``."""
    with TemporaryDirectory() as tmp, matplotlib.rc_context({"animation.frame_format": "png"}):
        path = Path(tmp, "player.html")
        anim.save(str(path), writer=_CompactHTMLWriter(fps=fps, embed_frames=True, default_mode="loop"),
                  dpi=_ANIM_DPI)
        return path.read_text()


def rollout_animation(generated, truth=None, fps: int = 10, max_frames: int = 200) -> str:
    """An HTML/JavaScript player of one rollout, real frames beside generated ones.

    Args:
        generated: ``(T, C, H, W)`` predicted frames.
        truth: ``(T', C, H, W)`` real frames aligned with ``generated`` (index k = step k + 1),
            or None. Where ``T' < T`` the real panel turns grey and says so.
        fps: playback speed.
        max_frames: frames are subsampled evenly (first and last kept) to at most this many.
    Returns:
        The HTML of ``FuncAnimation.to_jshtml()`` (frames embedded as PNG, a small figure at
        dpi 80 with 13-pt labels; frames are stored as RGB, or grey where they are grey);
        display it with ``IPython.display.HTML``. The figure used is closed.
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
    side, pad, font = _ANIM_SIDE_IN, 0.1, _ANIM_FONT_PT
    label_h = font / 72.0 * 1.35                      # one line of text, in inches
    fig = plt.figure(figsize=(side * len(panels) + pad * (len(panels) + 1), side + 0.05 + 2 * label_h + 0.1),
                     dpi=_ANIM_DPI, facecolor="white")
    images, titles = [], []
    width, height = fig.get_size_inches()
    for p, (name, arr) in enumerate(panels):
        left = pad + p * (side + pad)
        ax = fig.add_axes((left / width, 0.05 / height, side / width, side / height))
        ax.set_xticks([]); ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        images.append(ax.imshow(frame_to_rgb(arr[0]), interpolation="nearest"))
        titles.append(ax.set_title(name, fontsize=font, pad=2))
    step_text = fig.text(0.5, 1.0 - 0.04 / height, "", ha="center", va="top", fontsize=font)
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
        html = _to_jshtml(anim, fps)
    finally:
        plt.close(fig)
    return html


# -- frame metrics --------------------------------------------------------------------------
def _psnr_axis_top(curves: Sequence[np.ndarray]) -> float | None:
    """Upper y limit of the PSNR axis that leaves out isolated spikes, or None when there are none.

    The copy-last baseline hits the PSNR cap (100 dB, or a mean near it) where the true frame
    repeats the last observed one; drawn to scale, such spikes squash every other value into a
    few pixels. A value is a spike when it lies above ``hi + max(3 dB, hi / 2, 2 (hi - lo))``,
    with ``lo`` / ``hi`` the 10th / 90th percentiles of all finite values (the curves' bulk), so
    an ordinary high first step is not one; ``+inf`` counts as a spike. The axis then ends a
    little above the largest value that is not a spike, so only the spikes are cut off.
    """
    values = np.concatenate([c[~np.isnan(c)] for c in curves]) if curves else np.zeros(0)
    finite = values[np.isfinite(values)]
    if finite.size < 4:
        return None
    lo, hi = np.percentile(finite, [10, 90])
    threshold = hi + max(3.0, 0.5 * abs(hi), 2.0 * (hi - lo))
    if not (values > threshold).any():
        return None
    kept = finite[finite <= threshold]
    span = float(kept.max() - kept.min()) or 1.0
    return float(kept.max() + 0.12 * span)


def _mark_clipped(ax, x: np.ndarray, v: np.ndarray, top: float, color) -> int:
    """Draw each value of `v` above `top` as a triangle on the top edge, its value written above
    it (between the Axes and its title); returns how many there were."""
    over = np.flatnonzero(v > top)
    if not over.size:
        return 0
    ax.plot(x[over], np.full(over.size, top), ls="none", marker="^", ms=6, color=color, clip_on=False,
            zorder=5, label="_clipped")
    for i in over:
        ax.annotate(f"{v[i]:.0f} dB" if np.isfinite(v[i]) else "∞ dB", xy=(x[i], top), xytext=(0, 5),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8, color=color,
                    annotation_clip=False)
    return int(over.size)


def plot_frame_metrics(psnr, ssim, baseline_psnr=None, baseline_ssim=None,
                       label: str = "DrNet", baseline_label: str = "baseline"):
    """PSNR and SSIM of predicted frames against the real ones, per predicted step.

    Args:
        psnr, ssim: ``(T,)`` mean over test clips at predicted steps 1..T.
        baseline_psnr, baseline_ssim: optional ``(T,)`` curves of a baseline, drawn dashed.
        label, baseline_label: legend entries.
    Returns:
        A Figure 7.5 in wide with 2 Axes side by side, PSNR in dB (left) and SSIM (right),
        against the 1-indexed predicted step; one legend for both sits below them. Isolated
        PSNR spikes far above the other values (the copy-last baseline where the true frame
        repeats the last observed one: up to the 100 dB cap) are cut off: the PSNR axis ends a
        little above the other values, and each cut-off point is marked by a triangle on the top
        edge with its value written above it (``"84 dB"``) and a legend entry for such marks.
        Without such spikes every value is shown.
    """
    with _Style("whitegrid"):
        fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.4), layout="constrained")
        handles, clipped = [], []
        for ax, values, base, name in ((axes[0], psnr, baseline_psnr, "PSNR (dB)"),
                                       (axes[1], ssim, baseline_ssim, "SSIM")):
            curves = [(_to_numpy(values).reshape(-1), dict(color="C0", lw=1.8, label=label))]
            if base is not None:
                curves.append((_to_numpy(base).reshape(-1),
                               dict(color="C3", lw=1.5, ls="--", label=baseline_label)))
            lines = [ax.plot(np.arange(1, len(v) + 1), v, **style)[0] for v, style in curves]
            if len(lines) > len(handles):
                handles = lines
            if ax is axes[0]:
                top = _psnr_axis_top([v for v, _ in curves])
                if top is not None:   # cut the spikes off; every other value stays in view
                    bottom = float(min(v[np.isfinite(v)].min(initial=np.inf) for v, _ in curves))
                    ax.set_ylim(bottom - 0.05 * (top - bottom), top)
                    clipped = [style["color"] for v, style in curves
                               if _mark_clipped(ax, np.arange(1, len(v) + 1, dtype=float), v, top, style["color"])]
            ax.set_xlabel("predicted step t")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))   # steps are whole
            ax.set_ylabel(name)
            # both titles at one height, leaving room for the values written above cut-off points
            ax.set_title(f"{name.split()[0]} per predicted frame (higher is better)", fontsize=10,
                         pad=18 if top is not None else 6)
        if clipped:
            handles = handles + [matplotlib.lines.Line2D(
                [], [], ls="none", marker="^", ms=6, color=clipped[0] if len(set(clipped)) == 1 else "0.3",
                label="PSNR above the axis (its value written above)")]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False)
    return fig


# -- long rollouts: still recognisable, still moving? -------------------------------------
def horizon_plot(accuracy: Mapping, motion_ratio: Mapping, chance: float,
                 real_accuracy: float | None = None, oracle_motion: float | None = None,
                 accuracy_label: str = "action accuracy",
                 accuracy_title: str = "action named from generated poses"):
    """Long rollouts over time: is what was observed still recognisable? is it still moving?

    Args:
        accuracy: ``{step: accuracy}`` of a classifier on the generated frames (KTH: the action
            from the re-encoded pose window; Moving MNIST: the judge's digit identity). String
            keys, as read back from JSON, are accepted.
        motion_ratio: ``{step: generated motion / real motion}`` (:class:`.frame_metrics.RolloutMotion`),
            at the same steps or some of them.
        chance: the classifier's chance level, drawn dashed.
        real_accuracy: the classifier's accuracy on real test frames (a ceiling), or None.
        oracle_motion: the motion ratio of the true future poses decoded (``rollout.oracle_motion_ratio``:
            what this decoder draws when the poses are right), drawn dashed; or None.
        accuracy_label, accuracy_title: the left panel's y label and title.
    Returns:
        A Figure with 2 Axes against the predicted step (log scale): the accuracy, the motion ratio.
    """
    def curve(table: Mapping) -> tuple[list[int], list[float]]:
        pairs = sorted((int(s), float(v)) for s, v in table.items())
        return [s for s, _ in pairs], [v for _, v in pairs]

    acc_steps, acc = curve(accuracy)
    mot_steps, mot = curve(motion_ratio)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.2))
    a1.plot(acc_steps, acc, "o-", label="generated frames")
    a1.axhline(chance, color="k", ls="--", lw=1, label="chance")
    if real_accuracy is not None:
        a1.axhline(real_accuracy, color="C2", ls=":", lw=1.5, label="real test frames")
    a1.set(ylim=(0, 1.05), ylabel=accuracy_label, title=accuracy_title)
    a1.legend(fontsize=8)
    # the colours of the chapter's guesses: DrNet blue, the true poses decoded orange
    a2.plot(mot_steps, mot, "o-", color="C0", label="generated frames")
    a2.axhline(1.0, color="k", ls=":", lw=1, label="as much as real video")
    if oracle_motion is not None:
        a2.axhline(oracle_motion, color="C1", ls="--", lw=1.5, label="true poses, decoded")
    a2.set(ylim=(0, max(1.2, max([*mot, oracle_motion or 0.0]) * 1.1)),
           ylabel="frame-to-frame change\n(generated / real)", title="is it still moving?")
    a2.legend(fontsize=8)
    for ax, steps in ((a1, acc_steps), (a2, mot_steps)):
        ax.title.set_fontsize(10)
        ax.set_xscale("log")
        ax.set_xlabel("predicted step (log scale)")
        ax.minorticks_off()                       # log axis: label only the measured steps
        ax.set_xticks(steps, [str(s) for s in steps])
    fig.tight_layout()
    return fig
