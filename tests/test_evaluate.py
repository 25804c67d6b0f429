"""Tests of drnet_lib.evaluate (probes, judge, swaps, rollouts) and drnet_lib.frame_metrics (PSNR/SSIM, motion), smoke profile, seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
import torch.nn.functional as F
from torch import nn

from drnet_lib.classification import chance_accuracy
from drnet_lib.config import get_config
from drnet_lib.data.mnist import load_digits
from drnet_lib.data.moving_mnist import ClipFactors, MovingMNIST, frozen_test_factors
from drnet_lib.evaluate import (
    channel_centroids, encode_clips, fit_probes, judge_accuracy, judge_predict, probe_position, rollout_identity,
    sample_swap_pairs, swap_scores, train_judge,
)
from drnet_lib.frame_metrics import PSNR_CAP_DB, frame_metrics, frame_psnr

JUDGE_ITERATIONS, JUDGE_BATCH = 150, 16  # ~3-4 s on one busy core; about 0.75 on test frames


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The machine is shared with training runs; two intra-op threads competing with them were
    # measured ~4x slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cfg():
    return get_config("mnist", "smoke")


@pytest.fixture(scope="module")
def banks(cfg):
    train = MovingMNIST(*load_digits("embedded", "train"), cfg.data, cfg.model)
    test = MovingMNIST(*load_digits("embedded", "test"), cfg.data, cfg.model)
    return train, test


@pytest.fixture(scope="module")
def test_factors(banks):
    return frozen_test_factors(banks[1], 32, seed=1234)


@pytest.fixture(scope="module")
def model(cfg):
    from drnet_lib.models import DrNet
    torch.manual_seed(0)
    return DrNet(cfg.model)


@pytest.fixture(scope="module")
def judge(banks):
    return train_judge(banks[0], JUDGE_ITERATIONS, JUDGE_BATCH, torch.Generator().manual_seed(0))


# -- (a) encode_clips -----------------------------------------------------------------------------
def test_encode_clips_shapes_eval_mode_and_restore(model, banks, test_factors, cfg):
    bank, factors = banks[1], test_factors.subset(slice(0, 8))
    times = torch.tensor([0, 5, 10])
    model.train()
    bn = model.content_encoder.stages[0][1]
    running = bn.running_mean.clone()
    out = encode_clips(model, bank, factors, times, batch_size=3)  # batches not dividing N
    assert model.training, "encode_clips must restore train mode"
    assert torch.equal(bn.running_mean, running), "BatchNorm statistics moved: not in eval mode"
    dc, dp, D = cfg.model.content_dim, cfg.model.pose_dim, cfg.data.num_digits
    skip_widths = sum(s.shape[1] for s in model.encode_content(bank.render(factors, times[:1])[:, 0])[1])
    assert out["content"].shape == (24, dc) and out["pose"].shape == (24, dp)
    assert out["content_pooled_skips"].shape == (24, dc + skip_widths)
    np.testing.assert_array_equal(out["content_pooled_skips"][:, :dc], out["content"])
    np.testing.assert_array_equal(out["labels"], factors.labels.repeat_interleave(3, 0).numpy())
    assert out["centers"].shape == (24, D * 2)
    # Row i*K + k is clip i at times[k]: check clip 2, time 10 against a direct computation.
    row = 2 * 3 + 2
    np.testing.assert_allclose(out["centers"][row], bank.centers(factors, times)[2, 2].flatten().numpy())
    model.eval()
    with torch.no_grad():
        frame = bank.render(factors.subset(slice(2, 3)), times[2:])[:, 0]
        np.testing.assert_allclose(out["pose"][row], model.encode_pose(frame).flatten().numpy(), atol=1e-5)
    encode_clips(model, bank, factors, times)
    assert not model.training, "encode_clips must leave an eval-mode model in eval mode"


def test_encode_then_probe_runs_end_to_end(model, banks, test_factors):
    train_f = banks[0].sample_factors(48, torch.Generator().manual_seed(3))
    times = torch.tensor([0, 7])
    res = fit_probes(encode_clips(model, banks[0], train_f, times),
                     encode_clips(model, banks[1], test_factors, times), content_has_skips=True)
    assert len(res) == 7 and all(np.isfinite(v) for v in res.values())
    assert all(0 <= res[f"probe.{r}_to_identity"] <= 1 for r in ("content", "pose", "content_vector"))
    # A pose code that is each channel's ink centroid carries the position by construction: the
    # probe finds it only if encode_clips pairs every row's centres with that row's frame.
    centroid = CentroidPose(model)
    res = fit_probes(encode_clips(centroid, banks[0], train_f, times),
                     encode_clips(centroid, banks[1], test_factors, times), content_has_skips=True)
    assert res["probe.pose_to_position_r2"] > 0.9


class CentroidPose(nn.Module):
    """The model's content encoder, with the ink centroid (row, col) of each digit channel as the
    pose code."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def encode_content(self, x):
        return self.model.encode_content(x)

    def encode_pose(self, x):
        return channel_centroids(x, 2)[0].flatten(1)


# -- (b) probes on synthetic codes -----------------------------------------------------------------
def synthetic_codes(n: int, rng: np.random.Generator) -> dict:
    """'content' carries the labels (one-hot + noise), 'pose' only the centres (+ noise)."""
    labels = rng.integers(0, 10, size=(n, 2))
    centers = rng.uniform(7.5, 23.5, size=(n, 4))
    onehot = np.concatenate([np.eye(10)[labels[:, d]] for d in range(2)], axis=1)
    content = onehot + 0.2 * rng.standard_normal((n, 20))
    pose = np.concatenate([centers / 8 + 0.05 * rng.standard_normal((n, 4)),
                           rng.standard_normal((n, 4))], axis=1)
    # the pooled skip features add what the vector lacks: the digits' positions
    skips = np.concatenate([content, centers / 8 + 0.05 * rng.standard_normal((n, 4))], axis=1)
    return {"content": content, "pose": pose, "content_pooled_skips": skips,
            "labels": labels, "centers": centers}


def test_fit_probes_reads_the_right_block():
    rng = np.random.default_rng(0)
    train, test = synthetic_codes(800, rng), synthetic_codes(400, rng)
    res = fit_probes(train, test, content_has_skips=False)
    assert res["probe.content_to_identity"] > 0.9
    assert res["probe.content_vector_to_identity"] > 0.9
    assert res["probe.pose_to_identity"] < 0.25          # chance 0.1
    assert abs(res["probe.identity_chance"] - 0.1) < 0.08
    assert res["probe.pose_to_position_r2"] > 0.9
    # A probe that finds no position predicts about the training mean, so it scores about 0, not
    # far below: R² is taken about the true test centres, not about the probe's predictions.
    assert -0.1 < res["probe.content_to_position_r2"] < 0.1
    assert -0.1 < res["probe.content_vector_to_position_r2"] < 0.1
    # with skips the content code is the vector plus pooled skips, which here also carry position
    with_skips = fit_probes(train, test, content_has_skips=True)
    assert with_skips["probe.content_to_position_r2"] > 0.9
    assert with_skips["probe.content_vector_to_position_r2"] < 0.1
    assert with_skips["probe.content_to_identity"] > 0.9


def test_probe_position_scores_r2_about_the_true_centres():
    rng = np.random.default_rng(0)
    # Noise-free affine codes of the centres: the ridge probe learns the inverse map almost exactly
    # (the smallest alpha wins), so its test prediction is the centres the codes were made from.
    seen_train = rng.uniform(7.5, 23.5, size=(300, 4))
    seen_test = rng.uniform(7.5, 23.5, size=(200, 4))
    true_test = seen_test + 5 * rng.standard_normal(seen_test.shape)   # the truth the codes missed
    pred = seen_test
    # R² about the truth: 1 - SS_res / SS_tot(truth), per coordinate, then the mean (about 0.46).
    # About the prediction instead it would be 1 - SS_res / SS_tot(pred), far lower (about -0.1).
    ss_res = ((true_test - pred) ** 2).sum(axis=0)
    ss_tot = ((true_test - true_test.mean(axis=0)) ** 2).sum(axis=0)
    expected = float(np.mean(1 - ss_res / ss_tot))
    swapped = float(np.mean(1 - ss_res / ((pred - pred.mean(axis=0)) ** 2).sum(axis=0)))
    assert expected - swapped > 0.3, "the constructed case must tell the two orders apart"
    got = probe_position(3 * seen_train - 5, seen_train, 3 * seen_test - 5, true_test)
    assert got == pytest.approx(expected, abs=1e-3)


def test_chance_answers_each_digit_slot_with_its_own_most_frequent_training_digit():
    train = np.array([[3, 7], [3, 7], [5, 7], [3, 1]])         # slot 0: mostly 3; slot 1: mostly 7
    test = np.array([[3, 7], [5, 7], [3, 2]])                  # slot 0: 2 of 3 right; slot 1: 2 of 3
    assert chance_accuracy(train, test) == pytest.approx(4 / 6)
    assert chance_accuracy(train[:, 0], test[:, 0]) == pytest.approx(2 / 3)   # one slot: plain labels


# -- (c) the judge ---------------------------------------------------------------------------------
def test_judge_beats_chance_on_test_digits(judge, banks, test_factors):
    assert not judge.training
    acc = judge_accuracy(judge, banks[1], test_factors, torch.arange(0, 20, 4))
    assert acc >= 0.6, f"judge accuracy {acc:.3f} on held-out digits (chance 0.1)"


def test_judge_predict_shape_and_any_size(judge):
    out = judge_predict(judge, torch.rand(5, 3, 64, 64), num_digits=2)
    assert out.shape == (5, 2) and out.dtype == torch.int64
    assert judge_predict(judge, torch.rand(2, 3, 16, 16), num_digits=2).shape == (2, 2)


class BrightestPixelJudge(nn.Module):
    """Names class round(10 * the channel's brightest pixel): 3 for a square of 0.3, 6 for one of
    0.6, 0 for a dark channel."""

    def forward(self, x):
        return F.one_hot((x.amax(dim=(1, 2, 3)) * 10).round().long(), 10).float()


def test_judge_accuracy_unoccluded_scores_each_digit_drawn_in_front(cfg):
    # Two flat squares the size of a digit, of brightness 0.3 and 0.6, so the judge above knows
    # them apart and a digit hidden behind the other leaves its channel dark.
    squares = np.stack([np.full((16, 16), 77), np.full((16, 16), 153)]).astype(np.uint8)
    bank = MovingMNIST(squares, [3, 6], cfg.data, cfg.model)
    # Frame 0: the squares coincide; frame 1: they lie apart. Clip 0 has slot 0 in front and the
    # true labels; clip 1 has slot 1 in front and a wrong label (5) for slot 1.
    positions = torch.tensor([[[0, 0], [0, 0]], [[0, 0], [16, 16]]]).expand(2, -1, -1, -1)
    factors = ClipFactors(torch.tensor([[0, 1], [0, 1]]), torch.tensor([[3, 6], [3, 5]]),
                          positions, torch.tensor([0, 1]))
    judge, times = BrightestPixelJudge(), torch.tensor([0, 1])
    # As rendered, the back square of frame 0 is dark: clip 0 scores 3 of 4, clip 1 only 1 of 4
    # (its slot 0 is hidden in frame 0, its slot 1 is named 6, not 5).
    assert judge_accuracy(judge, bank, factors, times) == pytest.approx(4 / 8)
    # Unoccluded, each slot is drawn in front in turn and read from its own channel: every slot-0
    # answer is right, slot 1 is right in clip 0 only. Batches of one clip give the same.
    for batch_size in (256, 1):
        clean = judge_accuracy(judge, bank, factors, times, batch_size=batch_size, occluded=False)
        assert clean == pytest.approx(6 / 8)
    assert torch.equal(factors.front, torch.tensor([0, 1])), "the caller's clips must not change"


# -- (d) swaps ---------------------------------------------------------------------------------------
class FakeSwapModel(nn.Module):
    """Recognises its input among the frames of the test clips and passes (clip, time) through the
    codes; decode renders the digits of the content clip (``"ideal"``) or of the pose clip
    (``"leaky"``) at the pose clip's positions, or the content clip at its own pose (``"frozen"``)."""

    def __init__(self, bank: MovingMNIST, factors: ClipFactors, mode: str):
        super().__init__()
        self.bank, self.factors, self.mode = bank, factors, mode
        self.T = factors.positions.shape[1]
        table = bank.render(factors, torch.arange(self.T)).flatten(0, 1).flatten(1).double()
        self.w = torch.randn(table.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        self.keys, self.table = table @ self.w, table
        self.modes_seen = []

    def _index(self, x):
        self.modes_seen.append(self.training)
        idx = (x.flatten(1).double() @ self.w)[:, None].sub(self.keys).abs().argmin(1)
        assert torch.equal(self.table[idx].float(), x.flatten(1)), "fake: frame not found"
        return idx.double().view(-1, 1, 1, 1)

    def encode_content(self, x):
        return self._index(x), []

    def encode_pose(self, x):
        return self._index(x)

    def decode(self, content, skips, pose):
        a, b = content.flatten().long(), pose.flatten().long()
        digits = b // self.T if self.mode == "leaky" else a // self.T
        where = a if self.mode == "frozen" else b
        f = self.factors
        mixed = ClipFactors(f.digit_index[digits], f.labels[digits], f.positions[where // self.T],
                            f.front[digits])
        return self.bank.render(mixed, (where % self.T)[:, None])[:, 0]


def test_swap_scores_on_identity_preserving_fake(judge, banks, test_factors):
    bank = banks[1]
    fake = FakeSwapModel(bank, test_factors, "ideal").train()
    res = swap_scores(fake, bank, test_factors, judge, pairs=64, generator=torch.Generator().manual_seed(5))
    assert fake.training and fake.modes_seen and not any(fake.modes_seen)
    # Recompute the composite frames from the same pairs: the score is the judge's accuracy on them.
    a, b, t_a, t_b = sample_swap_pairs(len(test_factors), 64, 20, torch.Generator().manual_seed(5))
    assert torch.all(a != b)
    f = test_factors
    mixed = ClipFactors(f.digit_index[a], f.labels[a], f.positions[b], f.front[a])
    comp = bank.render(mixed, t_b[:, None])[:, 0]
    expected = (judge_predict(judge, comp, 2) == f.labels[a]).float().mean().item()
    assert res["swap.identity_accuracy"] == pytest.approx(expected)
    assert res["swap.identity_accuracy"] >= 0.6
    assert res["swap.identity_follows_b"] < 0.35
    assert res["swap.position_error_px"] < 4.0 and res["swap.empty_channel_fraction"] == 0.0
    assert res["swap.position_error_px_real"] < 4.0


def test_swap_scores_detect_leaky_and_frozen_fakes(judge, banks, test_factors):
    bank, g = banks[1], (lambda: torch.Generator().manual_seed(5))
    ideal = swap_scores(FakeSwapModel(bank, test_factors, "ideal"), bank, test_factors, judge, 64, g())
    leaky = swap_scores(FakeSwapModel(bank, test_factors, "leaky"), bank, test_factors, judge, 64, g())
    frozen = swap_scores(FakeSwapModel(bank, test_factors, "frozen"), bank, test_factors, judge, 64, g())
    assert leaky["swap.identity_follows_b"] > 0.6 and leaky["swap.identity_accuracy"] < 0.35
    assert frozen["swap.position_error_px"] > ideal["swap.position_error_px"] + 3.0


def test_channel_centroids():
    x = torch.zeros(1, 3, 8, 8)
    x[0, 0, 3, 5] = 1.0
    cent, empty = channel_centroids(x, 2)
    assert cent[0, 0].tolist() == [3.0, 5.0] and cent[0, 1].tolist() == [3.5, 3.5]
    assert empty.tolist() == [[False, True]]
    hazy = x + 0.2  # a uniform haze is removed by the median subtraction
    assert channel_centroids(hazy, 1)[0][0, 0].tolist() == [3.0, 5.0]


# -- (e) frame metrics -----------------------------------------------------------------------------
def test_frame_metrics_identical_noisy_and_exact(banks, test_factors):
    truth = banks[1].render(test_factors.subset(slice(0, 3)), torch.arange(4))   # (3, 4, 3, 32, 32)
    same = frame_metrics(truth, truth.clone())
    assert same["psnr"].shape == (4,) and same["ssim"].shape == (4,)
    np.testing.assert_array_equal(same["psnr"], PSNR_CAP_DB)
    np.testing.assert_allclose(same["ssim"], 1.0, atol=1e-9)
    g = torch.Generator().manual_seed(0)
    sigma = torch.tensor([0.02, 0.05, 0.1, 0.2]).view(1, 4, 1, 1, 1)  # noise grows with the step
    noisy = frame_metrics(truth + sigma * torch.randn(truth.shape, generator=g), truth)
    assert np.all(np.diff(noisy["psnr"]) < 0) and np.all(np.diff(noisy["ssim"]) < 0)
    assert noisy["psnr"].max() < 40 and noisy["ssim"].max() < 1
    shifted = frame_metrics(truth + 0.1, truth)  # MSE exactly 0.01 -> 20 dB
    np.testing.assert_allclose(shifted["psnr"], 20.0, atol=1e-4)
    # The pinned SSIM: skimage, data_range=1, channels first, averaged over clips per step.
    pred = (truth + 0.1 * torch.randn(truth.shape, generator=g)).double().numpy()
    direct = np.mean([structural_similarity(truth[i, 2].double().numpy(), pred[i, 2], channel_axis=0,
                                            data_range=1) for i in range(3)])
    assert frame_metrics(torch.from_numpy(pred), truth)["ssim"][2] == pytest.approx(direct)
    # the PSNR alone (for measurements that keep no SSIM) is the same numbers
    for frames in (truth, truth + 0.1, torch.from_numpy(pred).float()):
        np.testing.assert_array_equal(frame_psnr(frames, truth), frame_metrics(frames, truth)["psnr"])


def test_frame_metrics_small_frames_and_bad_shapes():
    x = torch.rand(2, 3, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    assert frame_metrics(x, x)["ssim"] == pytest.approx([1.0] * 3)
    with pytest.raises(ValueError, match=r"\(N, T, C, S, S\) tensors of one shape, got \(3, 1, 5, 5\)"):
        frame_metrics(x[0], x[0])


# -- (f) rollouts ----------------------------------------------------------------------------------
def test_rollout_identity_matches_judge_accuracy_on_real_frames(judge, banks, test_factors):
    bank, steps = banks[1], [1, 10, 20]
    # Every frame shows other clips' digits except the checked steps, so reading the wrong frame
    # (an off-by-one in the 1-indexing) drops the accuracy towards chance.
    other = test_factors.subset(torch.roll(torch.arange(len(test_factors)), 1))
    frames = bank.render(other, torch.arange(20))
    idx = torch.tensor(steps) - 1
    frames[:, idx] = bank.render(test_factors, idx)
    res = rollout_identity(judge, frames, test_factors.labels, steps)
    assert list(res) == steps
    for step, acc in res.items():
        assert acc == pytest.approx(judge_accuracy(judge, bank, test_factors, torch.tensor([step - 1])))
    with pytest.raises(ValueError, match=r"step 0 outside 1\.\.20"):
        rollout_identity(judge, frames, test_factors.labels, [0])


def test_rollout_motion_is_the_windows_change_over_the_real_change():
    """Real frames that brighten by 0.1 per step; a rollout that changes by 0.2 per step up to
    step 4 and then freezes. With a window of 3, step 4's frames 1..3 change at twice the real
    rate, step 6's frames 3..5 not at all, and step 5's frames 2..4 by 0.2 once in two changes."""
    from drnet_lib.frame_metrics import RolloutMotion

    def ramp(values):   # (1, T, 1, 2, 2) frames, each uniformly one value
        return torch.tensor(values).view(1, -1, 1, 1, 1).expand(1, len(values), 1, 2, 2)

    truth = ramp([0.0, 0.1, 0.2, 0.3])
    generated = ramp([0.0, 0.2, 0.4, 0.6, 0.6, 0.6])
    motion = RolloutMotion(checkpoints=(1, 4, 5, 6), window=3)
    for chunk in range(2):     # a second chunk alike changes no mean
        motion.add(generated, truth, oracle=truth)
    ratio = motion.metrics()["rollout.motion_ratio"]
    assert list(ratio) == [4, 5, 6]   # step 1 has no change to measure
    assert ratio[4] == pytest.approx(2.0) and ratio[5] == pytest.approx(1.0) and ratio[6] == 0.0
    with pytest.raises(ValueError, match="two frames"):
        RolloutMotion((10,), window=1)


def test_rollout_motion_of_the_oracle_frames_is_their_change_over_the_real_change():
    """Oracle frames (the true poses decoded) that change half as fast as the truth score 0.5 over
    every step of the truth, and a rollout that moves as fast as they do scores 1 of the oracle."""
    from drnet_lib.frame_metrics import RolloutMotion

    truth = torch.linspace(0, 0.3, 4).view(1, 4, 1, 1, 1).expand(2, 4, 1, 3, 3)
    generated = torch.linspace(0, 0.25, 6).view(1, 6, 1, 1, 1).expand(2, 6, 1, 3, 3)  # 0.05 a step
    motion = RolloutMotion((4,), window=3)
    motion.add(generated, truth, oracle=truth / 2)
    got = motion.metrics()
    assert got["rollout.oracle_motion_ratio"] == pytest.approx(0.5)
    assert got["rollout.motion_ratio"] == {4: pytest.approx(0.5)}
    assert got["rollout.motion_of_oracle"] == {4: pytest.approx(1.0)}
    # a decoder that draws no motion leaves nothing to compare with
    still = RolloutMotion((4,), window=3)
    still.add(generated, truth, oracle=torch.zeros_like(truth))
    assert math.isnan(still.metrics()["rollout.motion_of_oracle"][4])
