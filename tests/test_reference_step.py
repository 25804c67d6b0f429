"""The trainer's DrNet iteration computes exactly a plain, literal reading of the method.

The reference below is written the obvious way, with nothing saved: every code is computed with
its autograd graph and detached afterwards, the discriminator gets its own zero_grad/backward,
the main loss is summed term by term, and each loss is read back with ``.item()`` at once. It
shares with the trainer only the data (the same clips, frame times and derangement, drawn from
the same seeded generator), so equal losses and equal weights after several iterations mean the
trainer's shortcuts (no graphs for targets, no host sync, frozen C through requires_grad) change
nothing in the arithmetic.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from drnet_lib.config import apply_overrides
from drnet_lib.losses import derangement
from drnet_lib.train import DrNetTrainer, sample_frame_times


def reference_iteration(model, optimizers, bank, generator, cfg) -> list[float]:
    """One scene-discriminator step and one encoder/decoder step; returns the five logged values."""
    t, B, T = cfg.train, cfg.train.batch_size, cfg.data.clip_length
    clips = bank.sample_factors(B, generator, T)
    times = sample_frame_times(B, T, t.pair_sampling, generator, bank.device)
    x = bank.render(clips, times)
    model.train()

    # scene discriminator: same-clip pairs (first half) against pairs of two clips (second half)
    pose_a = model.encode_pose(x[:, 0]).detach()
    pose_b = model.encode_pose(x[:, 4]).detach()
    half = B // 2
    partners = torch.cat([torch.arange(half), half + derangement(B - half, generator)])
    labels = torch.cat([torch.ones(half), torch.zeros(B - half)])
    prob = model.scene_discriminator(pose_a, pose_b[partners])
    d_loss = F.binary_cross_entropy(prob, labels)
    optimizers["scene_discriminator"].zero_grad()
    d_loss.backward()
    optimizers["scene_discriminator"].step()
    d_acc = ((prob > 0.5).float() == labels).float().mean().item()

    # encoders and decoder: reconstruction + alpha * similarity + beta * adversarial
    content, skips = model.encode_content(x[:, 0])
    content_other = model.encode_content(x[:, 1])[0].detach()
    pose = model.encode_pose(x[:, 2])
    pose_other = model.encode_pose(x[:, 3]).detach()
    rec = F.mse_loss(model.decode(content, skips, pose), x[:, 2])
    sim = F.mse_loss(content, content_other)
    same = model.scene_discriminator(pose, pose_other)
    adv = F.binary_cross_entropy(same, torch.full_like(same, 0.5))
    loss = rec + t.similarity_weight * sim + t.adversarial_weight * adv
    for opt in optimizers.values():
        opt.zero_grad()
    loss.backward()
    for name in ("content_encoder", "pose_encoder", "decoder"):
        optimizers[name].step()
    return [rec.item(), sim.item(), adv.item(), d_loss.item(), d_acc]


@pytest.mark.parametrize("beta", [0.1, 0.0])
def test_trainer_iterations_equal_the_reference(smoke_cfg, train_bank, beta):
    cfg = apply_overrides(smoke_cfg, {"train.adversarial_weight": beta})
    trainer = DrNetTrainer(cfg, "cpu", bank=train_bank)
    model = copy.deepcopy(trainer.model)
    t = cfg.train
    optimizers = {name: torch.optim.Adam(getattr(model, name).parameters(), lr=t.lr, betas=(t.beta1, 0.999))
                  for name in ("content_encoder", "pose_encoder", "decoder", "scene_discriminator")}
    generator = torch.Generator().manual_seed(cfg.seed)
    for _ in range(4):
        ours = trainer.step().tolist()
        theirs = reference_iteration(model, optimizers, train_bank, generator, cfg)
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-7)
    for (name, a), b in zip(trainer.model.state_dict().items(), model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), name
