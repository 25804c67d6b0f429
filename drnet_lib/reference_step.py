"""A plain, literal DrNet iteration: the yardstick for the trainer's arithmetic and its speed.

:class:`PlainIteration` is the method written the obvious way, with nothing saved: every code is
computed with its autograd graph and detached afterwards, the discriminator gets its own
zero_grad/backward, the main loss is summed term by term, and each loss is read back with
``.item()`` at once (a host sync per loss on a GPU). It is the style of the authors' drnet-py
training step, not their code (which cannot be fetched here).

It is used twice:

* ``tests/test_reference_step.py`` checks that :class:`.train.DrNetTrainer` computes the same
  losses and weights, so the trainer's shortcuts (no graphs for targets, no host sync, the scene
  discriminator held fixed through ``requires_grad`` in the main step) change nothing in the
  arithmetic;
* ``drnet bench --variants plain`` times it beside the trainer in the same run, so what those
  shortcuts buy is a measured ratio.

It shares with the trainer only the data: the same clips, frame times and derangement, drawn
from a generator seeded like the trainer's.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .config import ExperimentConfig
from .losses import derangement
from .train import sample_frame_times

NETWORKS = ("content_encoder", "pose_encoder", "decoder", "scene_discriminator")


class PlainIteration:
    """One scene-discriminator step and one encoder/decoder step on its own copy of ``model``.

    Args:
        model: a :class:`.models.DrNet` in its initial state (copied, never modified).
        bank: the clip source (``sample_factors``/``render``), shared with the trainer.
    """

    def __init__(self, cfg: ExperimentConfig, model, bank):
        t = cfg.train
        self.cfg, self.bank = cfg, bank
        self.model = copy.deepcopy(model)
        self.optimizers = {name: torch.optim.Adam(getattr(self.model, name).parameters(), lr=t.lr,
                                                  betas=(t.beta1, 0.999)) for name in NETWORKS}
        self.generator = torch.Generator(bank.device).manual_seed(cfg.seed)

    def step(self) -> list[float]:
        """Returns the five logged values: reconstruction, similarity, adversarial,
        discriminator loss, discriminator accuracy."""
        model, t = self.model, self.cfg.train
        B, T = t.batch_size, self.cfg.data.clip_length
        clips = self.bank.sample_factors(B, self.generator, T)
        times = sample_frame_times(B, T, t.pair_sampling, self.generator, self.bank.device)
        x = self.bank.render(clips, times)
        model.train()

        # scene discriminator: same-clip pose pairs (first half) against pairs from two clips
        pose_a = model.encode_pose(x[:, 0]).detach()
        pose_b = model.encode_pose(x[:, 4]).detach()
        half = B // 2
        dev = x.device
        partners = torch.cat([torch.arange(half, device=dev), half + derangement(B - half, self.generator, dev)])
        labels = torch.cat([torch.ones(half, device=dev), torch.zeros(B - half, device=dev)])
        prob = model.scene_discriminator(pose_a, pose_b[partners])
        d_loss = F.binary_cross_entropy(prob, labels)
        self.optimizers["scene_discriminator"].zero_grad()
        d_loss.backward()
        self.optimizers["scene_discriminator"].step()
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
        for opt in self.optimizers.values():
            opt.zero_grad()
        loss.backward()
        for name in NETWORKS[:3]:
            self.optimizers[name].step()
        return [rec.item(), sim.item(), adv.item(), d_loss.item(), d_acc]
