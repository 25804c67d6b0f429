"""DrNet training (train.py), the resumable loop (loop.py), checkpoints (checkpoint.py) and the pose
LSTM (predict.py): what each step updates, and that an interrupted run resumes exactly."""

from __future__ import annotations

import copy
import math
import os
import signal
from pathlib import Path

import pytest
import torch

from drnet_lib import checkpoint as ckpt
from drnet_lib import losses
from drnet_lib.checkpoint import CheckpointError, load_checkpoint
from drnet_lib.loop import TrainingInterrupted
from drnet_lib.config import CADENCE_SETTINGS, NOT_COMPARED, differences, get_config
from drnet_lib.predict import LSTMTrainer, encode_sequence, rollout, train_lstm
from drnet_lib.runtime import uses_channels_last
from drnet_lib.train import LOSS_NAMES, DrNetTrainer, checkpoint_paths, sample_frame_times

from conftest import assert_same_state


def _cfg(**overrides):
    return get_config("mnist", "smoke", overrides=overrides)


def _trainer(cfg, bank):
    return DrNetTrainer(cfg, "cpu", bank=bank)


def _frames(trainer, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, T = trainer.cfg.train.batch_size, trainer.cfg.data.clip_length
    factors = trainer.bank.sample_factors(B, g, T)
    return trainer.bank.render(factors, sample_frame_times(B, T, "random", g, "cpu"))


def _weights(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _final_state(trainer):
    state = trainer.state_dict()
    state.pop("wall_s")
    return state


def _interrupt_at(trainer, k):
    """Make ``trainer.step`` raise KeyboardInterrupt once ``k`` iterations are done (a kill)."""
    original = trainer.step

    def step():
        if trainer.iteration == k:
            raise KeyboardInterrupt
        return original()

    trainer.step = step


def _killed_then_resumed(make, path, k):
    """Train with ``make()`` until killed after ``k`` iterations, then resume in a new trainer."""
    first = make()
    _interrupt_at(first, k)
    with pytest.raises(KeyboardInterrupt):
        first.fit(path, progress=False)
    assert first.iteration == k
    second = make()
    assert second.resume(path)
    resumed_from = second.iteration
    second.fit(path, progress=False)
    return second, resumed_from


# -- frame sampling ---------------------------------------------------------------------------

def test_random_frame_times():
    g = torch.Generator().manual_seed(0)
    t = sample_frame_times(500, 20, "random", g, "cpu")
    assert t.shape == (500, 5) and t.dtype == torch.int64
    assert (t[:, 0] == 0).all()
    assert t[:, 1:].min() == 1 and t[:, 1:].max() == 19    # the whole range 1..T-1 is used
    assert len({tuple(r) for r in t.tolist()}) > 400         # drawn per clip, not one row for all
    for i in range(1, 5):
        for j in range(i + 1, 5):
            assert not torch.equal(t[:, i], t[:, j])          # columns drawn independently
    again = sample_frame_times(500, 20, "random", torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(t, again)


def test_fixed_frame_times():
    t = sample_frame_times(7, 20, "fixed", torch.Generator().manual_seed(0), "cpu")
    assert t.shape == (7, 5)
    assert t.tolist() == [[0, 1, 2, 3, 1]] * 7


def test_bad_pair_sampling_raises():
    with pytest.raises(ValueError, match="pair_sampling"):
        sample_frame_times(4, 20, "consecutive", torch.Generator(), "cpu")


# -- what one iteration updates ---------------------------------------------------------------

PARTS = ("content_encoder", "pose_encoder", "decoder", "scene_discriminator")


@pytest.mark.parametrize("beta", [0.1, 0.0])
def test_one_step_updates_all_four_networks(train_bank, beta):
    trainer = _trainer(_cfg(**{"train.adversarial_weight": beta}), train_bank)
    before = {p: _weights(getattr(trainer.model, p)) for p in PARTS}
    values = trainer.step()
    assert values.shape == (len(LOSS_NAMES),) and torch.isfinite(values).all()
    assert 0 <= values[4] <= 1   # discriminator accuracy
    for part in PARTS:
        after = _weights(getattr(trainer.model, part))
        for name, w in before[part].items():
            if w.dim() >= 2:  # every weight matrix / kernel moves (C too, by its own step, even at beta = 0)
                assert not torch.equal(w, after[name]), f"{part}.{name} did not change"


def test_main_step_does_not_update_the_scene_discriminator(train_bank):
    trainer = _trainer(_cfg(), train_bank)
    trainer.model.train()
    frames = _frames(trainer)
    c_before = _weights(trainer.model.scene_discriminator)
    others = _weights(trainer.model.pose_encoder)
    trainer.main_step(frames)
    c_after = _weights(trainer.model.scene_discriminator)
    for k in c_before:
        assert torch.equal(c_before[k], c_after[k]), k
    assert all(p.grad is None for p in trainer.model.scene_discriminator.parameters())
    assert all(p.requires_grad for p in trainer.model.scene_discriminator.parameters())
    assert any(not torch.equal(others[k], w) for k, w in _weights(trainer.model.pose_encoder).items())


def test_adversarial_gradient_reaches_only_the_pose_encoder(train_bank):
    """beta changes E_p's update and nothing else: E_c and D see only rec + alpha * sim."""
    with_adv = _trainer(_cfg(**{"train.adversarial_weight": 0.1}), train_bank)
    without = _trainer(_cfg(**{"train.adversarial_weight": 0.0}), train_bank)
    assert_same_state(with_adv.model.state_dict(), without.model.state_dict())  # same init
    frames = _frames(with_adv)
    for t in (with_adv, without):
        t.model.train()
        t.main_step(frames)
    assert_same_state(with_adv.model.content_encoder.state_dict(), without.model.content_encoder.state_dict())
    assert_same_state(with_adv.model.decoder.state_dict(), without.model.decoder.state_dict())
    wa, wo = _weights(with_adv.model.pose_encoder), _weights(without.model.pose_encoder)
    assert any(not torch.equal(wa[k], wo[k]) for k in wa)


def test_discriminator_step_pairs_and_labels(train_bank, monkeypatch):
    """C sees (pose(frame 0), pose(frame d)): same clip in the first half (label 1), a
    derangement of the second half's partners (label 0) -- never a clip with itself."""
    trainer = _trainer(_cfg(), train_bank)
    trainer.model.train()
    frames = _frames(trainer, seed=3)
    B, half = frames.shape[0], frames.shape[0] // 2
    with torch.no_grad():
        expected_a = trainer.model.encode_pose(frames[:, 0]).flatten(1)
        expected_b = trainer.model.encode_pose(frames[:, 4]).flatten(1)
    seen = {}
    hook = trainer.model.scene_discriminator.register_forward_hook(
        lambda mod, inp, out: seen.update(a=inp[0].flatten(1), b=inp[1].flatten(1)))
    real_loss = losses.discriminator_loss
    monkeypatch.setattr(losses, "discriminator_loss",
                        lambda p, y: seen.update(labels=y.clone()) or real_loss(p, y))
    trainer.discriminator_step(frames)
    hook.remove()
    assert seen["labels"].tolist() == [1.0] * half + [0.0] * (B - half)
    assert torch.allclose(seen["a"], expected_a, atol=1e-6)
    assert torch.allclose(seen["b"][:half], expected_b[:half], atol=1e-6)
    partners = torch.cdist(seen["b"][half:], expected_b).argmin(dim=1)
    assert torch.allclose(seen["b"][half:], expected_b[partners], atol=1e-6)
    assert sorted(partners.tolist()) == list(range(half, B))        # a permutation of the second half
    assert not (partners == torch.arange(half, B)).any()             # with no clip paired with itself


def test_fit_history_rows(train_bank):
    trainer = _trainer(_cfg(**{"train.iterations": 12, "train.log_every": 5}), train_bank)
    history = trainer.fit(progress=False)
    assert [r["iteration"] for r in history] == [5, 10, 12]   # the last, partial window is logged too
    assert all(set(r) == {"iteration", *LOSS_NAMES} for r in history)
    assert all(math.isfinite(v) for r in history for v in r.values())
    assert trainer.iteration == 12


# -- resuming ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, smoke_cfg, train_bank):
    """The smoke run (30 iterations, checkpoint every 10) trained in one go."""
    path = tmp_path_factory.mktemp("straight") / "drnet.pt"
    trainer = _trainer(smoke_cfg, train_bank)
    trainer.fit(path, progress=False)
    return trainer, path


@pytest.mark.parametrize("k,resumed_from", [(20, 20), (15, 10)],
                         ids=["at-a-checkpoint", "between-checkpoints"])
def test_resume_is_exact(uninterrupted, smoke_cfg, train_bank, tmp_path, k, resumed_from):
    straight, straight_path = uninterrupted
    path = tmp_path / "drnet.pt"
    resumed, start = _killed_then_resumed(lambda: _trainer(smoke_cfg, train_bank), path, k)
    assert start == resumed_from   # work after the last checkpoint is redone
    assert resumed.iteration == straight.iteration == 30
    assert_same_state(_final_state(resumed), _final_state(straight))
    assert resumed.history == straight.history
    on_disk, reference = load_checkpoint(path), load_checkpoint(straight_path)
    on_disk.pop("wall_s"), reference.pop("wall_s")
    assert_same_state(on_disk, reference)


def _signal_during(trainer, k, signum):
    """Make the process receive ``signum`` while ``trainer`` runs iteration ``k + 1`` (Ctrl-C, or kill's SIGTERM)."""
    original = trainer.step

    def step():
        if trainer.iteration == k:
            os.kill(os.getpid(), signum)
        return original()

    trainer.step = step


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_after_the_iteration_with_a_checkpoint_and_the_run_resumes_exactly(
        uninterrupted, smoke_cfg, train_bank, tmp_path, signum, ctrl_c_raises):
    straight, _ = uninterrupted
    handlers_before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    path = tmp_path / "drnet.pt"
    first = _trainer(smoke_cfg, train_bank)
    _signal_during(first, 14, signum)            # between the checkpoints at 10 and 20
    with pytest.raises(TrainingInterrupted, match=rf"{signal.Signals(signum).name} at iteration 15 of 30.*drnet\.pt"):
        first.fit(path, progress=False)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers_before
    second = _trainer(smoke_cfg, train_bank)
    assert second.resume(path) and second.iteration == 15   # nothing done before the signal is lost
    second.fit(path, progress=False)
    assert_same_state(_final_state(second), _final_state(straight))
    assert second.history == straight.history


def test_a_second_ctrl_c_stops_at_once(smoke_cfg, train_bank, tmp_path, ctrl_c_raises):
    trainer = _trainer(smoke_cfg, train_bank)
    original = trainer.step

    def step():
        if trainer.iteration == 3:  # two presses within one iteration: the second does not wait for it to end
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original()

    trainer.step = step
    with pytest.raises(KeyboardInterrupt) as stopped:
        trainer.fit(tmp_path / "drnet.pt", progress=False)
    assert not isinstance(stopped.value, TrainingInterrupted)
    assert trainer.iteration == 3                 # stopped inside the fourth iteration; no checkpoint written there
    assert not (tmp_path / "drnet.pt").exists()


def test_an_ignored_ctrl_c_stays_ignored(smoke_cfg, train_bank):
    """A job started in the background (`&`, nohup) ignores Ctrl-C: training must not start obeying it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        trainer = _trainer(smoke_cfg, train_bank)
        _signal_during(trainer, 2, signal.SIGINT)
        trainer.fit(progress=False)
        assert trainer.iteration == trainer.iterations
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_signal_without_a_checkpoint_path_says_nothing_was_kept(smoke_cfg, train_bank, ctrl_c_raises):
    trainer = _trainer(smoke_cfg, train_bank)
    _signal_during(trainer, 2, signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="not kept"):
        trainer.fit(progress=False)


def test_resume_history_is_exact_when_logging_and_checkpoints_are_not_aligned(train_bank, tmp_path):
    cfg = _cfg(**{"train.iterations": 20, "train.log_every": 4, "train.checkpoint_every": 10})
    straight = _trainer(cfg, train_bank)
    straight.fit(tmp_path / "straight.pt", progress=False)
    resumed, start = _killed_then_resumed(lambda: _trainer(cfg, train_bank), tmp_path / "killed.pt", 15)
    assert start == 10
    # the weights do come out identical ...
    assert_same_state(resumed.model.state_dict(), straight.model.state_dict())
    # ... but the history row at iteration 12 (window 9..12) is averaged over 11..12 only
    assert resumed.history == straight.history


def test_cosine_learning_rate_falls_from_lr_to_zero_and_resumes_exactly(train_bank, tmp_path):
    cfg = _cfg(**{"train.iterations": 12, "train.checkpoint_every": 4, "train.lr_schedule": "cosine"})
    straight = _trainer(cfg, train_bank)
    lr = cfg.train.lr
    assert straight.learning_rate(0) == lr
    assert straight.learning_rate(6) == pytest.approx(lr / 2)
    assert 0 < straight.learning_rate(11) < 0.02 * lr
    straight.fit(tmp_path / "straight.pt", progress=False)
    # every optimiser took its last step at the schedule's last value
    assert {g["lr"] for o in straight.optimizers.values() for g in o.param_groups} == {straight.learning_rate(11)}
    resumed, start = _killed_then_resumed(lambda: _trainer(cfg, train_bank), tmp_path / "killed.pt", 10)
    assert start == 8
    assert_same_state(_final_state(resumed), _final_state(straight))
    # the authors' constant rate is untouched by the schedule's code
    constant = _trainer(_cfg(**{"train.iterations": 2}), train_bank)
    constant.fit(progress=False)
    assert {g["lr"] for o in constant.optimizers.values() for g in o.param_groups} == {lr}


def test_unknown_learning_rate_schedule_is_refused_by_name(train_bank):
    with pytest.raises(ValueError, match="train.lr_schedule"):
        _trainer(_cfg(**{"train.lr_schedule": "step"}), train_bank)


def test_resume_of_a_finished_run_does_no_work(uninterrupted, smoke_cfg, train_bank):
    straight, path = uninterrupted
    again = _trainer(smoke_cfg, train_bank)

    def no_step():
        raise AssertionError("a finished run must not train again")

    again.step = no_step
    again.run(path, resume=True, progress=False)
    assert again.iteration == 30
    assert_same_state(again.model.state_dict(), straight.model.state_dict())


def test_run_without_resume_starts_over(train_bank, tmp_path):
    cfg = _cfg(**{"train.iterations": 4, "train.checkpoint_every": 2})
    path = tmp_path / "drnet.pt"
    _trainer(cfg, train_bank).run(path, progress=False)
    fresh = _trainer(cfg, train_bank)
    calls = []
    original = fresh.step
    fresh.step = lambda: calls.append(1) or original()
    fresh.run(path, resume=False, progress=False)
    assert len(calls) == 4 and load_checkpoint(path)["iteration"] == 4


def test_a_run_resumed_in_another_number_of_processes_says_what_changes(train_bank, tmp_path, capsys):
    """A checkpoint records how many processes trained it; one process continuing a 2-process
    checkpoint (torchrun) says that BatchNorm's share of the batch changes. The same number of
    processes, or a checkpoint from before the count was recorded, says nothing."""
    cfg = _cfg(**{"train.iterations": 2, "train.checkpoint_every": 2})
    path = tmp_path / "drnet.pt"
    _trainer(cfg, train_bank).run(path, progress=False)
    state = load_checkpoint(path)
    assert state["processes"] == 1
    ckpt.save_checkpoint({**state, "processes": 2}, path)   # as rank 0 of two would have written it
    capsys.readouterr()
    _trainer(cfg, train_bank).run(path, progress=False)     # finished: loaded to be measured, and says so
    assert "trained by 2 process(es)" in capsys.readouterr().out
    longer = _cfg(**{"train.iterations": 3, "train.checkpoint_every": 2})
    capsys.readouterr()
    _trainer(longer, train_bank).run(path, progress=False)
    out = capsys.readouterr().out
    assert "trained by 2 process(es) and continues in 1" in out and "BatchNorm" in out
    assert load_checkpoint(path)["processes"] == 1
    state = load_checkpoint(path)
    del state["processes"]                # a checkpoint written before the count was recorded
    ckpt.save_checkpoint(state, path)
    _trainer(_cfg(**{"train.iterations": 4, "train.checkpoint_every": 2}), train_bank).run(path, progress=False)
    assert "process(es)" not in capsys.readouterr().out


def test_a_finished_checkpoint_read_again_says_so_and_names_the_commit_that_trained_it(
        train_bank, tmp_path, capsys, monkeypatch):
    """A run that only reads a finished checkpoint (to measure it) says so: the results it writes
    name this code's commit, not the one that trained. Reading it leaves its record as it was."""
    cfg = _cfg(**{"train.iterations": 2, "train.checkpoint_every": 2})
    path = tmp_path / "drnet.pt"
    monkeypatch.setenv("DRNET_GIT_COMMIT", "a" * 40)
    _trainer(cfg, train_bank).run(path, progress=False)
    assert load_checkpoint(path)["git_commit"] == "a" * 40
    monkeypatch.setenv("DRNET_GIT_COMMIT", "b" * 40)
    capsys.readouterr()
    _trainer(cfg, train_bank).run(path, progress=False)
    out = capsys.readouterr().out
    assert "read, not trained again" in out and "commit aaaaaaaaaaaa" in out
    assert load_checkpoint(path)["git_commit"] == "a" * 40
    state = load_checkpoint(path)
    del state["git_commit"]               # a checkpoint written before the commit was recorded
    ckpt.save_checkpoint(state, path)
    _trainer(cfg, train_bank).run(path, progress=False)
    assert "commit not recorded" in capsys.readouterr().out


def test_results_files_say_which_models_were_trained_and_which_only_read(train_bank, tmp_path, monkeypatch):
    """provenance.models: per checkpoint, the iterations this process trained (0 for a finished
    checkpoint read to be measured) and the commit whose code last trained it."""
    from drnet_lib import results

    monkeypatch.setattr(results, "_MODELS", {})
    cfg = _cfg(**{"train.iterations": 2, "train.checkpoint_every": 2})
    path = tmp_path / "mnist_seed0" / "drnet.pt"
    monkeypatch.setenv("DRNET_GIT_COMMIT", "a" * 40)
    _trainer(cfg, train_bank).run(path, progress=False)
    trained = results.provenance("cpu", 1.0)["models"]
    assert trained == {"mnist_seed0/drnet.pt": {"iterations": 2, "iterations_this_process": 2,
                                                "training_min": pytest.approx(0, abs=0.1), "trained_at_commit": "a" * 40}}
    monkeypatch.setenv("DRNET_GIT_COMMIT", "b" * 40)   # a later process only reads it
    _trainer(cfg, train_bank).run(path, progress=False)
    read = results.provenance("cpu", 1.0)["models"]["mnist_seed0/drnet.pt"]
    assert read["iterations_this_process"] == 0 and read["trained_at_commit"] == "a" * 40
    longer = _cfg(**{"train.iterations": 3, "train.checkpoint_every": 2})
    _trainer(longer, train_bank).run(path, progress=False)   # continued: this process trained the last one
    continued = results.provenance("cpu", 1.0)["models"]["mnist_seed0/drnet.pt"]
    assert continued["iterations"] == 3 and continued["iterations_this_process"] == 1
    assert continued["trained_at_commit"] == "b" * 40
    _trainer(cfg, train_bank).fit(progress=False)             # no checkpoint: named by the loop
    assert results.provenance("cpu", 1.0)["models"]["DrNet"]["iterations_this_process"] == 2


def test_resume_without_a_checkpoint_returns_false(smoke_cfg, train_bank, tmp_path):
    t = _trainer(smoke_cfg, train_bank)
    assert t.resume(tmp_path / "missing.pt") is False
    assert t.iteration == 0


# -- checkpoints ------------------------------------------------------------------------------

def test_a_measurement_refusing_a_checkpoint_never_advises_deleting_it(uninterrupted):
    _, path = uninterrupted
    with pytest.raises(CheckpointError) as training:
        DrNetTrainer.read_checkpoint(_cfg(**{"train.lr": 0.001}), path)
    assert "delete it" in str(training.value)            # the training loop's advice: start over
    with pytest.raises(CheckpointError) as measuring:
        DrNetTrainer.read_finished_checkpoint(_cfg(**{"train.lr": 0.001}), path)
    assert "delete" not in str(measuring.value) and "give the checkpoint of the run" in str(measuring.value)


@pytest.mark.parametrize("key,value", [("train.lr", 0.001), ("model.pose_dim", 4), ("data.max_velocity", 3)])
def test_checkpoint_of_another_configuration_is_refused_naming_the_setting(uninterrupted, train_bank, key, value):
    _, path = uninterrupted
    section, name = key.split(".")
    saved = _cfg().to_dict()[section][name]
    other = _trainer(_cfg(**{key: value}), train_bank)
    with pytest.raises(CheckpointError, match=rf"another configuration \({key} {value} here, {saved} in the checkpoint\)"):
        other.resume(path)


def test_a_finished_run_asked_for_more_iterations_continues_exactly(uninterrupted, train_bank, tmp_path):
    # with the authors' constant step size nothing in a step depends on the run's length: the
    # 30-iteration smoke run is a 20-iteration run continued for 10 more
    straight, _ = uninterrupted
    path = tmp_path / "drnet.pt"
    _trainer(_cfg(**{"train.iterations": 20}), train_bank).fit(path, progress=False)
    longer = _trainer(_cfg(), train_bank)
    assert longer.resume(path) and longer.iteration == 20
    longer.fit(path, progress=False)
    assert_same_state(_final_state(longer), _final_state(straight))
    assert longer.history == straight.history


def test_an_older_checkpoint_resumes_only_at_its_own_length(train_bank, tmp_path):
    # written when the run's length still counted in the fingerprint: extending it is refused, saying why
    path = tmp_path / "drnet.pt"
    short = _cfg(**{"train.iterations": 20})
    trainer = _trainer(short, train_bank)
    trainer.fit(path, progress=False)
    older = short.fingerprint(*DrNetTrainer.checkpoint_sections, leave_out=NOT_COMPARED | CADENCE_SETTINGS)
    torch.save({**load_checkpoint(path), "fingerprint": older}, path)
    assert _trainer(short, train_bank).resume(path)
    with pytest.raises(CheckpointError, match="resumes only at its own train.iterations, 20"):
        _trainer(_cfg(), train_bank).resume(path)


def test_a_checkpoint_past_the_asked_length_is_refused(uninterrupted, train_bank):
    _, path = uninterrupted
    shorter = _trainer(_cfg(**{"train.iterations": 20}), train_bank)
    with pytest.raises(CheckpointError, match=r"drnet\.pt is at iteration 30, past the 20 asked for \(train\.iterations\)"):
        shorter.resume(path)
    assert shorter.iteration == 0                        # nothing loaded


def test_a_run_whose_step_size_depends_on_its_length_is_not_extended(train_bank, tmp_path):
    path = tmp_path / "drnet.pt"
    _trainer(_cfg(**{"train.lr_schedule": "cosine", "train.iterations": 10}), train_bank).fit(path, progress=False)
    longer = _trainer(_cfg(**{"train.lr_schedule": "cosine", "train.iterations": 20}), train_bank)
    with pytest.raises(CheckpointError, match="train.iterations 20 here, 10 in the checkpoint"):
        longer.resume(path)


def test_a_refusal_without_saved_settings_still_names_the_file(uninterrupted, train_bank, tmp_path):
    # older checkpoints of the pose LSTM hold no configuration to compare
    _, path = uninterrupted
    state = load_checkpoint(path)
    del state["config"]
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"old\.pt was written for another configuration \(its saved settings cannot"):
        _trainer(_cfg(**{"train.lr": 0.001}), train_bank).resume(tmp_path / "old.pt")


def test_a_missing_checkpoint_is_named_not_called_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*nothere.pt"):
        load_checkpoint(tmp_path / "nothere.pt")


def test_a_run_resumes_with_another_checkpoint_interval_and_an_older_fingerprint(uninterrupted, smoke_cfg,
                                                                               train_bank, tmp_path):
    # how often a run saves and logs does not change what it computes: the 30-iteration smoke run,
    # stopped at its checkpoint at 20, finishes with checkpoints every 5 and logs every 3 exactly as in one go
    straight, straight_path = uninterrupted
    path = tmp_path / "drnet.pt"
    state = load_checkpoint(straight_path)
    first = _trainer(smoke_cfg, train_bank)
    _interrupt_at(first, 25)
    with pytest.raises(KeyboardInterrupt):
        first.fit(path, progress=False)                    # killed at 25: its last checkpoint is at 20
    other = _cfg(**{"train.checkpoint_every": 5, "train.log_every": 3})
    resumed = _trainer(other, train_bank)
    assert resumed.resume(path) and resumed.iteration == 20
    resumed.fit(path, progress=False)
    assert_same_state(resumed.model.state_dict(), straight.model.state_dict())
    # a checkpoint written before the cadence settings left the fingerprint (its hash counted them) resumes
    legacy = smoke_cfg.fingerprint(*DrNetTrainer.checkpoint_sections, leave_out=NOT_COMPARED)
    same = _trainer(smoke_cfg, train_bank)
    assert legacy != state["fingerprint"] and legacy in same.accepted_fingerprints
    torch.save({**state, "fingerprint": legacy}, tmp_path / "legacy.pt")
    assert same.resume(tmp_path / "legacy.pt") and same.iteration == 30
    # what is computed still counts
    with pytest.raises(CheckpointError, match="another configuration"):
        _trainer(_cfg(**{"train.lr": 0.001}), train_bank).resume(tmp_path / "legacy.pt")


def test_checkpoint_of_another_seed_is_refused(uninterrupted, train_bank):
    _, path = uninterrupted
    other = DrNetTrainer(get_config("mnist", "smoke", seed=1), "cpu", bank=train_bank)
    with pytest.raises(CheckpointError, match=r"another configuration \(seed 1 here, 0 in the checkpoint\)"):
        other.resume(path)


def test_evaluation_and_lstm_settings_do_not_invalidate_a_drnet_checkpoint(uninterrupted, train_bank):
    _, path = uninterrupted
    t = _trainer(_cfg(**{"eval.swap_pairs": 7, "lstm.hidden": 8}), train_bank)
    assert t.resume(path) and t.iteration == 30


def test_truncated_checkpoint_names_the_file(uninterrupted, smoke_cfg, train_bank, tmp_path):
    _, path = uninterrupted
    data = path.read_bytes()
    bad = tmp_path / "drnet.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(bad).replace(".", r"\.")):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="drnet.pt"):
        _trainer(smoke_cfg, train_bank).resume(bad)


def test_bytes_overwritten_inside_a_checkpoint_are_caught_by_its_checksums(uninterrupted, tmp_path):
    _, path = uninterrupted
    data = bytearray(path.read_bytes())
    middle = len(data) // 2                          # inside a tensor's bytes: torch.load alone accepts it
    data[middle:middle + 64] = bytes(64)
    bad = tmp_path / "drnet.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"drnet\.pt is damaged: its part .* fails its CRC-32 checksum"):
        load_checkpoint(bad)


def test_a_readable_file_that_is_not_a_checkpoint_is_refused_by_name(tmp_path):
    bad = tmp_path / "drnet.pt"
    torch.save(torch.zeros(3), bad)
    with pytest.raises(CheckpointError, match=r"drnet\.pt holds a Tensor, not a training checkpoint"):
        load_checkpoint(bad)


def test_a_checkpoint_missing_a_part_is_refused_by_name(uninterrupted, smoke_cfg, train_bank, tmp_path):
    _, path = uninterrupted
    state = load_checkpoint(path)
    del state["optimizers"]
    bad = tmp_path / "drnet.pt"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=r"drnet\.pt is incomplete or damaged \(KeyError: 'optimizers'\)"):
        _trainer(smoke_cfg, train_bank).resume(bad)


def test_checkpoint_writes_are_atomic(smoke_cfg, train_bank, tmp_path, monkeypatch):
    trainer = _trainer(smoke_cfg, train_bank)
    path = tmp_path / "drnet.pt"
    trainer.save(path)
    good = path.read_bytes()
    trainer.step()
    trainer.iteration += 1
    real_save = torch.save

    def save_then_crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", save_then_crash)
    with pytest.raises(RuntimeError, match="disk full"):
        trainer.save(path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == good
    assert DrNetTrainer.read_checkpoint(trainer.cfg, path)["iteration"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drnet.pt"]   # no *.tmp left behind


def test_atomic_write_cleans_up_on_interrupt(tmp_path):
    target = tmp_path / "sub" / "file.bin"

    def write(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_write(target, write)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_checkpoint_paths(smoke_cfg):
    d, l = checkpoint_paths(get_config("mnist", "smoke", seed=3), "ck")
    assert d == Path("ck/smoke/mnist_seed3/drnet.pt") and l == Path("ck/smoke/mnist_seed3/lstm.pt")


# -- the pose LSTM ----------------------------------------------------------------------------

def test_train_lstm_runs_and_leaves_drnet_unchanged(smoke_cfg, trained_model, train_bank, tmp_path):
    before = copy.deepcopy(trained_model.state_dict())
    path = tmp_path / "lstm.pt"
    trainer = train_lstm(smoke_cfg, trained_model, train_bank, path, progress=False)
    assert trainer.iteration == smoke_cfg.lstm.iterations == 20
    assert [r["iteration"] for r in trainer.history] == [5, 10, 15, 20]
    assert all(math.isfinite(r["pose_mse"]) and r["pose_mse"] >= 0 for r in trainer.history)
    assert_same_state(trained_model.state_dict(), before)   # weights and BatchNorm statistics
    assert LSTMTrainer.read_checkpoint(smoke_cfg, path)["iteration"] == 20


def test_lstm_loss_decreases_on_a_fixed_model(smoke_cfg, trained_model, train_bank):
    cfg = _cfg(**{"lstm.iterations": 60})
    trainer = LSTMTrainer(cfg, trained_model, train_bank)
    trainer.log_every = 20
    history = trainer.fit(progress=False)
    assert history[-1]["pose_mse"] < history[0]["pose_mse"]


def test_lstm_resume_is_exact(smoke_cfg, _trained_smoke, train_bank, tmp_path):
    def make():
        return LSTMTrainer(smoke_cfg, copy.deepcopy(_trained_smoke.model), train_bank)

    straight = make()
    straight.fit(tmp_path / "straight.pt", progress=False)
    resumed, start = _killed_then_resumed(make, tmp_path / "killed.pt", 15)
    assert start == 10
    assert_same_state(_final_state(resumed), _final_state(straight))
    assert resumed.history == straight.history


def test_lstm_checkpoint_refuses_other_lstm_settings(smoke_cfg, trained_model, train_bank, tmp_path):
    path = tmp_path / "lstm.pt"
    LSTMTrainer(_cfg(**{"lstm.iterations": 2}), trained_model, train_bank).fit(path, progress=False)
    other = LSTMTrainer(_cfg(**{"lstm.iterations": 2, "lstm.hidden": 16}), trained_model, train_bank)
    with pytest.raises(CheckpointError, match="lstm.hidden 16 here, 32 in the checkpoint"):
        other.resume(path)
    # an LSTM is trained on one DrNet: a DrNet of another length is another DrNet
    other_drnet = LSTMTrainer(_cfg(**{"lstm.iterations": 2, "train.iterations": 40}), trained_model, train_bank)
    with pytest.raises(CheckpointError, match="train.iterations 40 here, 30 in the checkpoint.*delete it to train the pose LSTM again"):
        other_drnet.resume(path)
    # its own length may grow
    longer = LSTMTrainer(_cfg(**{"lstm.iterations": 4}), trained_model, train_bank)
    assert longer.resume(path) and longer.iteration == 2


@pytest.fixture
def lstm_and_clips(smoke_cfg, trained_model, train_bank):
    trainer = LSTMTrainer(_cfg(**{"lstm.iterations": 3}), trained_model, train_bank)
    trainer.fit(progress=False)
    clips, _ = train_bank.sample_clips(4, torch.Generator().manual_seed(0), 8)
    return trained_model, trainer.lstm, clips


@pytest.mark.parametrize("training", [True, False])
def test_rollout_shape_range_and_modes(lstm_and_clips, training):
    model, lstm, clips = lstm_and_clips
    model.train(training)
    lstm.train(training)
    state = copy.deepcopy(model.state_dict())
    out = rollout(model, lstm, clips[:, :5], steps=7)
    assert out.shape == (4, 7, 3, 32, 32)
    assert out.min() >= 0 and out.max() <= 1
    assert model.training is training and lstm.training is training
    assert all(m.training is training for m in model.modules())
    assert_same_state(model.state_dict(), state)   # eval-mode BatchNorm: statistics untouched


def test_rollout_is_deterministic_and_prefix_consistent(lstm_and_clips):
    model, lstm, clips = lstm_and_clips
    long = rollout(model, lstm, clips[:, :5], steps=6)
    short = rollout(model, lstm, clips[:, :5], steps=3)
    assert torch.allclose(long[:, :3], short, atol=1e-6)


def test_rollout_first_frame_decodes_the_lstm_prediction(lstm_and_clips):
    model, lstm, clips = lstm_and_clips
    model.eval()
    lstm.eval()
    observed = clips[:, :5]
    with torch.no_grad():
        poses, content, skips = encode_sequence(model, observed, 4)
        predicted, _ = lstm(poses, content.flatten(1))
        expected = model.decode(content, skips, predicted[:, -1].reshape(4, -1, 1, 1))
    out = rollout(model, lstm, observed, steps=1)
    assert torch.allclose(out[:, 0], expected, atol=1e-6)


def test_rollout_rejects_a_bad_bn_mode(lstm_and_clips):
    model, lstm, clips = lstm_and_clips
    with pytest.raises(ValueError, match="bn_mode"):
        rollout(model, lstm, clips[:, :5], steps=1, bn_mode="frozen")


def test_bf16_autocast_trains_close_to_fp32(train_bank):
    def run(precision):
        cfg = get_config("mnist", "smoke", overrides={"train.precision": precision, "train.iterations": 12,
                                                       "train.log_every": 4})
        trainer = DrNetTrainer(cfg, "cpu", bank=train_bank)
        trainer.fit(progress=False)
        return [row["reconstruction"] for row in trainer.history]

    fp32, bf16 = run("fp32"), run("bf16")
    assert fp32 != bf16                                   # the autocast path is really taken
    assert fp32 == pytest.approx(bf16, rel=0.05)          # and follows the same curve


def test_unknown_precision_and_compile_wiring(train_bank, monkeypatch):
    with pytest.raises(ValueError, match="train.precision"):
        DrNetTrainer(get_config("mnist", "smoke", overrides={"train.precision": "fp16"}), "cpu", bank=train_bank)
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda net, mode: compiled.append((net, mode)) or net)   # real compiling takes minutes on a CPU
    trainer = DrNetTrainer(get_config("mnist", "smoke", overrides={"train.compile": True}), "cpu", bank=train_bank)
    assert sorted(type(n).__name__ for n, _ in compiled) == sorted(type(n).__name__ for n in trainer.nets.values())
    assert len(compiled) == 4 and {mode for _, mode in compiled} == {"default"}
    with pytest.raises(ValueError, match="train.compile_mode"):
        DrNetTrainer(get_config("mnist", "smoke", overrides={"train.compile_mode": "fast"}), "cpu", bank=train_bank)
    # CUDA graphs are refused off a GPU instead of silently compiling without them
    with pytest.raises(ValueError, match="need a GPU"):
        DrNetTrainer(get_config("mnist", "smoke", overrides={"train.compile": True, "train.compile_mode": "reduce-overhead"}),
                     "cpu", bank=train_bank)


def test_cuda_graph_mode_marks_where_each_iteration_starts(train_bank, monkeypatch):
    """With CUDA graphs (compile_mode reduce-overhead) every iteration first tells torch a new step
    begins, so graph outputs of the previous iteration may be reused. Wired on the CPU by lifting
    the GPU check: nothing here records a graph."""
    monkeypatch.setattr(torch, "compile", lambda net, mode: net)
    trainer = DrNetTrainer(get_config("mnist", "smoke"), "cpu", bank=train_bank)
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(trainer.iteration))
    trainer.step()
    assert marks == []                                   # off unless asked for
    trainer.marks_cuda_graph_steps = True
    trainer.step()
    trainer.step()
    assert len(marks) == 2


def test_cudnn_settings_are_set_per_run_and_the_default_restores_the_process_value(train_bank, monkeypatch):
    """cuDNN's switches belong to the process; each run sets its own before its steps, and the
    default ("pytorch") puts back what the process had, whatever another run set before."""
    from drnet_lib import runtime

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)   # restored after
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    strict = get_config("mnist", "smoke", overrides={"train.conv_tf32": False, "train.cudnn_benchmark": True}).train
    runtime.apply_cudnn_settings(strict)
    assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cudnn.benchmark is True
    runtime.apply_cudnn_settings(get_config("mnist", "smoke").train)
    assert torch.backends.cudnn.allow_tf32 == runtime._PROCESS_CUDNN_TF32
    assert torch.backends.cudnn.benchmark is False
    with pytest.raises(ValueError, match="train.conv_tf32"):
        DrNetTrainer(get_config("mnist", "smoke", overrides={"train.conv_tf32": "tf16"}), "cpu", bank=train_bank)
    # on the CPU a trainer leaves the switches alone (cuDNN is not used)
    trainer = DrNetTrainer(get_config("mnist", "smoke", overrides={"train.conv_tf32": False}), "cpu", bank=train_bank)
    trainer.step()
    assert torch.backends.cudnn.allow_tf32 == runtime._PROCESS_CUDNN_TF32


def test_speed_settings_are_wired_and_checked(train_bank):
    with pytest.raises(ValueError, match="train.adam"):
        DrNetTrainer(get_config("mnist", "smoke", overrides={"train.adam": "lamb"}), "cpu", bank=train_bank)
    fused = DrNetTrainer(get_config("mnist", "smoke", overrides={"train.adam": "fused"}), "cpu", bank=train_bank)
    assert all(opt.defaults["fused"] for opt in fused.optimizers.values())
    nhwc = DrNetTrainer(get_config("mnist", "smoke", overrides={"train.channels_last": True}), "cpu", bank=train_bank)
    convs = [p for p in nhwc.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    nhwc.step()                                   # and a step runs (shapes, views) in that layout
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    nchw = DrNetTrainer(get_config("mnist", "smoke", overrides={"train.channels_last": False}), "cpu", bank=train_bank)
    assert not nchw.channels_last
    assert all(p.is_contiguous() for p in nchw.model.parameters() if p.dim() == 4)
    with pytest.raises(ValueError, match="train.channels_last"):
        DrNetTrainer(get_config("mnist", "smoke", overrides={"train.channels_last": "yes"}), "cpu", bank=train_bank)


def test_channels_last_auto_is_nhwc_on_the_cpu_only():
    assert get_config("mnist", "paper").train.channels_last == "auto"
    assert uses_channels_last("auto", torch.device("cpu"))
    assert not uses_channels_last("auto", torch.device("cuda"))   # fp32 NHWC unmeasured on a GPU
    assert uses_channels_last(True, torch.device("cuda")) and not uses_channels_last(False, torch.device("cpu"))


def test_layout_is_left_out_of_comparisons_and_fingerprints():
    nhwc, nchw = (get_config("kth", "cpu", overrides={"train.channels_last": v}) for v in (True, False))
    assert differences(nhwc, nchw) == []          # the same run, laid out differently
    assert nhwc.fingerprint("train") == nchw.fingerprint("train")   # a checkpoint resumes in the other layout


def test_a_sigterm_right_after_ctrl_c_ends_the_process_without_a_race_warning(tmp_path):
    """Two signals back to back: the second must act (SIGTERM ends the process), not be lost with
    Python's 'Signal 15 ignored due to race condition' (handlers put back while it was pending)."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "two_signals.py"
    script.write_text(textwrap.dedent("""
        import os, signal, time
        from drnet_lib.stopping import stop_requests
        signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal, also under CI's `&`
        both = {signal.SIGINT, signal.SIGTERM}
        with stop_requests() as flag:
            signal.pthread_sigmask(signal.SIG_BLOCK, both)     # both arrive before Python handles either,
            os.kill(os.getpid(), signal.SIGINT)                # as when a second signal follows the first
            os.kill(os.getpid(), signal.SIGTERM)               # at once
            signal.pthread_sigmask(signal.SIG_UNBLOCK, both)
            for _ in range(100):   # handlers run between bytecodes
                time.sleep(0.01)
            print("still running after", flag["signal"])
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGTERM, (done.returncode, done.stdout, done.stderr)
    assert "race condition" not in done.stderr and "still running" not in done.stdout


def test_the_paper_profile_note_on_a_cpu_tells_the_full_schedule_from_a_shortened_run(capsys):
    from drnet_lib.runtime import note_paper_profile_on_cpu

    full = get_config("mnist", "paper")
    note_paper_profile_on_cpu(full, "cpu")
    assert f"its {full.train.iterations:,} DrNet iterations take days on a CPU" in capsys.readouterr().err
    short = get_config("mnist", "paper", overrides={"train.iterations": 2})
    note_paper_profile_on_cpu(short, "cpu")
    err = capsys.readouterr().err
    assert f"this run's 2 of its {full.train.iterations:,} DrNet iterations" in err and "days" not in err
    note_paper_profile_on_cpu(get_config("mnist", "cpu"), "cpu")
    assert capsys.readouterr().err == ""


def test_cpu_threads_sets_torch_and_blas_for_the_block_and_restores_torch_after():
    from threadpoolctl import threadpool_info

    from drnet_lib.runtime import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), cpu_threads(1):   # restored when the block fails too
        raise RuntimeError
    assert torch.get_num_threads() == before
