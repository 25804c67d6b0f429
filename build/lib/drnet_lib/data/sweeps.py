"""Turntable videos: an object seen from a camera that circles it, as DrNet clips.

NORB and the chairs are still images taken at regular azimuth steps around each object. Put in
azimuth order, the views of one object (at one elevation, under one lighting) form a **sequence**:
content (the object, its elevation and light) is fixed and pose (the viewing direction) changes.
A **clip** of length T starts at a random azimuth and wraps round, since azimuth is circular.

:class:`SweepVideos` holds such sequences as uint8 frames ``(S, A, C, size, size)`` on the
training device and offers the interface the DrNet trainer uses for Moving MNIST
(``sample_factors`` then ``render``), so one training loop serves every dataset. The builders
:func:`norb_sweeps` and :func:`chair_sweeps` arrange each dataset's arrays into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .chairs import ChairsTree, split_objects
from .norb import NorbSplit


@dataclass
class ClipStarts:
    """Which sequence each clip shows and where in it the clip starts: ``(B,)`` int64 each.

    For turntable sweeps ``start`` is the azimuth index of frame 0; for KTH (:class:`.kth.KTHClips`)
    the first frame's position within its annotated range.
    """

    sequence: torch.Tensor
    start: torch.Tensor

    def __len__(self) -> int:
        return self.sequence.shape[0]

    def subset(self, idx) -> ClipStarts:
        return ClipStarts(self.sequence[idx], self.start[idx])

    def to(self, device) -> ClipStarts:
        return ClipStarts(self.sequence.to(device), self.start.to(device))


def resize_frames(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """``(N, C, H, W)`` uint8 -> ``(N, C, size, size)`` uint8, by area averaging (no aliasing)."""
    if images.shape[-2:] == (size, size):
        return images.clone()
    out = []
    for start in range(0, len(images), chunk):
        y = F.interpolate(images[start:start + chunk].float(), size=(size, size), mode="area")
        out.append(y.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


class SweepVideos:
    """Sequences of views at regular azimuth steps, held on ``device``.

    Args:
        frames: ``(S, A, C, H, W)`` uint8, sequence ``s`` seen at azimuth index ``a``.
        factors: name -> ``(S,)`` integer array naming what each sequence shows (e.g. category,
            instance, elevation); each becomes an attribute (a tensor on ``device``).
    """

    def __init__(self, frames: torch.Tensor, factors: dict[str, np.ndarray], device="cpu"):
        if frames.dtype != torch.uint8 or frames.ndim != 5:
            raise ValueError(f"frames must be uint8 (S, A, C, H, W), got {frames.dtype} {tuple(frames.shape)}")
        self.device = torch.device(device)
        self.frames = frames.to(self.device)
        self.num_azimuths = frames.shape[1]
        self.clip_length = self.num_azimuths
        self.image_size = frames.shape[-1]
        self.factor_names = tuple(factors)
        for name, values in factors.items():
            if len(values) != len(frames):
                raise ValueError(f"factor {name!r} has {len(values)} entries for {len(frames)} sequences")
            setattr(self, name, torch.as_tensor(np.asarray(values), dtype=torch.int64).to(self.device))

    def __len__(self) -> int:
        return self.frames.shape[0]

    def sample_factors(self, batch: int, generator: torch.Generator, length: int | None = None) -> ClipStarts:
        """``batch`` clips: a random sequence each (with replacement), starting at a random azimuth."""
        sequence = torch.randint(0, len(self), (batch,), generator=generator, device=self.device)
        start = torch.randint(0, self.num_azimuths, (batch,), generator=generator, device=self.device)
        return ClipStarts(sequence, start)

    def render(self, factors: ClipStarts, times: torch.Tensor) -> torch.Tensor:
        """Frames ``times`` of each clip: ``(B, K, C, size, size)`` float in [0, 1].

        ``times`` is ``(B, K)`` or ``(K,)`` (the same for every clip); past the last azimuth the
        clip wraps round, so clips of any length exist.
        """
        return self.frame_table[self.frame_index(factors, times)].float() / 255.0

    @property
    def frame_table(self) -> torch.Tensor:
        """Every frame once, ``(S * A, C, H, W)`` uint8 (a view): what :meth:`frame_index` indexes."""
        return self.frames.flatten(0, 1)

    def frame_index(self, factors: ClipStarts, times) -> torch.Tensor:
        """Rows of :attr:`frame_table` holding frames ``times`` of each clip: ``(B, K)`` int64."""
        times = torch.as_tensor(times, device=self.device)
        if times.ndim == 1:
            times = times.expand(len(factors), -1)
        azimuth = (factors.start.unsqueeze(1) + times) % self.num_azimuths
        return factors.sequence.unsqueeze(1) * self.num_azimuths + azimuth

    def sample_clips(self, batch: int, generator: torch.Generator, length: int | None = None):
        """``(frames (B, T, C, S, S), factors)`` for ``batch`` random clips of ``length`` frames."""
        length = length or self.clip_length
        factors = self.sample_factors(batch, generator, length)
        return self.render(factors, torch.arange(length, device=self.device)), factors

    def all_sweeps(self) -> ClipStarts:
        """Every sequence once, starting at azimuth 0 (for encoding a whole split)."""
        seq = torch.arange(len(self), device=self.device)
        return ClipStarts(seq, torch.zeros_like(seq))


def norb_sweeps(split: NorbSplit, image_size: int, device="cpu") -> SweepVideos:
    """smallNORB as azimuth sweeps: one sequence per (category, instance, elevation, lighting),
    its 18 azimuths in order, the **left** camera, resized 96 -> ``image_size`` (grey, C = 1).

    Factors: ``category``, ``instance``, ``elevation``, ``lighting``.
    """
    keys = np.stack([split.category, split.instance, split.elevation, split.lighting], axis=1)
    seq_keys, seq_of_record = np.unique(keys, axis=0, return_inverse=True)
    seq_of_record = seq_of_record.reshape(-1)
    num_azimuths = int(split.azimuth.max()) + 1
    counts = np.bincount(seq_of_record, minlength=len(seq_keys))
    if np.any(counts != num_azimuths):
        raise ValueError(f"every (category, instance, elevation, lighting) must be photographed at all "
                         f"{num_azimuths} azimuths exactly once; found counts {sorted(set(counts.tolist()))}")
    index = np.empty((len(seq_keys), num_azimuths), dtype=np.int64)  # index[s, a] = record
    index[seq_of_record, split.azimuth] = np.arange(len(split))
    left = resize_frames(torch.from_numpy(split.images[:, :1]), image_size)   # (N, 1, s, s)
    frames = left[torch.from_numpy(index)]                                     # (S, A, 1, s, s)
    names = ("category", "instance", "elevation", "lighting")
    return SweepVideos(frames, {n: seq_keys[:, j] for j, n in enumerate(names)}, device)


def chair_sweeps(tree: ChairsTree, split: str, image_size: int, device="cpu") -> SweepVideos:
    """The ``split`` ("train" or "test") chairs of ``tree`` as turntable sweeps: one sequence per
    (chair, elevation), its azimuths in order, resized to ``image_size`` (RGB, C = 3).

    The split is :func:`.chairs.split_objects` (85/15 over sorted ids). Factors: ``chair`` (the
    chair's index among all of the tree's sorted ids, so train and test chairs never share one)
    and ``elevation`` (index into ``tree.elevation_names``).
    """
    train_ids, test_ids = split_objects(tree.object_ids)
    ids = {"train": train_ids, "test": test_ids}.get(split)
    if ids is None:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    sub = tree.select(ids)
    O, E, A, H, W, C = sub.images.shape
    images = torch.from_numpy(sub.images).permute(0, 1, 2, 5, 3, 4).reshape(O * E * A, C, H, W)
    frames = resize_frames(images, image_size).reshape(O * E, A, C, image_size, image_size)
    index = {o: k for k, o in enumerate(tree.object_ids)}
    chair = np.repeat([index[o] for o in ids], E)
    elevation = np.tile(np.arange(E), O)
    return SweepVideos(frames, {"chair": chair, "elevation": elevation}, device)
