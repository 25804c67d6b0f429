"""Moving MNIST generated in torch, vectorized over the batch, on the training device.

The rules are drnet-py's (reference/datasets.md §1.3): each of ``num_digits`` digits lives in its
own colour channel (digit 0 red, digit 1 green), starts at a uniform top-left corner in
``[0, image_size - digit_size)``, moves with an integer velocity drawn from ``{-v, ..., v-1}``
per axis, and bounces: before drawing each frame, a coordinate below 0 is set to 0 and one at or
beyond the limit is set to ``limit - 1``, and the velocity on that axis flips. One digit per clip
is drawn "in front": the other channels are zeroed wherever it is lit.

A clip is described by its *factors* (which digits, start corners, velocities, which digit is in
front); frames are rendered from factors on demand, so any frame of any clip can be drawn without
drawing the others, and a frozen test set is just factors drawn from a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import DataConfig, ModelConfig


@dataclass
class ClipFactors:
    """The generating factors of ``B`` clips (all on one device)."""

    digit_index: torch.Tensor   # (B, D) int64 rows of the digit bank
    labels: torch.Tensor        # (B, D) int64 digit classes 0..9
    positions: torch.Tensor     # (B, T, D, 2) int64 top-left (row, col) of each digit per frame
    front: torch.Tensor         # (B,) int64 which digit occludes the others

    def __len__(self) -> int:
        return self.labels.shape[0]

    def subset(self, idx) -> "ClipFactors":
        return ClipFactors(self.digit_index[idx], self.labels[idx], self.positions[idx], self.front[idx])

    def to(self, device) -> "ClipFactors":
        return ClipFactors(*(t.to(device) for t in (self.digit_index, self.labels, self.positions, self.front)))


def bounce_positions(start: torch.Tensor, velocity: torch.Tensor, length: int, limit: int) -> torch.Tensor:
    """Every frame's corner of digits that bounce by drnet-py's rule, in closed form.

    The rule, applied frame by frame: a coordinate below 0 is set to 0 and one at or beyond
    ``limit`` to ``limit - 1`` = L, that axis' velocity flips, the frame is drawn, the digit moves.
    Written as that loop it costs about a dozen tiny operations per frame, which on a GPU are a
    dozen kernel launches each; this computes all frames at once from where the loop ends up.
    At speed s = |v| > 0, once a digit has touched a wall it cycles with period 2(k+1),
    k = L // s: from the wall at 0 it visits 0, s, ..., ks, then L (clamped), L - s, ..., L - ks,
    then 0 again. Before the first touch it moves freely for j = (L - p0) // s frames (moving up)
    or p0 // s frames (moving down), then enters the cycle at L or at 0. At v = 0 it stays put.
    The test checks it against the plain loop.

    Args:
        start: ``(...)`` int64 corners in ``[0, limit)``; velocity: the same shape.
    Returns:
        ``(B, length, ...)`` int64 corners, frame ``t`` in column ``t`` (``start`` has shape ``(B, ...)``).
    """
    L = limit - 1
    p0, v = start.unsqueeze(1), velocity.unsqueeze(1)                   # (B, 1, ...)
    t = torch.arange(length, device=start.device).view(1, -1, *([1] * (start.dim() - 1)))
    speed = v.abs().clamp(min=1)                                       # (v = 0 is handled last)
    up = v > 0
    k = L // speed
    free = torch.where(up, (L - p0) // speed, p0 // speed)             # frames before the first touch
    phase = torch.remainder(torch.where(up, k + 1, 0) + t - free - 1, 2 * (k + 1))
    cycle = torch.where(phase <= k, phase * speed, L - (phase - k - 1) * speed)
    moving = torch.where(t <= free, p0 + t * v, cycle)
    return torch.where(v == 0, p0, moving)


class MovingMNIST:
    """Draws clips from a bank of digit images.

    Args:
        images: ``(N, 28, 28)`` uint8 digits (any source), resized here to ``digit_size``.
        labels: ``(N,)`` digit classes.
    """

    def __init__(self, images, labels, data: DataConfig, model: ModelConfig, device="cpu"):
        self.device = torch.device(device)
        self.image_size = model.image_size
        self.channels = model.channels
        self.digit_size = data.digit_size
        self.num_digits = data.num_digits
        self.max_velocity = data.max_velocity
        self.clip_length = data.clip_length
        if self.num_digits > self.channels:
            raise ValueError(f"{self.num_digits} digits need at least as many channels, got {self.channels}")
        if self.digit_size >= self.image_size:
            raise ValueError(f"digit_size {self.digit_size} must be smaller than image_size {self.image_size}")
        digits = torch.as_tensor(images, dtype=torch.float32).div(255.0).unsqueeze(1)
        if digits.shape[-1] != self.digit_size:  # drnet-py resizes 28 -> 32 bilinearly
            digits = F.interpolate(digits, size=self.digit_size, mode="bilinear", antialias=True,
                                   align_corners=False).clamp(0, 1)
        self.digits = digits.squeeze(1).to(self.device)          # (N, s, s)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(self.device)
        self.limit = self.image_size - self.digit_size             # corners live in [0, limit)
        self._offsets = torch.arange(self.digit_size, device=self.device)

    # -- factors ---------------------------------------------------------------------------
    def sample_factors(self, batch: int, generator: torch.Generator, length: int | None = None) -> ClipFactors:
        """Random clips: digits, start corners, velocities -> per-frame positions. Vectorized."""
        length = length or self.clip_length
        dev, D = self.device, self.num_digits
        digit_index = torch.randint(len(self.labels), (batch, D), generator=generator, device=dev)
        pos = torch.randint(self.limit, (batch, D, 2), generator=generator, device=dev)
        vel = torch.randint(-self.max_velocity, self.max_velocity, (batch, D, 2), generator=generator, device=dev)
        front = torch.randint(D, (batch,), generator=generator, device=dev)
        positions = bounce_positions(pos, vel, length, self.limit)
        return ClipFactors(digit_index, self.labels[digit_index], positions, front)

    # -- rendering -------------------------------------------------------------------------
    def render(self, factors: ClipFactors, times: torch.Tensor) -> torch.Tensor:
        """Frames of each clip at the given time indices.

        Args:
            times: ``(K,)`` the same frames for every clip, or ``(B, K)`` per-clip frames.
        Returns:
            ``(B, K, C, H, W)`` float32 in [0, 1].
        """
        B = len(factors)
        times = times.to(self.device)
        if times.dim() == 1:
            times = times.unsqueeze(0).expand(B, -1)
        K, S = times.shape[1], self.image_size
        pos = torch.gather(factors.positions, 1, times[:, :, None, None].expand(-1, -1, self.num_digits, 2))
        canvas = torch.zeros(B * K, self.channels, S, S, device=self.device)
        n = torch.arange(B * K, device=self.device)[:, None, None]
        for d in range(self.num_digits):
            rows = pos[:, :, d, 0].reshape(-1, 1) + self._offsets          # (B*K, s)
            cols = pos[:, :, d, 1].reshape(-1, 1) + self._offsets
            img = self.digits[factors.digit_index[:, d]].repeat_interleave(K, dim=0)  # (B*K, s, s)
            canvas[n, d, rows[:, :, None], cols[:, None, :]] = img
        canvas = canvas.view(B, K, self.channels, S, S)
        # Occlusion: where the front digit is lit, every other digit's channel goes dark.
        front_ch = factors.front.view(B, 1, 1, 1, 1).expand(-1, K, 1, S, S)
        lit = torch.gather(canvas, 2, front_ch) > 0
        is_front = torch.arange(self.channels, device=self.device).view(1, 1, -1, 1, 1) == front_ch
        return torch.where(lit & ~is_front, torch.zeros_like(canvas), canvas)

    def sample_clips(self, batch: int, generator: torch.Generator, length: int | None = None):
        """Whole clips ``(B, T, C, H, W)`` and their factors."""
        factors = self.sample_factors(batch, generator, length)
        T = factors.positions.shape[1]
        return self.render(factors, torch.arange(T, device=self.device)), factors

    def centers(self, factors: ClipFactors, times: torch.Tensor) -> torch.Tensor:
        """Digit centres in pixels ``(B, K, D, 2)`` (row, col) at the given frames."""
        times = times.to(self.device)
        if times.dim() == 1:
            times = times.unsqueeze(0).expand(len(factors), -1)
        pos = torch.gather(factors.positions, 1, times[:, :, None, None].expand(-1, -1, self.num_digits, 2))
        return pos.float() + (self.digit_size - 1) / 2


def frozen_test_factors(bank: MovingMNIST, clips: int, seed: int, length: int | None = None) -> ClipFactors:
    """The frozen test set: factors drawn on the CPU from a fixed seed, then moved to the device.

    Drawing on the CPU makes the set bit-identical on every machine, whatever the training device.
    """
    cpu_bank = bank if bank.device.type == "cpu" else _cpu_view(bank)
    g = torch.Generator().manual_seed(seed)
    return cpu_bank.sample_factors(clips, g, length).to(bank.device)


def _cpu_view(bank: MovingMNIST) -> MovingMNIST:
    view = object.__new__(MovingMNIST)
    view.__dict__.update(bank.__dict__)
    view.device = torch.device("cpu")
    view.labels = bank.labels.cpu()
    view._offsets = bank._offsets.cpu()
    return view
