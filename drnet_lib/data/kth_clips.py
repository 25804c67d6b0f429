"""The KTH clip source: the frames of the annotated ranges, sampled as clips for the DrNet trainer.

:class:`KTHClips` holds every frame of one split's sequences (a sequence is one annotated range of
one video) back to back in one uint8 tensor, with each sequence's offset, length and factors, and
samples clips inside single sequences as the authors' ``getSequence`` does. It offers the
interface the trainer uses for every dataset (``sample_factors``, ``render``, ``sample_clips``).
:func:`.kth.load_split` builds it from the frame cache; :mod:`.kth` re-exports it.
"""

from __future__ import annotations

import numpy as np
import torch

from .sweeps import ClipStarts

__all__ = ["KTHClips"]


class KTHClips:
    """Clips from KTH's annotated ranges, for the DrNet trainer.

    A **sequence** is one (video, range). ``frames`` holds every frame of every sequence,
    back to back: sequence ``q`` is ``frames[offsets[q] : offsets[q] + lengths[q]]``. A clip of
    ``length`` frames lies inside one sequence: it never wraps and never crosses into another
    range; sequences shorter than ``length`` are never sampled (:meth:`num_too_short`).

    Sampling follows the authors' ``getSequence``: an action uniformly, then one of its videos,
    then one of that video's ranges, then a uniform start (``weighting="drnet"``);
    ``weighting="uniform"`` draws sequences uniformly instead. Only sequences long enough for the
    clip take part.

    Attributes (``(Q,)`` int64 tensors on ``device``): ``action`` (0..5, :data:`.kth.ACTIONS` order),
    ``person`` (1..25), ``scenario`` (1..4), ``video`` (index into ``videos``), ``range_index``
    (the range's position on its line of ``00sequences.txt``), ``offsets``, ``lengths``.
    """

    factor_names = ("action", "person", "scenario")
    channels = 1

    def __init__(self, frames: torch.Tensor, offsets, lengths, factors: dict, videos=(),
                 video=None, range_index=None, clip_length: int = 20, device="cpu",
                 weighting: str = "drnet"):
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] != 1:
            raise ValueError(f"frames must be uint8 (N, 1, S, S), got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        if weighting not in ("drnet", "uniform"):
            raise ValueError(f"unknown weighting {weighting!r}; choose 'drnet' or 'uniform'")
        self.device = torch.device(device)
        self.frames = frames.to(self.device)
        self.image_size = frames.shape[-1]
        self.clip_length = clip_length
        self.weighting = weighting
        as_long = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.int64).to(self.device)
        self.offsets, self.lengths = as_long(offsets), as_long(lengths)
        q = len(self.offsets)
        if len(self.lengths) != q or (q and (self.lengths.min() < 1 or
                                             (self.offsets + self.lengths).max() > len(frames))):
            raise ValueError("offsets and lengths must describe non-empty slices of frames")
        for name in self.factor_names:
            setattr(self, name, as_long(factors[name]))
        self.videos = tuple(videos)
        self.video = as_long(video if video is not None else np.zeros(q, np.int64))
        self.range_index = as_long(range_index if range_index is not None else np.zeros(q, np.int64))
        self.stats: dict = {}
        self._weights: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.offsets)

    def num_too_short(self, length: int | None = None) -> int:
        """How many sequences are shorter than ``length`` frames (never sampled for it)."""
        length = length or self.clip_length
        return int((self.lengths < length).sum())

    def sampling_weights(self, length: int | None = None) -> torch.Tensor:
        """``(Q,)`` probability of each sequence for clips of ``length`` (0 if too short)."""
        length = length or self.clip_length
        if length not in self._weights:
            ok = (self.lengths >= length).cpu().numpy()
            if not ok.any():
                raise ValueError(f"no KTH sequence has {length} frames or more (the longest has "
                                 f"{int(self.lengths.max())}); use shorter clips (data.clip_length for DrNet's "
                                 f"training, lstm.n_past + lstm.n_future for the pose LSTM and its "
                                 f"evaluation)")
            w = ok.astype(np.float64)
            if self.weighting == "drnet":
                action, video = self.action.cpu().numpy(), self.video.cpu().numpy()
                per_video = np.bincount(video, weights=w, minlength=len(self.videos) or 1)
                vids_of_action = {a: len({v for v in video[ok & (action == a)]})
                                  for a in np.unique(action[ok])}
                for q in np.flatnonzero(ok):
                    w[q] = 1.0 / (len(vids_of_action) * vids_of_action[action[q]] * per_video[video[q]])
            self._weights[length] = torch.as_tensor(w / w.sum(), dtype=torch.float64).to(self.device)
        return self._weights[length]

    def sample_factors(self, batch: int, generator: torch.Generator,
                       length: int | None = None) -> ClipStarts:
        """``batch`` random clips of ``length`` frames (with replacement), each inside one range."""
        length = length or self.clip_length
        weights = self.sampling_weights(length)
        sequence = torch.multinomial(weights, batch, replacement=True, generator=generator)
        room = (self.lengths[sequence] - length + 1).double()
        u = torch.rand(batch, generator=generator, device=self.device, dtype=torch.float64)
        start = torch.minimum((u * room).long(), room.long() - 1)
        return ClipStarts(sequence, start)

    def render(self, factors: ClipStarts, times) -> torch.Tensor:
        """Frames ``times`` of each clip: ``(B, K, 1, S, S)`` float in [0, 1].

        ``times`` is ``(K,)`` (the same for every clip) or ``(B, K)``, counted from each clip's
        start. On the CPU a time outside the clip's range raises :class:`IndexError`; on other
        devices (where checking would stall the GPU) it is clamped to the range.
        """
        return self.frames[self.frame_index(factors, times)].float() / 255.0

    @property
    def frame_table(self) -> torch.Tensor:
        """Every frame once, ``(N, 1, S, S)`` uint8: what :meth:`frame_index` indexes."""
        return self.frames

    def frame_index(self, factors: ClipStarts, times) -> torch.Tensor:
        """Rows of :attr:`frame_table` holding frames ``times`` of each clip: ``(B, K)`` int64
        (checked or clamped as :meth:`render` says)."""
        times = torch.as_tensor(times, device=self.device)
        if times.ndim == 1:
            times = times.expand(len(factors), -1)
        seq = factors.sequence.unsqueeze(1)
        pos = factors.start.unsqueeze(1) + times
        last = self.lengths[seq] - 1
        if self.device.type == "cpu":
            if ((pos < 0) | (pos > last)).any():
                raise IndexError("a clip frame lies outside its range (start + time must be in "
                                 "[0, range length))")
        else:
            pos = torch.minimum(pos.clamp_min(0), last)
        return self.offsets[seq] + pos

    def sample_clips(self, batch: int, generator: torch.Generator, length: int | None = None):
        """``(frames (B, T, 1, S, S), factors)`` for ``batch`` random clips of ``length`` frames."""
        length = length or self.clip_length
        factors = self.sample_factors(batch, generator, length)
        return self.render(factors, torch.arange(length, device=self.device)), factors

    def sequence_frames(self, q: int) -> torch.Tensor:
        """All frames of sequence ``q``: ``(L, 1, S, S)`` float in [0, 1]."""
        o, n = int(self.offsets[q]), int(self.lengths[q])
        return self.frames[o:o + n].float() / 255.0
