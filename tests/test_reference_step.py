"""The trainer's DrNet iteration computes exactly a plain, literal reading of the method.

The reference (:class:`drnet_lib.reference_step.PlainIteration`) is written the obvious way, with
nothing saved, and shares with the trainer only the data (the same clips, frame times and
derangement, drawn from the same seeded generator), so equal losses and equal weights after
several iterations mean the trainer's shortcuts (no graphs for targets, no host sync, frozen C
through requires_grad) change nothing in the arithmetic.
"""

from __future__ import annotations

import pytest
import torch

from drnet_lib.config import apply_overrides
from drnet_lib.reference_step import PlainIteration
from drnet_lib.train import DrNetTrainer


@pytest.mark.parametrize("overrides", [
    {"train.adversarial_weight": 0.1},
    {"train.adversarial_weight": 0.0},
    # the speed settings change layout and scheduling only: still the same arithmetic
    {"train.adversarial_weight": 0.1, "train.channels_last": True},
    {"train.adversarial_weight": 0.1, "train.adam": "for-loop"},
], ids=["beta0.1", "beta0", "channels_last", "adam_for_loop"])
def test_trainer_iterations_equal_the_reference(smoke_cfg, train_bank, overrides):
    cfg = apply_overrides(smoke_cfg, overrides)
    trainer = DrNetTrainer(cfg, "cpu", bank=train_bank)
    plain = PlainIteration(cfg, trainer.model, train_bank)
    for _ in range(4):
        ours = trainer.step().tolist()
        theirs = plain.step()
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-7)
    for (name, a), b in zip(trainer.model.state_dict().items(), plain.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), name
