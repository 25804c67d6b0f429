"""The KTH experiment's measurements: windows, fixed test clips, classifiers, rollout scores, the
pose LSTM's precomputed codes, and the decoder's diagnostics (:mod:`drnet_lib.kth_decoder`)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from drnet_lib import claims, kth_decoder, kth_experiment
from drnet_lib.config import get_config
from drnet_lib.data.kth import ACTIONS, KTHClips
from drnet_lib.models import DrNet, PoseLSTM
from drnet_lib.predict import LSTMTrainer


def _bank(lengths, persons=(1,), actions=range(6), ranges=4, size=8, seed=0) -> KTHClips:
    """Ranges of ``lengths`` (cycled) for each (person, action, range); row 0 of every frame
    one-hot encodes the action (columns 0-5), row 1 the person modulo 3 (columns 0-2), the rest
    is noise."""
    rng = np.random.default_rng(seed)
    chunks, offsets, lens, facts, index = [], [], [], [], []
    total, k = 0, 0
    for p in persons:
        for a in actions:
            for r in range(ranges):
                n = lengths[k % len(lengths)]
                k += 1
                f = rng.integers(0, 256, (n, 1, size, size), dtype=np.uint8)
                f[:, 0, :2, :6] = 0
                f[:, 0, 0, a] = 255
                f[:, 0, 1, p % 3] = 255
                chunks.append(f)
                offsets.append(total)
                lens.append(n)
                total += n
                facts.append((a, p, 1))
                index.append(r)
    facts = np.array(facts)
    return KTHClips(torch.from_numpy(np.concatenate(chunks)), offsets, lens,
                    {"action": facts[:, 0], "person": facts[:, 1], "scenario": facts[:, 2]},
                    range_index=index)



def test_mcnet_clips_start_every_3_frames_of_running_and_jogging_and_every_horizon_of_the_rest():
    # ACTIONS order: walking, jogging, running, boxing, handwaving, handclapping
    bank = _bank([40, 29], actions=[1, 2, 3], ranges=2)       # per action: a 40-frame and a 29-frame range
    clips = kth_experiment.mcnet_clips(bank, n_past=10, horizon=20)
    by_action = {}
    for q, start in zip(clips.sequence.tolist(), clips.start.tolist()):
        by_action.setdefault(int(bank.action[q]), []).append((int(bank.lengths[q]), start))
    assert by_action[1] == [(40, 0), (40, 3), (40, 6), (40, 9)]   # jogging: every 3rd start that fits
    assert by_action[2] == [(40, 0), (40, 3), (40, 6), (40, 9)]   # running
    assert by_action[3] == [(40, 0)]                              # boxing: every 20th (the next, 20, would not fit)
    bank.render(clips, torch.arange(30))                          # every clip inside its range
    with pytest.raises(ValueError, match="no test range has 50 frames"):
        kth_experiment.mcnet_clips(bank, n_past=10, horizon=40)

class PixelCodes(nn.Module):
    """A stand-in for a trained DrNet: pose = the action pixels, content = the person pixels."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def encode_pose(self, x):
        return x[:, 0, 0, :6].reshape(-1, 6, 1, 1)

    def encode_content(self, x):
        return x[:, 0, 1, :3].reshape(-1, 3, 1, 1), []


def test_windows_tile_each_range_without_crossing_it():
    bank = _bank([5, 12, 3], actions=[0], ranges=3)
    w = kth_experiment.window_starts(bank, 4)
    assert w.sequence.tolist() == [0, 1, 1, 1]
    assert w.start.tolist() == [0, 0, 4, 8]
    bank.render(w, torch.arange(4))              # inside every range (raises on the CPU otherwise)


def test_test_clips_are_fixed_long_enough_and_one_per_range():
    bank = _bank([8, 30, 12, 25], actions=range(3), ranges=4)
    a = kth_experiment.test_clips(bank, 20, 100, seed=7)
    b = kth_experiment.test_clips(bank, 20, 100, seed=7)
    assert torch.equal(a.sequence, b.sequence) and torch.equal(a.start, b.start)
    assert len(a) == int((bank.lengths >= 20).sum())            # all eligible ranges, once each
    assert len(set(a.sequence.tolist())) == len(a)
    assert bool((bank.lengths[a.sequence] - a.start >= 20).all())
    assert len(kth_experiment.test_clips(bank, 20, 3, seed=7)) == 3
    with pytest.raises(ValueError, match="no test range has 40 frames"):
        kth_experiment.test_clips(bank, 40, 10, seed=0)


def test_test_clips_can_end_on_a_range_s_last_frame():
    # 24 ranges of 21 frames and one of 20, clips of 20: each 21-frame range has two starts, 0
    # and 1, and the 20-frame one only 0; a clip starting at 1 ends on its range's last frame.
    bank = _bank([21] * 23 + [20], actions=range(6), ranges=4)
    clips = kth_experiment.test_clips(bank, 20, 100, seed=0)
    start_of = dict(zip(clips.sequence.tolist(), clips.start.tolist()))
    assert len(start_of) == 24 and start_of[23] == 0
    assert {start_of[q] for q in range(23)} == {0, 1}
    bank.render(clips, torch.arange(20))                          # every clip inside its range


def test_classifiers_read_each_factor_only_from_the_code_that_holds_it():
    cfg = get_config("kth", "smoke")
    train = _bank([40, 45], persons=(1, 2, 3), seed=1)
    test = _bank([40, 45], persons=(17, 18, 19), seed=2)
    scores, action_clf = kth_experiment.classification_scores(PixelCodes(), train, test, cfg)
    assert scores["classification.action_from_pose"] > 0.95 and scores["probe.action_from_pose"] > 0.95
    assert scores["probe.person_from_content"] > 0.95
    assert scores["classification.action_from_content"] < 0.4 and scores["probe.action_from_content"] < 0.4
    assert scores["classification.person_from_pose"] < 0.55 and scores["probe.person_from_pose"] < 0.55
    assert scores["classification.action_chance"] == pytest.approx(1 / 6)
    assert scores["classification.person_chance"] == pytest.approx(1 / 3, abs=0.05)
    windows = 3 * 6 * 2 * (40 // cfg.lstm.n_past + 45 // cfg.lstm.n_past)
    assert scores["classification.windows"] == {"train": windows, "test": windows}
    boxing = np.tile(np.eye(6)[3], cfg.lstm.n_past)[None]
    assert action_clf.predict(boxing)[0] == 3
    # the confusion of that classifier: one row per action, each row's shares sum to 1, mass on the diagonal
    confusion = scores["classification.action_confusion_from_pose"]
    assert list(confusion) == list(ACTIONS) and all(list(row) == list(ACTIONS) for row in confusion.values())
    assert all(sum(row.values()) == pytest.approx(1.0) for row in confusion.values())
    diagonal = np.mean([confusion[a][a] for a in ACTIONS])
    assert diagonal == pytest.approx(scores["classification.action_from_pose"], abs=0.02)   # classes of equal size
    # the frames' motion baseline: here the action is drawn still (row 0) in moving noise, so it cannot tell
    assert scores["classification.action_from_frame_motion"] < 0.4
    assert set(scores["classification.action_confusion_from_frame_motion"]) == set(ACTIONS)
    # every window was filmed in one scenario: nothing to hold out
    assert np.isnan(scores["probe.person_from_pose_across_scenarios"])
    assert np.isnan(scores["classification.person_chance_across_scenarios"])


def test_person_across_scenarios_separates_the_person_from_the_place():
    rng = np.random.default_rng(0)
    persons, scenarios = np.repeat(np.arange(4), 4 * 30), np.tile(np.repeat(np.arange(1, 5), 30), 4)
    body = rng.normal(size=(4, 8))[persons]                               # goes with the person everywhere
    place = rng.normal(size=(4, 4, 8))[persons, scenarios - 1]            # one per (person, scenario)
    noise = lambda: 0.05 * rng.normal(size=(len(persons), 8))
    codes = {"pose": place + noise(), "content": body + noise(), "person": persons, "scenario": scenarios}
    from_place, chance = kth_experiment.person_across_scenarios(codes, "pose", "linear")
    from_body, _ = kth_experiment.person_across_scenarios(codes, "content", "linear")
    assert from_body == 1.0 and chance == pytest.approx(0.25)
    assert from_place < 0.6                     # the even/odd split would score these near 1
    # a person filmed in one scenario only cannot be scored across scenarios, and is not
    alone = {k: v[(codes["person"] != 3) | (codes["scenario"] == 1)] for k, v in codes.items()}
    acc, _ = kth_experiment.person_across_scenarios(alone, "content", "linear")
    assert acc == 1.0
    one_person = {k: v[codes["person"] == 0] for k, v in codes.items()}
    assert np.isnan(kth_experiment.person_across_scenarios(one_person, "content", "linear")[0])


class SaysWalking:
    """An action classifier that answers "walking" (action 0) to every window."""

    def predict(self, x):
        return np.zeros(len(x), np.int64)


def test_rollout_scores_have_the_contract_keys_and_steps():
    cfg = get_config("kth", "smoke")
    torch.manual_seed(0)
    model, lstm = DrNet(cfg.model).eval(), PoseLSTM(cfg.model.pose_dim, cfg.model.content_dim, 8, 1).eval()
    bank = _bank([14, 20], persons=(17,), size=32)
    clips = kth_experiment.test_clips(bank, cfg.lstm.n_past + cfg.eval.metric_steps, 6, 0)

    metrics, samples = kth_experiment.predict_and_roll_out(model, lstm, bank, clips, cfg, SaysWalking(), chunk=4)
    for key in ("psnr", "ssim", "copy_last_psnr", "copy_last_ssim", "oracle_psnr", "oracle_ssim", "held_pose_psnr",
                "held_pose_ssim"):
        assert list(metrics[f"prediction.{key}"]) == list(range(1, cfg.eval.metric_steps + 1))
    assert 0.0 <= metrics["prediction.steps_beating_copy_last"] <= 1.0
    assert list(metrics["rollout.action_accuracy"]) == [s for s in cfg.eval.rollout_checkpoints if s >= cfg.lstm.n_past]
    # the constant classifier says "walking" (0): right exactly for the walking clips
    walking = float((bank.action[clips.sequence] == 0).float().mean())
    assert all(v == pytest.approx(walking) for v in metrics["rollout.action_accuracy"].values())
    assert samples["generated"].shape[1] == cfg.eval.rollout_steps
    # per action: every clip counted once, and the clip-weighted action means give the overall mean
    by_action = metrics["prediction.by_action"]
    actions = bank.action[clips.sequence]
    assert {a: v["clips"] for a, v in by_action.items()} == {
        ACTIONS[a]: int((actions == a).sum()) for a in actions.unique().tolist()}
    for key in ("psnr_mean", "copy_last_psnr_mean", "oracle_psnr_mean", "held_pose_psnr_mean"):
        pooled = sum(v["clips"] * v[key] for v in by_action.values()) / len(clips)
        assert pooled == pytest.approx(metrics[f"prediction.{key}"], abs=1e-3)


def test_rollout_scores_with_batch_statistics_when_an_action_has_one_clip():
    """lstm.bn_mode "train" (BatchNorm on batch statistics): the ceiling and DrNet-standing-still are
    decoded with the chunk's statistics, like the rollout, not per action, where a lone clip has
    no batch statistics (BatchNorm on a 1x1 code map raised "Expected more than 1 value")."""
    cfg = get_config("kth", "smoke", overrides={"lstm.bn_mode": "train"})
    torch.manual_seed(0)
    model, lstm = DrNet(cfg.model), PoseLSTM(cfg.model.pose_dim, cfg.model.content_dim, 8, 1)
    bank = _bank([14, 20], persons=(17,), size=32)
    clips = kth_experiment.test_clips(bank, cfg.lstm.n_past + cfg.eval.metric_steps, 6, 0)
    actions = bank.action[clips.sequence]
    lone = actions.unique().tolist()[0]
    keep = torch.cat([torch.nonzero(actions != lone)[:, 0], torch.nonzero(actions == lone)[:1, 0]])
    clips = clips.subset(keep)                                         # `lone` keeps a single clip

    metrics, _ = kth_experiment.predict_and_roll_out(model, lstm, bank, clips, cfg, SaysWalking(), chunk=len(clips))
    assert metrics["prediction.by_action"][ACTIONS[lone]]["clips"] == 1
    assert np.isfinite(metrics["prediction.oracle_psnr_mean"])


def test_lstm_on_precomputed_codes_matches_encoding_every_clip():
    cfg = get_config("kth", "smoke")
    torch.manual_seed(0)
    model = DrNet(cfg.model)
    with torch.no_grad():                                             # non-trivial BatchNorm stats
        model.encode_pose(torch.rand(8, 1, 32, 32))
        model.encode_content(torch.rand(8, 1, 32, 32))
    bank = _bank([12, 15], persons=(1, 2), size=32)
    cached = LSTMTrainer(cfg, copy.deepcopy(model), bank)
    plain = LSTMTrainer(cfg, copy.deepcopy(model), bank, cache_codes=False)
    assert cached.code_table is not None and plain.code_table is None
    for _ in range(4):
        assert torch.allclose(cached.step(), plain.step(), rtol=1e-5, atol=1e-6)
    for a, b in zip(cached.lstm.parameters(), plain.lstm.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_verdicts_skip_claims_a_short_profile_does_not_reach():
    metrics = {"prediction.steps_beating_copy_last": 0.8, "classification.action_from_pose": 0.3,
               "classification.person_from_pose": 0.1, "rollout.action_accuracy": {"5": 0.2, "30": 0.2}}
    rows = claims.verdicts("kth", metrics)
    assert [c.key for c, _, _ in rows] == ["prediction.steps_beating_copy_last",
                                           "classification.action_from_pose",
                                           "classification.person_from_pose"]
    assert [met for _, _, met in rows] == [True, False, True]


def test_error_split_parts_add_up_to_each_guess_mean_squared_error():
    truth = torch.zeros(1, 2, 1, 4, 4)
    truth[0, :, 0, 0, 0] = 1.0                          # one pixel changes from the last frame
    last = torch.zeros(1, 1, 4, 4)
    decoded = torch.full_like(truth, 0.1)               # a blurred guess: a little wrong everywhere
    decoded[0, :, 0, 0, 0] = 0.6
    out = kth_decoder.error_split(decoded, last, truth)
    assert out["changing_share"] == pytest.approx(1 / 16)
    assert out["copy_last_static"] == 0 and out["copy_last_changing"] == pytest.approx(1 / 16)
    assert out["decoded_static"] == pytest.approx(15 * 0.01 / 16)
    assert out["decoded_changing"] == pytest.approx(0.16 / 16)
    assert out["decoded_static"] + out["decoded_changing"] == pytest.approx(float(((decoded - truth) ** 2).mean()))


def _model_and_two_scenarios():
    """The smoke profile's untrained DrNet (eval mode) and a small bank whose videos alternate
    between scenarios d1 and d4."""
    cfg = get_config("kth", "smoke")
    torch.manual_seed(0)
    model = DrNet(cfg.model).eval()
    bank = _bank([14, 20], persons=(17,), size=32)
    bank.scenario = 1 + 3 * (torch.arange(len(bank.offsets)) % 2)          # d1 and d4
    return cfg, model, bank


def test_ceiling_by_scenario_groups_every_clip_once_and_scores_each_group_on_its_own_clips():
    from drnet_lib.frame_metrics import prediction_metrics

    cfg, model, bank = _model_and_two_scenarios()
    n_past, horizon = cfg.lstm.n_past, cfg.eval.metric_steps
    clips = kth_experiment.test_clips(bank, n_past + horizon, 12, 0)
    out = kth_decoder.ceiling_by_scenario(model, bank, clips, cfg, chunk=5)
    scenario, action = bank.scenario[clips.sequence], bank.action[clips.sequence]
    moving = torch.tensor([ACTIONS[a] in kth_decoder.MOVING for a in action.tolist()])
    expected = {}
    for d, m in zip(scenario.tolist(), moving.tolist()):
        group = expected.setdefault(f"d{d}", {}).setdefault("moving" if m else "in place", 0)
        expected[f"d{d}"]["moving" if m else "in place"] = group + 1
    assert {d: {g: v["clips"] for g, v in groups.items()} for d, groups in out.items()} == expected
    # one group scored directly, all its clips at once, gives the chunked value
    rows = (scenario == 4) & ~moving
    part = clips.subset(torch.nonzero(rows).flatten())
    observed = bank.render(part, torch.arange(n_past))
    truth = bank.render(part, torch.arange(n_past, n_past + horizon))
    ceiling = kth_decoder.decode_true_poses(model, observed, truth, cfg.lstm.bn_mode)
    direct = prediction_metrics(observed, ceiling, truth)
    assert out["d4"]["in place"]["copy_last_psnr_mean"] == pytest.approx(float(np.mean(direct["copy_last_psnr"])), abs=1e-3)
    assert out["d4"]["in place"]["oracle_psnr_mean"] == pytest.approx(float(np.mean(direct["psnr"])), abs=1e-3)


def test_self_reconstruction_scores_the_last_observed_frame_decoded_from_its_own_codes():
    cfg, model, bank = _model_and_two_scenarios()
    clips = kth_experiment.test_clips(bank, cfg.lstm.n_past + 2, 12, 0)
    out = kth_decoder.self_reconstruction_by_scenario(model, bank, clips, cfg, chunk=5)
    assert sum(v["clips"] for groups in out.values() for v in groups.values()) == len(clips)
    # d4's in-place clips scored directly, all at once
    scenario, action = bank.scenario[clips.sequence], bank.action[clips.sequence]
    rows = (scenario == 4) & torch.tensor([ACTIONS[a] not in kth_decoder.MOVING for a in action.tolist()])
    frame = bank.render(clips.subset(torch.nonzero(rows).flatten()), torch.tensor([cfg.lstm.n_past - 1]))[:, 0]
    with torch.no_grad():
        content, skips = model.encode_content(frame)
        decoded = model.decode(content, skips, model.encode_pose(frame))
    got = out["d4"]["in place"]
    mse = ((decoded - frame) ** 2).flatten(1).mean(1)
    offset = (decoded - frame).flatten(1).mean(1)
    assert got["self_psnr_mean"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), abs=1e-3)
    assert got["offset_mean"] == pytest.approx(float(offset.mean()), abs=1e-6)
    assert got["offset_share"] == pytest.approx(float((offset ** 2).mean() / mse.mean()), rel=1e-4)
    assert 0 < got["offset_share"] <= 1


def test_held_pose_is_the_last_frame_redrawn_from_its_own_codes_at_every_step():
    cfg, model, bank = _model_and_two_scenarios()
    n_past = cfg.lstm.n_past
    clips = kth_experiment.test_clips(bank, n_past + 3, 6, 0)
    observed = bank.render(clips, torch.arange(n_past))
    still = kth_decoder.decode_held_pose(model, observed, 3, cfg.lstm.bn_mode)
    assert still.shape == (len(clips), 3, *observed.shape[2:])
    with torch.no_grad():
        content, skips = model.encode_content(observed[:, -1])
        redrawn = model.decode(content, skips, model.encode_pose(observed[:, -1]))
    for step in range(3):
        torch.testing.assert_close(still[:, step], redrawn)
    # a future where nothing moves: the true poses are the last frame's, so the ceiling is standing still
    frozen = observed[:, -1:].expand(-1, 3, -1, -1, -1)
    torch.testing.assert_close(kth_decoder.decode_true_poses(model, observed, frozen, cfg.lstm.bn_mode), still)


def test_confusion_shares_normalise_each_true_class_and_skip_absent_ones():
    from drnet_lib.classification import confusion_shares

    class Fixed:
        def predict(self, x):
            return np.array([0, 1, 1, 2])

    out = confusion_shares(Fixed(), np.zeros((4, 1)), np.array([0, 0, 1, 1]), ["a", "b", "c"])
    assert out == {"a": {"a": 0.5, "b": 0.5, "c": 0.0}, "b": {"a": 0.0, "b": 0.5, "c": 0.5}}


def test_frame_motion_maps_where_each_window_moves():
    # two windows of 4 frames, 8x8 px: the first still, the second blinking in its top-left 4x4 block
    frames = torch.full((2, 4, 1, 8, 8), 100 / 255)
    frames[1, ::2, 0, :4, :4] = 200 / 255
    motion = kth_experiment.frame_motion(frames, pool=4)
    assert motion.shape == (2, 4)                      # a 2x2 grid of 4x4 blocks per window
    assert torch.all(motion[0] == 0)                   # the still window
    assert float(motion[1, 0]) == pytest.approx(100 / 255) and torch.all(motion[1, 1:] == 0)
