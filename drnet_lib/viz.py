"""Figures for the DrNet book: clips and the factorisation grid (training curves and probes: :mod:`.viz_curves`).

Every plotting function returns a :class:`matplotlib.figure.Figure` created through pyplot (so a
notebook shows it inline) and never calls ``plt.show``; a script that makes many figures should
``plt.close(fig)`` when done. Nothing here changes matplotlib's global settings: seaborn styling is applied
inside ``matplotlib.rc_context`` only.

Frames are ``(C, H, W)`` floats in [0, 1] (torch tensors or numpy arrays). With the Moving MNIST
convention of drnet-py, ``C = 3``: digit 0 in the red channel, digit 1 in green, blue empty, so
frames are drawn as RGB on black. One channel is drawn grey; two get an empty blue channel.

Image grids use one Axes per tile, placed by hand so tiles are square and separated by thin white
gaps. Each tile Axes carries a label (``ax.get_label()``) naming what it shows, e.g.
``"decoded 1,2"`` or ``"truth 0 t=5"``, which the tests and callers can use to find it.

Predictions (rollouts, their animation, per-step PSNR/SSIM) are drawn by :mod:`.viz_rollout`,
with the same tiles and conventions.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib
import matplotlib.ticker
import matplotlib.pyplot as plt
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path
import numpy as np
import seaborn as sns
import torch

from .models import evaluating

__all__ = ["show_clips", "factorization_grid", "frame_to_rgb", "decode_pairs"]

# The book's text column is about 765 px wide and its figures are saved at 100 dpi: a wider figure
# is shrunk, and its text with it. Every figure is at most MAX_WIDTH_IN inches wide, its text at
# least MIN_FONT points.
MAX_WIDTH_IN = 7.5
MIN_FONT = 8
_CLIP_TILE = 0.75   # show_clips' tile (inches), where the column has room
_LABEL_AIR = 0.05   # inches kept free between two rows' upright labels
_ACROSS_MAX = 1.6   # inches: row labels written across take at most this much of the column
_ACROSS_PAD = 4     # points between a row label written across and its row's first tile


# -- frames ------------------------------------------------------------------------------------
def _to_numpy(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def frame_to_rgb(frame) -> np.ndarray:
    """One frame ``(C, H, W)`` in [0, 1] -> ``(H, W, 3)`` float array for ``imshow``.

    ``C = 3`` is shown as RGB, ``C = 1`` as grey, ``C = 2`` with an empty blue channel; values
    are clipped to [0, 1].
    """
    f = _to_numpy(frame)
    if f.ndim != 3:
        raise ValueError(f"a frame must be (C, H, W), got shape {f.shape}")
    c = f.shape[0]
    if c == 1:
        f = np.repeat(f, 3, axis=0)
    elif c == 2:
        f = np.concatenate([f, np.zeros_like(f[:1])], axis=0)
    elif c != 3:
        raise ValueError(f"frames need 1, 2 or 3 channels, got {c}")
    return np.clip(np.transpose(f, (1, 2, 0)), 0.0, 1.0)


def _frames(x, ndim: int, name: str) -> np.ndarray:
    arr = _to_numpy(x)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


# -- tile layout -------------------------------------------------------------------------------
def _positions(n: int, size: float, gap: float, start: float, wide_before: Mapping[int, float]):
    """Offsets (inches) of n tiles of `size` separated by `gap`, plus extra gap before some."""
    out, pos = [], start
    for i in range(n):
        if i:
            pos += gap + wide_before.get(i, 0.0)
        out.append(pos)
        pos += size
    return out, pos


_EDGE = 0.08   # inches of white around a tile figure


def _left_margin(row_label_lines: int, row_label_width: float = 0.0) -> float:
    """Inches left of a tile figure's first column: its edge and room for row labels, either
    upright along the tiles in that many lines, or (``row_label_width`` > 0) across, that wide."""
    if row_label_width:
        return _EDGE + row_label_width + 0.06   # 0.06 in: the label's _ACROSS_PAD and a hair
    return _EDGE + (0.22 + 0.14 * (row_label_lines - 1) if row_label_lines else 0.0)


def fitting_tile(cols: int, largest: float, row_label_lines: int = 0, gap: float = 0.03,
                 row_label_width: float = 0.0) -> float:
    """The tile size (inches) that fits ``cols`` tiles and :func:`_tile_figure`'s margins (with
    room for row labels as :func:`_left_margin` makes it) into ``MAX_WIDTH_IN``, at most ``largest``."""
    left = _left_margin(row_label_lines, row_label_width)
    return float(min(largest, (MAX_WIDTH_IN - left - _EDGE - gap * (cols - 1)) / cols))


def _text_width_in(text: str, size: float = MIN_FONT) -> float:
    """Inches that the widest line of ``text`` advances at ``size`` points in the default font
    (0 for blank text)."""
    lines = [line for line in text.split("\n") if line.strip()]
    font = FontProperties(size=size)
    return max((text_to_path.get_text_width_height_descent(line, font, ismath=False)[0] for line in lines),
               default=0.0) / 72


def _tile_figure(rows: int, cols: int, *, tile: float = 0.8, aspect: float = 1.0, gap: float = 0.03,
                 wide_rows: Mapping[int, float] | None = None, wide_cols: Mapping[int, float] | None = None,
                 title: str | None = None, col_titles: bool = False, row_labels: bool | int = False,
                 row_label_width: float = 0.0):
    """A white figure with a rows x cols array of image Axes; white gaps act as separators.

    ``aspect`` is H / W of a tile; ``wide_rows`` / ``wide_cols`` map a row / column index to
    extra space (inches) before it; ``row_labels`` leaves room for upright row labels of that
    many lines (True: one), ``row_label_width`` for row labels written across, that wide (inches).
    Returns ``(fig, axes)`` with ``axes`` an object array.
    """
    tw, th = tile, tile * aspect
    n_title_lines = title.count("\n") + 1 if title else 0
    top = 0.08 + 0.24 * n_title_lines + (0.22 if col_titles else 0.0)
    left = _left_margin(int(row_labels), row_label_width)
    xs, x_end = _positions(cols, tw, gap, left, wide_cols or {})
    ys, y_end = _positions(rows, th, gap, top, wide_rows or {})
    width, height = x_end + _EDGE, y_end + _EDGE
    fig = plt.figure(figsize=(width, height), facecolor="white")
    axes = np.empty((rows, cols), dtype=object)
    for r in range(rows):
        for c in range(cols):
            ax = fig.add_axes((xs[c] / width, 1.0 - (ys[r] + th) / height, tw / width, th / height))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_facecolor("black")
            for spine in ax.spines.values():
                spine.set_visible(False)
            axes[r, c] = ax
    if title:
        fig.text(0.5, 1.0 - 0.06 / height, title, ha="center", va="top", fontsize=10)
    return fig, axes


def _show(ax, frame, label: str) -> None:
    ax.imshow(frame_to_rgb(frame), interpolation="nearest", vmin=0.0, vmax=1.0)
    ax.set_label(label)


def _blank(ax, label: str) -> None:
    ax.set_axis_off()
    ax.set_label(label)


# -- clips ----------------------------------------------------------------------------------
def show_clips(frames, max_clips: int = 4, max_frames: int = 10, title: str | None = None,
               col_labels=None, row_labels=None):
    """A grid of clips, one clip per row.

    Args:
        frames: ``(N, T, C, H, W)`` in [0, 1] (a single clip ``(T, C, H, W)`` is also accepted).
        max_clips: at most this many clips (the first ones) are drawn.
        max_frames: at most this many frames (the first ones) per clip.
        title: optional figure title.
        col_labels: optional column titles, one per drawn frame (extra ones are ignored), e.g.
            ``["0°", "20°", ...]`` or ``["frame 1", "frame 3", ...]`` when the frames were
            subsampled. None (the default) titles the columns ``"t=1"``, ``"t=2"``, ...
        row_labels: optional row labels, one per drawn clip (extra ones are ignored), e.g.
            category or action names, ``["real", "decoded"]``; they are drawn even for a single
            clip. None (the default) labels the rows ``"clip 1"``, ``"clip 2"``, ... when there is
            more than one clip, and a single clip not at all. Labels run upright beside their
            row, broken at spaces to fit; where a word is longer than a tile is tall they are
            written across instead, in a wider margin (a label too long for that is refused).
    Returns:
        A Figure with ``min(N, max_clips) * min(T, max_frames)`` image Axes; the top row is
        titled with ``col_labels`` (default: the 1-indexed frame number), the first column with
        ``row_labels``; whatever the labels, tiles are labelled ``"clip i t=k"`` (0-indexed clip
        ``i``, 1-indexed position ``k`` in the drawn row).
    """
    arr = _to_numpy(frames)
    if arr.ndim == 4:
        arr = arr[None]
    arr = _frames(arr, 5, "frames")
    n, t = min(arr.shape[0], max_clips), min(arr.shape[1], max_frames)
    if n < 1 or t < 1:
        raise ValueError(f"nothing to show: frames have shape {arr.shape}")
    aspect = arr.shape[3] / arr.shape[4]
    cols = [f"t={k + 1}" for k in range(t)] if col_labels is None else [str(c) for c in col_labels]
    if len(cols) < t:
        raise ValueError(f"col_labels has {len(cols)} labels for {t} drawn frames")
    if row_labels is None:
        rows = [f"clip {i + 1}" for i in range(n)] if n > 1 else None
    else:
        rows = [str(r) for r in row_labels]
        if len(rows) < n:
            raise ValueError(f"row_labels has {len(rows)} labels for {n} drawn clips")
        rows = rows[:n]
    rows, lines, across = _row_label_layout(rows, t, aspect) if rows is not None else (None, 0, 0.0)
    fig, axes = _tile_figure(n, t, tile=fitting_tile(t, _CLIP_TILE, lines, row_label_width=across), aspect=aspect,
                             title=title, col_titles=True, row_labels=lines, row_label_width=across)
    for i in range(n):
        for k in range(t):
            ax = axes[i, k]
            _show(ax, arr[i, k], f"clip {i} t={k + 1}")
            if i == 0:
                ax.set_title(cols[k], fontsize=MIN_FONT, pad=3)
        if rows is not None and across:
            axes[i, 0].set_ylabel(rows[i], fontsize=MIN_FONT, labelpad=_ACROSS_PAD, rotation=0, ha="right",
                                  va="center")
        elif rows is not None:
            axes[i, 0].set_ylabel(rows[i], fontsize=MIN_FONT, labelpad=3)
    return fig


def _broken_at_spaces(label: str, room_in: float) -> str:
    """``label`` broken at spaces into lines of at most ``room_in`` inches where it can be (e.g.
    "hand\nclapping"); a single word is never cut. A label with line breaks of its own is kept."""
    if "\n" in label:
        return label
    out = []
    for word in label.split():
        if out and _text_width_in(out[-1] + " " + word) <= room_in:
            out[-1] += " " + word
        else:
            out.append(word)
    return "\n".join(out)


def _row_label_layout(rows: list[str], cols: int, aspect: float) -> tuple[list[str], int, float]:
    """How show_clips writes its row labels: ``(labels, lines, 0.0)``, upright along the tiles in
    that many lines, broken at spaces, where every line fits its tile's height; otherwise
    ``(labels, 0, width)``, written across in a left margin that wide (inches, at most
    ``_ACROSS_MAX``), so that a long word ("handclapping" beside ten frames) does not reach into
    the next row's label. A label that fits neither way is refused by name."""
    def room(lines: int, width: float = 0.0) -> float:   # a tile's height, less the air between labels
        return fitting_tile(cols, _CLIP_TILE, lines, row_label_width=width) * aspect - _LABEL_AIR

    lines = 1
    for _ in range(3):   # more lines leave smaller tiles: settle the count
        upright = [_broken_at_spaces(r, room(lines)) for r in rows]
        needed = max(r.count("\n") + 1 for r in upright)
        if needed == lines:
            break
        lines = needed
    if all(_text_width_in(r) <= room(lines) for r in upright):
        return upright, lines, 0.0
    across = [_broken_at_spaces(r, _ACROSS_MAX) for r in rows]
    width = max(_text_width_in(r) for r in across)
    line_height = MIN_FONT * 1.2 / 72
    for label in across:
        if _text_width_in(label) > _ACROSS_MAX or (label.count("\n") + 1) * line_height > room(0, width):
            raise ValueError(f"row label {label!r} is too long to draw beside its clip ({MIN_FONT} pt text, "
                             f"at most {_ACROSS_MAX} in wide and a tile tall): shorten it")
    return across, 0, width


# -- styling -----------------------------------------------------------------------------------
class _Style:
    def __init__(self, style: str = "whitegrid"):
        self.style = style

    def __enter__(self):
        self._ctx = matplotlib.rc_context()
        self._ctx.__enter__()
        sns.set_theme(style=self.style, context="notebook", font_scale=0.9)
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def decode_pairs(model, content_frames: torch.Tensor, pose_frames: torch.Tensor) -> np.ndarray:
    """Every content frame ``(n, C, H, W)`` decoded with every pose frame's pose ``(m, C, H, W)``:
    ``(n, m, C, H, W)`` numpy, row ``i`` keeping content ``i`` (with its skips). Eval mode, no grad."""
    n, m = content_frames.shape[0], pose_frames.shape[0]
    device = next(model.parameters()).device
    with evaluating(model):
        content, skips = model.encode_content(content_frames.to(device))
        pose = model.encode_pose(pose_frames.to(device))
        decoded = model.decode(content.repeat_interleave(m, dim=0), [s.repeat_interleave(m, dim=0) for s in skips],
                               pose.repeat(n, 1, 1, 1)).float().cpu()
    return decoded.reshape(n, m, *decoded.shape[1:]).numpy()


def factorization_grid(model, content_frames, pose_frames):
    """The paper's factorization grid (its MNIST figure; figure number not verified): every content frame decoded with every pose frame's pose.

    Args:
        model: a ``DrNet``; run in eval mode under ``no_grad`` (each submodule's previous
            train/eval mode is restored afterwards).
        content_frames: ``(n, C, H, W)`` in [0, 1], one per row.
        pose_frames: ``(m, C, H, W)`` in [0, 1], one per column.
    Returns:
        A Figure with ``(n + 1) * (m + 1)`` Axes: the top-left tile is empty (it holds the
        "content ↓ / pose →" legend, label ``"corner"``), the top row shows the pose frames
        (``"pose j"``), the first column the content frames (``"content i"``), and tile
        ``(i + 1, j + 1)`` (``"decoded i,j"``) shows ``decode(content(content_frames[i]) with its
        skips, pose(pose_frames[j]))``.
    """
    cf = torch.as_tensor(_frames(content_frames, 4, "content_frames"))
    pf = torch.as_tensor(_frames(pose_frames, 4, "pose_frames"))
    n, m = cf.shape[0], pf.shape[0]
    decoded = decode_pairs(model, cf, pf)

    aspect = cf.shape[2] / cf.shape[3]
    fig, axes = _tile_figure(n + 1, m + 1, tile=0.8, aspect=aspect, wide_rows={1: 0.1}, wide_cols={1: 0.1},
                             title="DrNet factorisation: content from each row's frame,\n"
                                   "pose from each column's frame")
    corner = axes[0, 0]
    _blank(corner, "corner")
    corner.text(0.5, 0.5, "content ↓\npose →", ha="center", va="center", fontsize=9,
                transform=corner.transAxes)
    for j in range(m):
        _show(axes[0, j + 1], pf[j], f"pose {j}")
    for i in range(n):
        _show(axes[i + 1, 0], cf[i], f"content {i}")
        for j in range(m):
            _show(axes[i + 1, j + 1], decoded[i, j], f"decoded {i},{j}")
    return fig
