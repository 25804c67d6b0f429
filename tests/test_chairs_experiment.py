"""Chairs as turntable sweeps, and the chairs experiment's measurements on known inputs."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch

from drnet_lib import chairs_experiment as ce
from drnet_lib.config import get_config
from drnet_lib.frame_metrics import PSNR_CAP_DB
from drnet_lib.data.chairs import ChairsTree
from drnet_lib.data.sweeps import ClipStarts, chair_sweeps

from conftest import untrained_run


@pytest.fixture
def tree():
    """10 chairs x 2 elevations x 12 azimuths of 8x8 RGB noise (distinct views)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 2, 12, 8, 8, 3), dtype=np.uint8)
    return ChairsTree(images, tuple(f"chair{i:02d}" for i in range(10)), ("020", "030"), None)


def test_chair_sweeps_split_by_sorted_id_and_keep_views_in_order(tree):
    train, test = chair_sweeps(tree, "train", 8), chair_sweeps(tree, "test", 8)
    assert len(train) == 8 * 2 and len(test) == 2 * 2
    assert set(train.chair.tolist()) == set(range(8)) and set(test.chair.tolist()) == {8, 9}
    s = 3                                           # chair 9, elevation 1
    assert (int(test.chair[s]), int(test.elevation[s])) == (9, 1)
    frames = test.frames[s].permute(0, 2, 3, 1).numpy()                # (A, H, W, C)
    assert np.array_equal(frames, tree.images[9, 1])
    with pytest.raises(ValueError, match="unknown split"):
        chair_sweeps(tree, "validation", 8)


def test_nearest_azimuth_finds_the_true_views(tree):
    bank = chair_sweeps(tree, "test", 8)
    factors = ClipStarts(torch.tensor([0, 3]), torch.tensor([5, 11]))
    truth = bank.render(factors, torch.arange(6))
    sweeps = bank.render(ClipStarts(factors.sequence, torch.zeros(2, dtype=torch.long)), torch.arange(12))
    found = ce.nearest_azimuth(truth, sweeps)
    assert found.tolist() == [[5, 6, 7, 8, 9, 10], [11, 0, 1, 2, 3, 4]]


def test_azimuth_probe_reads_the_angle_from_an_informative_code():
    rng = np.random.default_rng(0)
    az = rng.integers(0, 36, 400)
    informative = np.c_[ce.azimuth_circle(az, 36), rng.normal(size=(400, 3)) * 0.1]
    noise = rng.normal(size=(400, 5))
    assert ce.azimuth_r2(informative[:300], az[:300], informative[300:], az[300:], 36) > 0.95
    assert ce.azimuth_r2(noise[:300], az[:300], noise[300:], az[300:], 36) < 0.1
    # no jump at the wrap: 350 and 0 degrees are neighbours on the circle
    near = ce.azimuth_circle(np.array([35, 0]), 36)
    assert np.linalg.norm(near[0] - near[1]) < 0.2


def test_identity_probe_generalises_to_unseen_views_only_when_the_code_names_the_chair():
    rng = np.random.default_rng(1)
    chair = np.repeat(np.arange(6), 36)
    azimuth = np.tile(np.arange(36), 6)
    named = np.eye(6)[chair] * 3 + rng.normal(size=(216, 6)) * 0.3
    assert ce.identity_accuracy(named, chair, azimuth) > 0.95
    assert ce.identity_accuracy(rng.normal(size=(216, 6)), chair, azimuth) < 0.4


# -- rollouts: which generated frames count as turning the right way ------------------------------

def _turning(monkeypatch, bank, factors, deltas, cfg, chunk=16):
    """rollout_turning with predict.rollout replaced by the true views of each clip shifted by
    ``deltas`` (clips, steps) azimuth steps: the nearest view of generated frame t is then
    expected(t) + deltas[:, t], so which frames match is known."""
    cursor = [0]

    def shifted_views(model, lstm, observed, steps, bn_mode="eval"):
        part = factors.subset(slice(cursor[0], cursor[0] + len(observed)))
        times = torch.arange(cfg.lstm.n_past, cfg.lstm.n_past + steps) + deltas[cursor[0]:cursor[0] + len(part)]
        cursor[0] += len(part)
        return bank.render(part, times)   # render wraps round the turntable

    monkeypatch.setattr(ce, "rollout", shifted_views)
    return ce.rollout_turning(None, None, bank, factors, cfg, steps=deltas.shape[1], chunk=chunk)


def _chairs_cfg(**overrides):
    return get_config("suncg", "smoke", overrides={"eval.rollout_checkpoints": (1, 2, 3, 4, 5, 6, 36),
                                                   "eval.metric_steps": 3, **overrides})


def test_rollout_turning_counts_one_azimuth_step_either_way_as_a_match_across_the_wrap(monkeypatch, tree):
    bank = chair_sweeps(tree, "test", 8)          # A = 12 azimuths
    A, n_past = bank.num_azimuths, 5
    # clip 0 expects azimuth 0 at step 3 (5 + 5 + 2 = 12) and is shown A - 1 there (delta -1);
    # clip 1 expects azimuth 0 at step 4 (4 + 5 + 3 = 12) and is shown 2 there (delta +2)
    factors = ClipStarts(torch.tensor([0, 1, 2, 3]), torch.tensor([5, 4, 0, 11]))
    deltas = torch.tensor([0, 1, -1, 2, -2, A // 2]).expand(4, -1)
    cfg = _chairs_cfg(**{"lstm.n_past": n_past})
    metrics, samples = _turning(monkeypatch, bank, factors, deltas, cfg)
    # checkpoints past the rollout's 6 steps (36) are left out, not read off its end
    assert metrics["rollout.azimuth_match"] == {1: 1.0, 2: 1.0, 3: 1.0, 4: 0.0, 5: 0.0, 6: 0.0}
    assert metrics["rollout.azimuth_match_mean"] == pytest.approx(0.5)
    # PSNR/SSIM over the first eval.metric_steps steps; step 1 shows exactly the true view
    assert len(metrics["rollout.psnr"]) == len(metrics["rollout.copy_last_ssim"]) == 3
    assert metrics["rollout.psnr"][0] == PSNR_CAP_DB and metrics["rollout.psnr"][1] < PSNR_CAP_DB
    assert samples["generated"].shape[:2] == (4, 6)


def test_rollout_turning_scores_the_share_of_clips_over_all_chunks(monkeypatch, tree):
    """Clips 0 and 1 turn exactly; clips 2 and 3 are two steps ahead from step 3 on. With chunks
    of two clips the matches of both chunks must be pooled: half the clips from step 3."""
    bank = chair_sweeps(tree, "test", 8)
    factors = ClipStarts(torch.tensor([3, 2, 1, 0]), torch.tensor([9, 0, 6, 3]))
    deltas = torch.zeros(4, 5, dtype=torch.long)
    deltas[2:, 2:] = 2
    metrics, _ = _turning(monkeypatch, bank, factors, deltas, _chairs_cfg(), chunk=2)
    assert metrics["rollout.azimuth_match"] == {1: 1.0, 2: 1.0, 3: 0.5, 4: 0.5, 5: 0.5}


def test_rollout_clips_are_a_fixed_draw_from_the_test_seed(tree):
    """Every run and machine must roll out the same test sequences: the pick depends on
    data.test_seed only, not on the training seed, the global RNG or which bank object holds them."""
    cfg = get_config("suncg", "smoke", overrides={"eval.rollout_clips": 5})
    torch.manual_seed(1)
    first = ce.rollout_clips(chair_sweeps(tree, "train", 8), cfg)
    torch.manual_seed(2)
    again = ce.rollout_clips(chair_sweeps(tree, "train", 8), get_config("suncg", "smoke", seed=3,
                                                                         overrides={"eval.rollout_clips": 5}))
    assert torch.equal(first.sequence, again.sequence) and torch.equal(first.start, again.start)
    assert len(first) == 5 and len(set(first.sequence.tolist())) == 5   # five distinct sequences
    assert first.start.tolist() == [0] * 5                              # each from azimuth 0
    other = ce.rollout_clips(chair_sweeps(tree, "train", 8),
                             get_config("suncg", "smoke", overrides={"eval.rollout_clips": 5, "data.test_seed": 7}))
    assert other.sequence.tolist() != first.sequence.tolist()


# -- probes: which code each headline key reads ---------------------------------------------------

class MarkerCodes(torch.nn.Module):
    """Codes read off marker pixels: the pose code is (sin, cos) of the azimuth, the content code
    one-hot of the chair; no other information."""

    def __init__(self, num_azimuths):
        super().__init__()
        self.num_azimuths = num_azimuths
        self.anchor = torch.nn.Parameter(torch.zeros(1))   # encode_sweeps reads the device from it

    def encode_pose(self, x):
        angle = 2 * np.pi * (x[:, 0, 0, 0] * 255 / 20).round() / self.num_azimuths
        return torch.stack([angle.sin(), angle.cos()], 1)[:, :, None, None]

    def encode_content(self, x):
        chair = (x[:, 0, 0, 1] * 255 / 20).round().long()
        return torch.nn.functional.one_hot(chair, 10).float()[:, :, None, None], []


def test_chair_probes_read_azimuth_from_the_pose_code_and_identity_from_the_content_code(tree):
    images = tree.images.copy()
    images[..., 0, 0, 0] = np.arange(12)[None, None, :] * 20        # azimuth marker
    images[..., 0, 1, 0] = np.arange(10)[:, None, None] * 20        # chair marker
    marked = dataclasses.replace(tree, images=images)
    train, test = chair_sweeps(marked, "train", 8), chair_sweeps(marked, "test", 8)
    out = ce.chair_probes(MarkerCodes(12), train, test)
    assert out["probe.pose_to_azimuth_r2"] > 0.95
    assert out["probe.content_to_azimuth_r2"] < 0.1
    assert out["probe.content_to_identity"] == 1.0
    # two test chairs: chance is 1/2, and a pose code identical for both chairs sits exactly on it
    assert out["probe.identity_chance"] == 0.5
    assert out["probe.pose_to_identity"] == pytest.approx(0.5)
    assert out["probe.identity_content_minus_pose"] == pytest.approx(0.5)


def test_recorded_metrics_of_a_chairs_run_holds_every_chairs_claim(tmp_path, monkeypatch):
    """``drnet train --record`` on the chairs (record.recorded_metrics) probes the codes and rolls
    out the fixed test clips for eval.rollout_steps: every SUNCG claim finds its key."""
    from drnet_lib.claims import SUNCG_CLAIMS, verdicts
    from drnet_lib.record import measure_before_lstm, recorded_metrics
    from drnet_lib.models import PoseLSTM

    cfg, trainer = untrained_run("suncg", tmp_path)
    lstm = types.SimpleNamespace(lstm=PoseLSTM(cfg.model.pose_dim, cfg.model.content_dim, cfg.lstm.hidden,
                                               cfg.lstm.layers), iteration=1, wall_s=1.0)
    rolled = []
    real_turning = ce.rollout_turning

    def spy(model_, lstm_, test_bank, factors, cfg_, steps, **kw):
        rolled.append((test_bank, factors, steps))
        return real_turning(model_, lstm_, test_bank, factors, cfg_, steps, **kw)

    monkeypatch.setattr(ce, "rollout_turning", spy)
    with pytest.raises(ValueError, match="measure_before_lstm must run before the pose LSTM trains"):
        recorded_metrics(cfg, trainer, lstm)   # the probes would read statistics the LSTM moved
    metrics = recorded_metrics(cfg, trainer, lstm, measure_before_lstm(cfg, trainer))
    assert [c.key for c, _, _ in verdicts("suncg", metrics)] == [c.key for c in SUNCG_CLAIMS]
    ((test_bank, factors, steps),) = rolled
    expected = ce.rollout_clips(test_bank, cfg)
    assert torch.equal(factors.sequence, expected.sequence) and steps == cfg.eval.rollout_steps
    assert set(metrics["rollout.azimuth_match"]) == set(cfg.eval.rollout_checkpoints)
