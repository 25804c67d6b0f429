"""Videos from smallNORB: azimuth sweeps, the "clips" DrNet is trained on.

The paper turns NORB's still photographs into video by moving the camera around the object
(reference/datasets.md §2.4; the exact construction is not in the authors' code). Ours:

* one **sequence** per (category, instance, elevation, lighting): the 18 azimuths 0, 20, ..., 340
  degrees in order, so the object, the elevation and the light stay fixed and only the viewing
  direction turns. A split of the real data has 5 x 5 x 9 x 6 = 1,350 sequences of 18 frames;
* the **left** camera of each stereo pair, resized from 96 px to the model's frame size with area
  averaging (grey, one channel);
* a **clip** of length T starts at a random azimuth and wraps round (azimuth is circular, so frame
  17 is followed by frame 0): content (the object, its elevation and lighting) is constant over a
  clip, pose (the azimuth) changes.

:class:`NorbVideos` has the interface the DrNet trainer uses for Moving MNIST
(``sample_factors`` then ``render``), so the same training loop runs on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .norb import NorbSplit


@dataclass
class SweepFactors:
    """Which sequence each clip shows and the azimuth index its frame 0 is at: ``(B,)`` int64 each."""

    sequence: torch.Tensor
    start: torch.Tensor

    def __len__(self) -> int:
        return self.sequence.shape[0]

    def subset(self, idx) -> SweepFactors:
        return SweepFactors(self.sequence[idx], self.start[idx])

    def to(self, device) -> SweepFactors:
        return SweepFactors(self.sequence.to(device), self.start.to(device))


class NorbVideos:
    """Azimuth sweeps of one split, held on ``device`` as uint8 frames ``(S, A, 1, size, size)``.

    ``category``, ``instance``, ``elevation``, ``lighting`` are ``(S,)`` int64 tensors (on the
    same device) naming what each sequence shows.
    """

    def __init__(self, split: NorbSplit, image_size: int, device="cpu"):
        self.device = torch.device(device)
        self.image_size = image_size
        keys = np.stack([split.category, split.instance, split.elevation, split.lighting], axis=1)
        seq_keys, seq_of_record = np.unique(keys, axis=0, return_inverse=True)
        seq_of_record = seq_of_record.reshape(-1)
        self.num_azimuths = int(split.azimuth.max()) + 1
        counts = np.bincount(seq_of_record, minlength=len(seq_keys))
        if np.any(counts != self.num_azimuths):
            raise ValueError(f"every (category, instance, elevation, lighting) must be photographed "
                             f"at all {self.num_azimuths} azimuths exactly once; found counts "
                             f"{sorted(set(counts.tolist()))}")
        # frames[s, a] = record of sequence s at azimuth a
        index = np.empty((len(seq_keys), self.num_azimuths), dtype=np.int64)
        index[seq_of_record, split.azimuth] = np.arange(len(split))
        left = torch.from_numpy(split.images[:, 0])                      # (N, H, W) uint8
        self.frames = self._resize(left, image_size)[torch.from_numpy(index)].unsqueeze(2).to(self.device)
        names = ("category", "instance", "elevation", "lighting")
        for j, name in enumerate(names):
            setattr(self, name, torch.from_numpy(seq_keys[:, j].astype(np.int64)).to(self.device))
        self.clip_length = self.num_azimuths

    @staticmethod
    def _resize(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
        """``(N, H, W)`` uint8 -> ``(N, size, size)`` uint8, by area averaging (no aliasing)."""
        if images.shape[-1] == size and images.shape[-2] == size:
            return images.clone()
        out = []
        for start in range(0, len(images), chunk):
            x = images[start:start + chunk].unsqueeze(1).float()
            y = F.interpolate(x, size=(size, size), mode="area")
            out.append(y.round().clamp(0, 255).to(torch.uint8).squeeze(1))
        return torch.cat(out)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def sample_factors(self, batch: int, generator: torch.Generator, length: int | None = None) -> SweepFactors:
        """``batch`` clips: a random sequence each (with replacement), starting at a random azimuth."""
        sequence = torch.randint(0, len(self), (batch,), generator=generator, device=self.device)
        start = torch.randint(0, self.num_azimuths, (batch,), generator=generator, device=self.device)
        return SweepFactors(sequence, start)

    def render(self, factors: SweepFactors, times: torch.Tensor) -> torch.Tensor:
        """Frames ``times`` of each clip: ``(B, K, 1, size, size)`` float in [0, 1].

        ``times`` is ``(B, K)`` or ``(K,)`` (the same for every clip); it may exceed the sweep
        length, in which case the azimuth wraps round.
        """
        times = torch.as_tensor(times, device=self.device)
        if times.ndim == 1:
            times = times.expand(len(factors), -1)
        azimuth = (factors.start.unsqueeze(1) + times) % self.num_azimuths
        return self.frames[factors.sequence.unsqueeze(1), azimuth].float() / 255.0

    def sample_clips(self, batch: int, generator: torch.Generator, length: int | None = None):
        """``(frames (B, T, 1, S, S), factors)`` for ``batch`` random clips of ``length`` frames."""
        length = length or self.clip_length
        factors = self.sample_factors(batch, generator, length)
        return self.render(factors, torch.arange(length, device=self.device)), factors

    def all_sweeps(self) -> SweepFactors:
        """Every sequence once, starting at azimuth 0 (for encoding a whole split)."""
        seq = torch.arange(len(self), device=self.device)
        return SweepFactors(seq, torch.zeros_like(seq))
