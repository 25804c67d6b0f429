"""MNIST rollout scoring (predict.rollout_metrics): identity at the checkpoints, PSNR and SSIM per step.

The pose LSTM is replaced by stub rollouts whose frames are known (the true future, or a grey
frame no digit looks like), and the digit judge by an oracle that names exactly the true frames,
so every score has a value fixed by construction and a mis-wired step, label or weight shows.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drnet_lib import predict
from drnet_lib.config import get_config
from drnet_lib.frame_metrics import PSNR_CAP_DB
from drnet_lib.models import DrNet, PoseLSTM

N_PAST, STEPS, CHECKPOINTS, METRIC_STEPS = 5, 8, (2, 8), 6
UNKNOWN = 10   # the oracle's answer for a frame that is no true digit frame: never a digit label


def _cfg():
    return get_config("mnist", "smoke", overrides={
        "lstm.n_past": N_PAST, "eval.rollout_steps": STEPS, "eval.rollout_checkpoints": CHECKPOINTS,
        "eval.metric_steps": METRIC_STEPS})


class OracleJudge(nn.Module):
    """Names the digit of any single-digit channel rendered from ``factors`` (looked up by its
    exact pixels), and answers UNKNOWN for anything else."""

    def __init__(self, bank, factors):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))   # judge_predict reads the device from a parameter
        frames = bank.render(factors, torch.arange(factors.positions.shape[1]))   # (B, T, C, S, S)
        self.table = {}
        for b in range(len(factors)):
            for d in range(bank.num_digits):
                for frame in frames[b, :, d]:
                    self.table[frame.numpy().tobytes()] = int(factors.labels[b, d])

    def forward(self, x):
        answers = torch.tensor([self.table.get(x[i, 0].numpy().tobytes(), UNKNOWN) for i in range(len(x))])
        return nn.functional.one_hot(answers, UNKNOWN + 1).float()


@pytest.fixture
def clips(test_bank):
    """8 Moving MNIST test clips long enough to hold the whole rollout's true future."""
    return test_bank.sample_factors(8, torch.Generator().manual_seed(0), N_PAST + STEPS)


def _stub_model(monkeypatch, bank, factors, wrong):
    """No model: the rollout is :func:`_stub_rollout`'s, and the decoder redraws the true frames
    exactly (the oracle frames that the motion ceiling is measured on)."""
    monkeypatch.setattr(predict, "rollout", _stub_rollout(bank, factors, wrong))
    monkeypatch.setattr(predict, "decode_true_poses", lambda model, observed, truth, bn_mode: truth)


def _stub_rollout(bank, factors, wrong):
    """A stand-in for predict.rollout: the true future of each clip, except a uniform grey frame
    where ``wrong(clip index, step index)``. Chunks arrive in order, so a cursor tracks the clips."""
    cursor = [0]

    def rollout(model, lstm, observed, steps, bn_mode="eval"):
        part = factors.subset(slice(cursor[0], cursor[0] + len(observed)))
        # rollout_metrics must condition on the observed frames of these clips, for the configured steps
        assert torch.equal(observed, bank.render(part, torch.arange(N_PAST)))
        assert steps == STEPS
        frames = bank.render(part, torch.arange(N_PAST, N_PAST + steps)).clone()
        for b in range(len(part)):
            for t in range(steps):
                if wrong(cursor[0] + b, t):
                    frames[b, t] = 0.5
        cursor[0] += len(part)
        return frames

    return rollout


def test_a_rollout_equal_to_the_truth_scores_best_at_every_checkpoint_and_step(monkeypatch, test_bank, clips):
    _stub_model(monkeypatch, test_bank, clips, lambda b, t: False)
    metrics, samples = predict.rollout_metrics(None, None, test_bank, clips, OracleJudge(test_bank, clips), _cfg())
    # the checkpoint keys are the configured steps, and the oracle names every true digit
    assert metrics["rollout.identity_accuracy"] == {2: 1.0, 8: 1.0}
    # PSNR/SSIM over the first eval.metric_steps predicted frames: identical frames hit the cap
    assert metrics["rollout.psnr"] == [PSNR_CAP_DB] * METRIC_STEPS
    assert metrics["rollout.ssim"] == [1.0] * METRIC_STEPS
    # the copy-last baseline is scored on the same steps, and moving digits are not the last frame
    assert len(metrics["rollout.copy_last_psnr"]) == len(metrics["rollout.copy_last_ssim"]) == METRIC_STEPS
    assert max(metrics["rollout.copy_last_psnr"]) < PSNR_CAP_DB
    assert samples["generated"].shape[:2] == (4, STEPS) and samples["truth"].shape[:2] == (4, METRIC_STEPS)
    assert torch.equal(samples["observed"], test_bank.render(clips.subset(slice(0, 4)), torch.arange(N_PAST)))


def test_frames_that_go_wrong_after_step_four_lose_only_the_later_checkpoint_and_steps(monkeypatch, test_bank, clips):
    """Step s of the rollout is generated frame s - 1 (1-indexed checkpoints, as rollout_identity
    and the claim 'rollout.identity_accuracy.500' read them)."""
    judge = OracleJudge(test_bank, clips)
    _stub_model(monkeypatch, test_bank, clips, lambda b, t: t >= 4)
    metrics, _ = predict.rollout_metrics(None, None, test_bank, clips, judge, _cfg())
    assert metrics["rollout.identity_accuracy"] == {2: 1.0, 8: 0.0}
    psnr, ssim = metrics["rollout.psnr"], metrics["rollout.ssim"]
    assert psnr[:4] == [PSNR_CAP_DB] * 4 and max(psnr[4:]) < 20
    assert ssim[:4] == [1.0] * 4 and max(ssim[4:]) < 0.5
    # the copy-last baseline is scored against the truth, so a worse rollout leaves it as it was
    _stub_model(monkeypatch, test_bank, clips, lambda b, t: False)
    perfect, _ = predict.rollout_metrics(None, None, test_bank, clips, judge, _cfg())
    for key in ("rollout.copy_last_psnr", "rollout.copy_last_ssim"):
        assert metrics[key] == perfect[key]


def test_a_rollout_that_freezes_has_no_motion_at_the_checkpoints_past_it(monkeypatch, test_bank, clips):
    """Grey from step 4 on: the window of lstm.n_past frames ending at step 8 (frames 3..7) does not
    change, so its motion ratio is 0; at step 2 the true digits still move."""
    _stub_model(monkeypatch, test_bank, clips, lambda b, t: t >= 3)
    metrics, _ = predict.rollout_metrics(None, None, test_bank, clips, OracleJudge(test_bank, clips), _cfg())
    motion = metrics["rollout.motion_ratio"]
    assert set(motion) == set(CHECKPOINTS) and motion[8] == 0.0 and motion[2] > 0.3
    assert metrics["rollout.oracle_motion_ratio"] == 1.0    # the decoder redraws the truth exactly
    assert metrics["rollout.motion_of_oracle"] == motion


def test_identity_accuracy_is_the_share_of_all_clips_whatever_the_chunks(monkeypatch, test_bank, clips):
    """Three of eight clips are wrong, all in the first chunk of three: the score is 5/8 of the
    clips, not a mean of the chunks' scores (0, 1, 1) nor a sum of per-chunk shares."""
    _stub_model(monkeypatch, test_bank, clips, lambda b, t: b < 3)
    metrics, _ = predict.rollout_metrics(None, None, test_bank, clips, OracleJudge(test_bank, clips), _cfg(),
                                         chunk=3)
    assert metrics["rollout.identity_accuracy"] == {2: pytest.approx(5 / 8), 8: pytest.approx(5 / 8)}


def test_rollout_metrics_runs_a_real_pose_lstm_to_the_configured_length(test_bank, clips):
    """Unstubbed: an untrained tiny DrNet and pose LSTM go through the real rollout; every score
    is a probability or a finite decibel value, one per checkpoint or metric step."""
    cfg = _cfg()
    torch.manual_seed(0)
    model = DrNet(cfg.model).eval()
    lstm = PoseLSTM(cfg.model.pose_dim, cfg.model.content_dim, cfg.lstm.hidden, cfg.lstm.layers)
    metrics, samples = predict.rollout_metrics(model, lstm, test_bank, clips, OracleJudge(test_bank, clips), cfg)
    assert set(metrics["rollout.identity_accuracy"]) == set(CHECKPOINTS)
    assert all(0.0 <= v <= 1.0 for v in metrics["rollout.identity_accuracy"].values())
    assert metrics["rollout.oracle_motion_ratio"] >= 0.0 and set(metrics["rollout.motion_ratio"]) == set(CHECKPOINTS)
    for key in ("rollout.psnr", "rollout.ssim", "rollout.copy_last_psnr", "rollout.copy_last_ssim"):
        assert len(metrics[key]) == METRIC_STEPS and all(torch.isfinite(torch.tensor(metrics[key])))
    assert samples["generated"].shape == (4, STEPS, *test_bank.render(clips.subset(slice(0, 1)),
                                                                      torch.arange(1)).shape[2:])


def test_scored_steps_stop_at_the_rollouts_end_when_metric_steps_reach_past_it(monkeypatch, test_bank):
    """eval.metric_steps longer than the rollout scores the rollout's steps (a shape error before)."""
    long_clips = test_bank.sample_factors(4, torch.Generator().manual_seed(1), N_PAST + STEPS + 4)
    _stub_model(monkeypatch, test_bank, long_clips, lambda b, t: False)
    cfg = get_config("mnist", "smoke", overrides={
        "lstm.n_past": N_PAST, "eval.rollout_steps": STEPS, "eval.rollout_checkpoints": CHECKPOINTS,
        "eval.metric_steps": STEPS + 3})
    metrics, _ = predict.rollout_metrics(None, None, test_bank, long_clips, OracleJudge(test_bank, long_clips), cfg)
    assert metrics["rollout.psnr"] == [PSNR_CAP_DB] * STEPS
