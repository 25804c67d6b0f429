"""BatchNorm statistics recomputed for the final weights (DrNetTrainer.refresh_bn_statistics,
``lstm.bn_refresh_batches``): what they are averaged over, and that nothing else changes."""

from __future__ import annotations

import copy

import pytest
import torch

from drnet_lib.checkpoint import load_checkpoint
from drnet_lib.config import get_config
from drnet_lib.train import DrNetTrainer, train_drnet


def _bn_buffers(model):
    return {name: b.clone() for name, b in model.named_buffers() if "running" in name or "num_batches" in name}


@pytest.fixture
def trained(_trained_smoke):
    """A private copy of the smoke-trained trainer (its model may be changed freely)."""
    trainer = copy.copy(_trained_smoke)
    trainer.model = copy.deepcopy(_trained_smoke.model)
    return trainer


def test_running_statistics_become_the_plain_average_over_the_training_calls(trained):
    """Each BatchNorm's running mean must equal the mean, over every call of the refresh batches'
    training iterations, of that call's per-channel batch mean of the layer's input."""
    model = trained.model
    layers = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert len(layers) > 4
    # the inputs each layer sees, on a copy of the model in training mode over the same batches
    twin = copy.deepcopy(model).train()
    seen = {name: [] for name in layers}
    for name, m in twin.named_modules():
        if name in seen:
            m.register_forward_hook(lambda mod, inp, out, name=name: seen[name].append(inp[0].mean((0, 2, 3))))
    with torch.no_grad():
        for frames in trained.training_batches(3):
            twin.encode_pose(frames[:, 0]), twin.encode_pose(frames[:, 4])
            content, skips = twin.encode_content(frames[:, 0])
            twin.encode_content(frames[:, 1])
            pose = twin.encode_pose(frames[:, 2])
            twin.encode_pose(frames[:, 3])
            twin.decode(content, skips, pose)
    before = _bn_buffers(model)
    trained.refresh_bn_statistics(3)
    for name, m in layers.items():
        expected = torch.stack(seen[name]).mean(0)
        torch.testing.assert_close(m.running_mean, expected, rtol=1e-4, atol=1e-5)
        assert not torch.equal(m.running_mean, before[f"{name}.running_mean"]), name
        assert m.momentum == 0.1   # the layer's own momentum is given back


def test_refresh_is_repeatable_and_changes_only_the_statistics(trained):
    weights = {k: v.clone() for k, v in trained.model.named_parameters()}
    generator_state = trained.generator.get_state()
    was_training = trained.model.training
    trained.refresh_bn_statistics(2)
    first = _bn_buffers(trained.model)
    trained.refresh_bn_statistics(2)
    for k, v in _bn_buffers(trained.model).items():
        assert torch.equal(v, first[k]), k
    for k, v in trained.model.named_parameters():
        assert torch.equal(v, weights[k]), k
    assert torch.equal(trained.generator.get_state(), generator_state)   # a resume draws what it would have
    assert trained.model.training == was_training


def test_train_drnet_refreshes_after_the_last_checkpoint(smoke_cfg, train_bank, tmp_path):
    path = tmp_path / "drnet.pt"
    cfg = get_config("mnist", "smoke", overrides={"train.iterations": 4, "train.checkpoint_every": 2,
                                                 "lstm.bn_refresh_batches": 2})
    trainer = train_drnet(cfg, "cpu", path, progress=False, bank=train_bank)
    saved = load_checkpoint(path)["modules"]["drnet"]
    refreshed = _bn_buffers(trainer.model)
    name = next(k for k in refreshed if k.endswith("running_mean"))
    assert not torch.equal(saved[name], refreshed[name])   # on disk: the training's own averages
    plain = train_drnet(get_config("mnist", "smoke", overrides={"train.iterations": 4, "train.checkpoint_every": 2}),
                        "cpu", path, progress=False, bank=train_bank)   # complete: loads, no refresh
    assert torch.equal(_bn_buffers(plain.model)[name], saved[name])


@pytest.mark.parametrize("value", [-1, 1.5, "200", True])
def test_a_bad_refresh_setting_fails_before_training(train_bank, tmp_path, value):
    # refused when set (the configuration's type check) ...
    with pytest.raises(ValueError, match="lstm.bn_refresh_batches"):
        get_config("mnist", "smoke", overrides={"lstm.bn_refresh_batches": value})
    # ... and by the trainer, for a configuration that did not pass through the check
    cfg = get_config("mnist", "smoke")
    cfg.lstm.bn_refresh_batches = value
    with pytest.raises(ValueError, match="lstm.bn_refresh_batches"):
        train_drnet(cfg, "cpu", tmp_path / "drnet.pt", progress=False, bank=train_bank)
    assert not (tmp_path / "drnet.pt").exists()


def test_refresh_needs_at_least_one_batch(trained):
    with pytest.raises(ValueError, match="at least 1"):
        trained.refresh_bn_statistics(0)
