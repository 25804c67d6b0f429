"""The pose LSTM's predicted motion against the true one, in code space (drnet_lib.kth_pose_codes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from drnet_lib import kth_experiment, kth_pose_codes
from drnet_lib.data.kth import ACTIONS
from drnet_lib.kth_decoder import IN_PLACE, MOVING
from drnet_lib.models import PoseLSTM
from drnet_lib.predict import predict_poses, rollout
from test_kth_experiment import _model_and_two_scenarios


def test_predicted_motion_lowers_the_error_exactly_when_it_points_the_true_way_by_half_its_relative_length():
    g = torch.Generator().manual_seed(0)
    held = torch.randn(64, 5, generator=g)
    true = held[:, None] + torch.randn(64, 7, 5, generator=g)
    predicted = held[:, None] + torch.randn(64, 7, 5, generator=g) * torch.rand(64, 7, 1, generator=g) * 2
    t = kth_pose_codes.motion_terms(predicted, true, held)
    e, d = predicted - held[:, None], true - held[:, None]
    # |q - p|^2 = |d|^2 - (2 e.d - |e|^2)
    torch.testing.assert_close(t["predicted_error"], t["held_error"] - (2 * (e * d).sum(-1) - (e * e).sum(-1)))
    better = t["predicted_error"] < t["held_error"]
    criterion = t["alignment"] > t["predicted_length"] / (2 * t["true_length"])
    assert 0 < better.sum() < better.numel()          # both cases occur, and the criterion tells them apart
    assert torch.equal(better, criterion)


def test_a_perfect_prediction_an_idle_one_and_a_swing_out_of_step():
    held = torch.zeros(3, 4)
    swing = torch.stack([torch.tensor([math.sin(0.5 * (k + 1)), 0.0, 0.0, 1.0]) for k in range(8)])
    true = held[:, None] + swing
    perfect = kth_pose_codes.summarize(kth_pose_codes.motion_terms(true.clone(), true, held))
    assert perfect["alignment"] == pytest.approx([1.0] * 8) and perfect["step_alignment"] == pytest.approx([1.0] * 8)
    assert perfect["length_ratio"] == pytest.approx([1.0] * 8) and perfect["error_ratio"] == pytest.approx([0.0] * 8)
    assert perfect["predicted_length"] == pytest.approx(perfect["true_length"])
    assert perfect["true_length"] == pytest.approx(swing.norm(dim=-1).tolist())
    idle = kth_pose_codes.summarize(kth_pose_codes.motion_terms(held[:, None].expand_as(true), true, held))
    assert idle["error_ratio"] == pytest.approx([1.0] * 8)
    assert idle["alignment"] == [0.0] * 8 and idle["length_ratio"] == [0.0] * 8     # no motion: no direction
    # the same swing half a period late: as long as the true one, pointing the other way
    mirrored = held[:, None] - true
    late = kth_pose_codes.summarize(kth_pose_codes.motion_terms(mirrored, true, held))
    assert late["alignment"] == pytest.approx([-1.0] * 8) and late["length_ratio"] == pytest.approx([1.0] * 8)
    assert late["error_ratio"] == pytest.approx([4.0] * 8)


def _model_lstm_and_clips(clip_count: int = 12):
    """The smoke profile's untrained DrNet and a small pose LSTM (eval mode), the two-scenario bank
    and ``clip_count`` of its test clips long enough for ``eval.metric_steps`` predicted steps."""
    cfg, model, bank = _model_and_two_scenarios()
    torch.manual_seed(1)
    lstm = PoseLSTM(cfg.model.pose_dim, cfg.model.content_dim, 8, 1).eval()
    clips = kth_experiment.test_clips(bank, cfg.lstm.n_past + cfg.eval.metric_steps, clip_count, 0)
    return cfg, model, lstm, bank, clips


def _one_action(bank, clips, cfg, name):
    """The observed and true frames of ``clips``' clips of the action ``name``, all at once."""
    part = clips.subset(torch.nonzero(bank.action[clips.sequence] == ACTIONS.index(name)).flatten())
    n_past, horizon = cfg.lstm.n_past, cfg.eval.metric_steps
    return bank.render(part, torch.arange(n_past)), bank.render(part, torch.arange(n_past, n_past + horizon))


def test_a_rollout_decodes_the_predicted_pose_codes():
    cfg, model, lstm, bank, clips = _model_lstm_and_clips(4)
    observed = bank.render(clips, torch.arange(cfg.lstm.n_past))
    poses, content, skips = predict_poses(model, lstm, observed, 3, cfg.lstm.bn_mode)
    assert poses.shape == (len(clips), 3, cfg.model.pose_dim)
    frames = rollout(model, lstm, observed, 3, cfg.lstm.bn_mode)
    with torch.no_grad():
        for i in range(3):
            torch.testing.assert_close(frames[:, i], model.decode(content, skips, poses[:, i, :, None, None]))


def test_agreement_counts_every_clip_once_and_pools_each_action_over_its_chunks():
    cfg, model, lstm, bank, clips = _model_lstm_and_clips()
    horizon = cfg.eval.metric_steps
    out = kth_pose_codes.pose_code_agreement(model, lstm, bank, clips, cfg, chunk=5)
    actions = bank.action[clips.sequence]
    assert {a: v["clips"] for a, v in out["by_action"].items()} == {
        ACTIONS[a]: int((actions == a).sum()) for a in actions.unique().tolist()}
    # one action measured directly, all its clips at once
    name = next(iter(out["by_action"]))
    observed, truth = _one_action(bank, clips, cfg, name)
    predicted, _, _ = predict_poses(model, lstm, observed, horizon, cfg.lstm.bn_mode)
    with torch.no_grad():
        true = model.encode_pose(truth.flatten(0, 1)).view(*predicted.shape)
        held = model.encode_pose(observed[:, -1]).flatten(1)
    direct = kth_pose_codes.summarize(kth_pose_codes.motion_terms(predicted, true, held))
    for key, curve in direct.items():
        assert out["by_action"][name][key] == pytest.approx(curve, rel=1e-4, abs=1e-6)
    # a group is the plain mean of its actions' curves
    for group, names in (("moving", MOVING), ("in place", IN_PLACE)):
        present = [out["by_action"][n]["error_ratio"] for n in names if n in out["by_action"]]
        assert len(out[group]["error_ratio"]) == horizon
        assert out[group]["error_ratio"] == pytest.approx(list(np.mean(present, axis=0)))


def test_true_code_statistics_read_every_frame_of_every_clip_once():
    from drnet_lib.code_motion import code_statistics

    cfg, model, _, bank, clips = _model_lstm_and_clips()
    out = kth_pose_codes.true_code_statistics(model, bank, clips, cfg, chunk=5)
    frames = bank.render(clips, torch.arange(cfg.lstm.n_past + cfg.eval.metric_steps))
    with torch.no_grad():
        codes = model.encode_pose(frames.flatten(0, 1)).view(*frames.shape[:2], -1)
    assert out["clips"] == len(clips)
    for key, value in code_statistics(codes).items():
        assert out[key] == pytest.approx(value, rel=1e-4), key


def test_scaled_motion_spans_standing_still_to_the_prediction():
    from drnet_lib import kth_decoder
    from drnet_lib.frame_metrics import frame_metrics

    cfg, model, lstm, bank, clips = _model_lstm_and_clips()
    horizon = cfg.eval.metric_steps
    out = kth_pose_codes.scaled_motion_psnr(model, lstm, bank, clips, cfg, scales=(0.0, 0.5, 1.0), chunk=5)
    assert sum(v["clips"] for v in out["by_action"].values()) == len(clips)
    # scale 1 is DrNet's own prediction, scale 0 the last observed frame redrawn (standing still)
    name = next(iter(out["by_action"]))
    observed, truth = _one_action(bank, clips, cfg, name)
    predicted = rollout(model, lstm, observed, horizon, cfg.lstm.bn_mode)
    still = kth_decoder.decode_held_pose(model, observed, horizon, cfg.lstm.bn_mode)
    got = out["by_action"][name]["psnr_mean"]
    assert got["1"] == pytest.approx(float(frame_metrics(predicted, truth)["psnr"].mean()), abs=1e-3)
    assert got["0"] == pytest.approx(float(frame_metrics(still, truth)["psnr"].mean()), abs=1e-3)
    for group, names in (("moving", MOVING), ("in place", IN_PLACE)):
        present = [out["by_action"][n]["psnr_mean"]["0.5"] for n in names if n in out["by_action"]]
        assert out[group]["0.5"] == pytest.approx(float(np.mean(present)))
