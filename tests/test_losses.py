"""The four DrNet losses and the derangement used for the discriminator's negatives."""

from __future__ import annotations

import math

import pytest
import torch

from drnet_lib import losses


# -- derangement ------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 8, 16, 33, 50, 100])
def test_derangement_is_a_permutation_without_fixed_points(n):
    for seed in range(25):
        g = torch.Generator().manual_seed(seed)
        perm = losses.derangement(n, g)
        assert perm.dtype == torch.int64 and perm.shape == (n,)
        assert torch.equal(perm.sort().values, torch.arange(n)), (n, seed, perm)
        assert not (perm == torch.arange(n)).any(), (n, seed, perm)


def test_derangement_of_two_is_the_swap():
    for seed in range(10):
        assert losses.derangement(2, torch.Generator().manual_seed(seed)).tolist() == [1, 0]


def test_derangement_is_random_and_seeded():
    perms = {tuple(losses.derangement(5, torch.Generator().manual_seed(s)).tolist()) for s in range(60)}
    assert len(perms) > 5  # not one fixed permutation
    a = losses.derangement(30, torch.Generator().manual_seed(7))
    b = losses.derangement(30, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("n", [0, 1, -1])
def test_derangement_needs_two_items(n):
    with pytest.raises(ValueError, match="at least 2"):
        losses.derangement(n, torch.Generator().manual_seed(0))


# -- pose adversarial loss --------------------------------------------------------------------

def test_pose_adversarial_loss_is_minimised_at_one_half():
    at_half = losses.pose_adversarial_loss(torch.full((8,), 0.5))
    assert at_half.item() == pytest.approx(math.log(2), abs=1e-6)
    for p in [0.01, 0.1, 0.3, 0.45, 0.49, 0.51, 0.55, 0.7, 0.9, 0.99]:
        assert losses.pose_adversarial_loss(torch.full((8,), p)).item() > at_half.item(), p
    # the closed form: -(log p + log(1-p)) / 2
    p = torch.tensor([0.2, 0.6, 0.95])
    expected = -(0.5 * torch.log(p) + 0.5 * torch.log1p(-p)).mean()
    assert losses.pose_adversarial_loss(p).item() == pytest.approx(expected.item(), rel=1e-6)


def test_pose_adversarial_loss_gradient_vanishes_at_one_half():
    p = torch.full((4,), 0.5, requires_grad=True)
    losses.pose_adversarial_loss(p).backward()
    assert torch.allclose(p.grad, torch.zeros(4), atol=1e-6)


def test_pose_adversarial_loss_is_symmetric():
    """C's label convention does not matter: L(p) = L(1 - p)."""
    g = torch.Generator().manual_seed(0)
    p = torch.rand(64, generator=g) * 0.98 + 0.01
    assert losses.pose_adversarial_loss(p).item() == pytest.approx(
        losses.pose_adversarial_loss(1 - p).item(), rel=1e-5)


# -- similarity / reconstruction --------------------------------------------------------------

def test_similarity_loss_gives_no_gradient_to_its_target():
    content = torch.randn(4, 16, 1, 1, requires_grad=True)
    target = torch.randn(4, 16, 1, 1, requires_grad=True)
    loss = losses.similarity_loss(content, target)
    assert loss.item() == pytest.approx(((content - target) ** 2).mean().item(), rel=1e-6)
    loss.backward()
    assert target.grad is None
    assert content.grad is not None
    assert torch.allclose(content.grad, 2 * (content - target).detach() / content.numel())


def test_reconstruction_loss_is_pixel_mse():
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert losses.reconstruction_loss(a, b).item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-6)
    assert losses.reconstruction_loss(a, a).item() == 0


# -- discriminator ----------------------------------------------------------------------------

def test_discriminator_loss_equals_manual_bce():
    g = torch.Generator().manual_seed(1)
    p = torch.rand(20, generator=g) * 0.98 + 0.01
    y = torch.cat([torch.ones(10), torch.zeros(10)])
    manual = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert losses.discriminator_loss(p, y).item() == pytest.approx(manual.item(), rel=1e-6)
    # a confident, correct discriminator has a small loss; a confident, wrong one a large loss
    good = torch.cat([torch.full((10,), 0.99), torch.full((10,), 0.01)])
    assert losses.discriminator_loss(good, y) < 0.02
    assert losses.discriminator_loss(1 - good, y) > 4
