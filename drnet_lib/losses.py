"""The four DrNet losses (reference/drnet.md §1), each a mean over all its elements.

||.||^2 below is averaged, as ``F.mse_loss`` does: over every pixel of the batch for the
reconstruction, over every code dimension of the batch for the similarity (as the authors' MSE
criteria do), so the weights alpha and beta act on per-element scales.

    reconstruction   ||D(E_c(x_t), E_p(x_{t+k})) - x_{t+k}||^2         -> E_c, E_p, D
    similarity       ||E_c(x_t) - sg[E_c(x_{t+k'})]||^2                -> E_c
    pose adversarial BCE(C(E_p(x_{t+k}), sg[E_p(x_{t+k''})]), 1/2)       -> E_p  (weight beta)
    discriminator    BCE(C(same-clip pair), 1) + BCE(C(shuffled pair), 0) -> C only

sg = stop-gradient. The discriminator is trained in its own step on detached pose codes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel MSE between the decoded frame and the real frame, ``(B, C, H, W)`` each."""
    return F.mse_loss(prediction, target)


def similarity_loss(content: torch.Tensor, content_target: torch.Tensor) -> torch.Tensor:
    """MSE pulling a content code towards another frame's code of the same clip (a fixed target)."""
    return F.mse_loss(content, content_target.detach())


def pose_adversarial_loss(same_clip_probability: torch.Tensor) -> torch.Tensor:
    """BCE against 1/2 on same-clip pairs: the pose encoder wants C maximally unsure.

    Its minimum is at C = 1/2, i.e. when pose codes of one clip look no more alike than pose
    codes of different clips; the target is symmetric, so C's label convention does not matter.
    """
    return F.binary_cross_entropy(same_clip_probability, torch.full_like(same_clip_probability, 0.5))


def discriminator_loss(probability: torch.Tensor, is_same_clip: torch.Tensor) -> torch.Tensor:
    """BCE of the scene discriminator; ``is_same_clip`` is 1 for same-clip pairs, 0 otherwise."""
    return F.binary_cross_entropy(probability, is_same_clip)


def derangement(n: int, generator: torch.Generator, device=None) -> torch.Tensor:
    """A random permutation of ``range(n)`` with no fixed points (``n >= 2``).

    A random cyclic order: shuffle, then send each element to the next one in the shuffled list.
    Pairing item i with item perm[i] then never pairs a clip with itself, unlike a plain
    ``randperm``, which leaves about one accidental same-clip "negative" per batch.
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    order = torch.randperm(n, generator=generator, device=device)
    perm = torch.empty_like(order)
    perm[order] = order.roll(-1)
    return perm
