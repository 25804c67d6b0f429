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
    {"train.adversarial_weight": 0.1, "train.channels_last": False},
    {"train.adversarial_weight": 0.0, "train.channels_last": False},
    # the speed settings change layout and scheduling only: still the same arithmetic. (NHWC, the
    # CPU's default layout, is checked with beta 0.1 only: there oneDNN may run the no-grad target
    # encodings with other kernels than the reference's, and the conv biases in front of a batch
    # norm, whose gradient is zero but for rounding, can then take Adam steps of opposite signs.)
    {"train.adversarial_weight": 0.1, "train.channels_last": True},
    {"train.adversarial_weight": 0.1, "train.channels_last": False, "train.adam": "for-loop"},
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


def test_the_memory_layout_changes_only_the_rounding(smoke_cfg, train_bank):
    """NHWC and NCHW add the same products in another order: the losses agree to float rounding.
    (The weights do not agree that closely: Adam moves a weight by about lr whatever the size of
    its gradient, so a gradient near zero whose rounding flips its sign moves the weight the other
    way. The same happens between any two machines or thread counts.)"""
    nhwc, nchw = (DrNetTrainer(apply_overrides(smoke_cfg, {"train.adversarial_weight": 0.1, "train.channels_last": v}),
                               "cpu", bank=train_bank) for v in (True, False))
    for _ in range(4):
        assert nhwc.step().tolist() == pytest.approx(nchw.step().tolist(), rel=1e-5, abs=1e-7)
