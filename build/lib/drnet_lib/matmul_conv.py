"""Convolutions computed as matrix products, where the CPU's convolution library is slow.

PyTorch's CPU convolutions (oneDNN) run most of DrNet's layers near the machine's matrix-product
rate, but not all: ``drnet bench --layers`` timed the encoders' code heads and the decoder's
1x1-code projection at 5-8 % of that rate, and the decoder's first up-sampling stage (4x4 maps,
the widest channels) at about half of it. These layers compute the same sums as
:class:`torch.nn.Conv2d` / :class:`torch.nn.ConvTranspose2d` (the tests compare outputs and every
gradient in fp64, in both memory layouts), keep their parameters, initialisation and state-dict
keys, and only order the work as one matrix product each:

* :class:`WholeMapConv`: a "valid" convolution whose kernel covers the whole map -> a code;
* :class:`WholeMapConvTranspose`: a code -> a kernel-sized map;
* :class:`SmallMapConvTranspose`: the 4x4-kernel, stride-2 up-sampling on small maps, as one
  matrix product per input pixel's 16 output taps followed by their overlap-add (on the CPU only;
  other devices keep their own library, which was not measured to be slow there).
"""

from __future__ import annotations

import torch
from torch import nn


class WholeMapConv(nn.Conv2d):
    """A "valid" convolution whose kernel covers its whole input map (an encoder's last 4x4 or 3x3
    map -> its ``(B, dim, 1, 1)`` code): the same sums as :class:`torch.nn.Conv2d`, computed as one
    matrix product ``(B, C*k*k) @ (C*k*k, dim)``.

    Why: on the CPU, PyTorch's convolution kernels (oneDNN) run this shape at about 5-7 % of the
    machine's matrix-product rate (``drnet bench --layers``), a matrix product near all of it. The
    weights, their initialisation and the state-dict keys are those of ``nn.Conv2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.kernel_size:
            raise ValueError(f"WholeMapConv expects {self.kernel_size} maps, got {tuple(x.shape[-2:])}")
        # flatten input and weight in the same order: (C, H, W), or (H, W, C) for NHWC weights, so
        # that the weight (and an input in the same layout) is flattened without a copy
        order = (0, 2, 3, 1) if self.weight.is_contiguous(memory_format=torch.channels_last) else (0, 1, 2, 3)
        flat = lambda t: t.permute(order).reshape(t.shape[0], -1)
        return nn.functional.linear(flat(x), flat(self.weight), self.bias)[:, :, None, None]


class WholeMapConvTranspose(nn.ConvTranspose2d):
    """A transposed convolution from a ``(B, C, 1, 1)`` code to a kernel-sized map (a decoder's
    first layer): ``out[b, o, i, j] = sum_c x[b, c] w[c, o, i, j] + bias[o]``, the same sums as
    :class:`torch.nn.ConvTranspose2d` (stride 1, no padding), computed as one matrix product.

    Why: as for :class:`WholeMapConv`, the CPU's convolution kernels run this shape far below the
    matrix-product rate. The output keeps the weight's memory layout (NHWC weights give NHWC maps).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (1, 1):
            raise ValueError(f"WholeMapConvTranspose expects a 1x1 code, got {tuple(x.shape[-2:])} maps")
        c_in, c_out, kh, kw = self.weight.shape
        nhwc = self.weight.is_contiguous(memory_format=torch.channels_last)
        order = (0, 2, 3, 1) if nhwc else (0, 1, 2, 3)                     # the weight's own order: no copy
        maps = x.reshape(-1, c_in) @ self.weight.permute(order).reshape(c_in, -1)
        maps = maps.view(-1, kh, kw, c_out).permute(0, 3, 1, 2) if nhwc else maps.view(-1, c_out, kh, kw)
        return maps + self.bias[:, None, None]


def _overlap_add(taps: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 4, 4, C)`` per-input-pixel taps -> the ``(B, 2H, 2W, C)`` map of a 4x4 stride-2
    transposed convolution with padding 1: tap ``(ky, kx)`` of input pixel ``(i, j)`` lands on
    output pixel ``(2i + ky - 1, 2j + kx - 1)``; overlapping taps add up, taps off the map drop."""
    B, H, W, kh, kw, C = taps.shape
    padded = taps.new_zeros(B, 2 * H + 2, 2 * W + 2, C)      # one pixel of room on each side
    for ky in range(kh):
        for kx in range(kw):
            padded[:, ky:ky + 2 * H:2, kx:kx + 2 * W:2] += taps[:, :, :, ky, kx]
    return padded[:, 1:-1, 1:-1]


def _gather_taps(grad: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`_overlap_add`: ``(B, 2H, 2W, C)`` -> ``(B, H, W, 4, 4, C)``, each
    input pixel's 16 output pixels (zero off the map)."""
    B, H2, W2, C = grad.shape
    H, W = H2 // 2, W2 // 2
    padded = nn.functional.pad(grad, (0, 0, 1, 1, 1, 1))
    taps = grad.new_empty(B, H, W, 4, 4, C)
    for ky in range(4):
        for kx in range(4):
            taps[:, :, :, ky, kx] = padded[:, ky:ky + 2 * H:2, kx:kx + 2 * W:2]
    return taps


class _OverlapAdd(torch.autograd.Function):
    """:func:`_overlap_add` with its adjoint as the backward (autograd through the strided
    in-place adds would scatter its gradient element by element)."""

    @staticmethod
    def forward(ctx, taps):
        return _overlap_add(taps)

    @staticmethod
    def backward(ctx, grad):
        return _gather_taps(grad.contiguous())


# the narrowest stage 0 (channels in) at which SmallMapConvTranspose was measured faster than oneDNN
SMALL_MAP_MIN_CHANNELS = 512


class SmallMapConvTranspose(nn.ConvTranspose2d):
    """The decoder's 4x4, stride-2, padding-1 transposed convolution on small maps, as
    ``(B*H*W, C_in) @ (C_in, 16*C_out)`` (every input pixel's contribution to its 16 output taps)
    followed by the overlap-add of those taps: the sums of :class:`torch.nn.ConvTranspose2d`.

    Why: on the 4x4 maps of the decoder's first up-sampling stage (1024 channels in for the 64 px
    U-Net) oneDNN ran forward and backward at about half the matrix-product rate on this project's
    Intel Xeon; this form ran the same layer forward + backward 1.5x as fast there (1.3-2.4x at the other
    profiles' stage-0 shapes with 512 or 1024 channels in; 0.6-0.8x with 128 or 256). On 8x8 maps
    and above oneDNN was faster. So only stage 0 with ``SMALL_MAP_MIN_CHANNELS`` in or more uses it (``Decoder``).
    Off the CPU it is ``ConvTranspose2d``.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        B, c_in, H, W = x.shape
        c_out = self.weight.shape[1]
        rows = x.permute(0, 2, 3, 1).reshape(B * H * W, c_in)                 # free for NHWC input
        weight = self.weight.permute(0, 2, 3, 1).reshape(c_in, 16 * c_out)     # free for NHWC weights
        out = _OverlapAdd.apply((rows @ weight).view(B, H, W, 4, 4, c_out)) + self.bias
        out = out.permute(0, 3, 1, 2)                                          # (B, C_out, 2H, 2W), NHWC in memory
        nhwc = self.weight.is_contiguous(memory_format=torch.channels_last)
        return out if nhwc else out.contiguous()
