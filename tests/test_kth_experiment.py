"""The KTH experiment's measurements: windows, fixed test clips, classifiers, rollout scores, and the
pose LSTM's precomputed codes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from drnet_lib import claims, kth_experiment
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


def test_rollout_scores_have_the_contract_keys_and_steps():
    cfg = get_config("kth", "smoke")
    torch.manual_seed(0)
    model, lstm = DrNet(cfg.model).eval(), PoseLSTM(cfg.model.pose_dim, cfg.model.content_dim, 8, 1).eval()
    bank = _bank([14, 20], persons=(17,), size=32)
    clips = kth_experiment.test_clips(bank, cfg.lstm.n_past + cfg.eval.metric_steps, 6, 0)

    class Constant:
        def predict(self, x):
            return np.zeros(len(x), np.int64)

    metrics, samples = kth_experiment.predict_and_roll_out(model, lstm, bank, clips, cfg, Constant(), chunk=4)
    for key in ("psnr", "ssim", "copy_last_psnr", "copy_last_ssim", "oracle_psnr", "oracle_ssim"):
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
    for key in ("psnr_mean", "copy_last_psnr_mean", "oracle_psnr_mean"):
        pooled = sum(v["clips"] * v[key] for v in by_action.values()) / len(clips)
        assert pooled == pytest.approx(metrics[f"prediction.{key}"], abs=1e-3)


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


def test_adversarial_sweep_keeps_runs_that_differ_from_their_profile_only_in_beta():
    from drnet_lib.config import get_config
    from drnet_lib.kth_experiment import adversarial_sweep

    def result(seed, **overrides):
        metrics = {"train.final": {"discriminator_accuracy": 0.8}, "classification.person_from_pose": 0.5,
                   "probe.person_from_pose": 0.4, "classification.action_from_pose": 0.6,
                   "prediction.psnr_mean": 25.0, "rollout.motion_ratio": {"10": 0.9, "200": 0.1}}
        return {"config": get_config("kth", "cpu", seed=seed, overrides=overrides).to_dict(), "metrics": metrics}

    rows = adversarial_sweep([result(1, **{"train.adversarial_weight": 1e-3}), result(0),
                              result(0, **{"train.iterations": 9000}),                       # another question
                              result(0, **{"train.adversarial_weight": 1e-3, "model.base_width": 64})])
    assert [(r["beta"], r["seed"]) for r in rows] == [(1e-4, 0), (1e-3, 1)]    # sorted by beta, then seed
    assert rows[0]["motion_ratio"] == 0.1 and rows[0]["person_from_pose"] == 0.5


def test_sweep_by_beta_pairs_seeds_with_the_reference_beta_and_counts_collapsed_runs():
    from drnet_lib.kth_experiment import sweep_by_beta

    def row(beta, seed, person, action, motion):
        return {"beta": beta, "seed": seed, "person_from_pose": person, "action_from_pose": action,
                "motion_ratio": motion, "discriminator_accuracy": 0.8}

    rows = [row(1e-4, 0, 0.6, 0.6, 0.05), row(1e-4, 1, 0.4, 0.6, 0.05),
            row(2e-3, 0, 0.5, 0.25, 0.0), row(2e-3, 1, 0.5, 0.6, 0.04)]   # seed 0 collapsed, seed 1 leaks more
    summary = sweep_by_beta(rows, action_chance=0.24, reference_beta=1e-4)
    assert list(summary) == [1e-4, 2e-3]
    at = summary[2e-3]
    assert at["seeds"] == "0, 1" and at["runs"] == 2 and at["collapsed"] == 1
    assert at["seeds_with_less_leak"] == "1 of 2"
    assert at["person_from_pose"] == pytest.approx(0.5) and at["leak_reduction"] == pytest.approx(0.0)
    assert at["action_from_pose_min"] == 0.25 and at["action_from_pose_max"] == 0.6
    assert summary[1e-4]["collapsed"] == 0 and summary[1e-4]["leak_reduction"] == pytest.approx(0.0)


def test_changed_settings_name_what_a_run_changed_from_its_profile():
    from drnet_lib.kth_experiment import changed_settings

    def result(seed, **overrides):
        return {"config": get_config("kth", "cpu", seed=seed, overrides=overrides).to_dict(), "seed": seed}

    assert changed_settings(result(2)) == {}                    # the seed is not a change
    assert changed_settings(result(0, **{"model.content_model": "vgg_unet", "model.base_width": 64})) == {
        "model.content_model": "vgg_unet", "model.base_width": 64}


def test_margin_over_copy_last_averages_runs_then_groups_actions():
    from drnet_lib.kth_experiment import by_action_mean, margin_over_copy_last

    def run(offset):
        table = {a: {"clips": 7, "oracle_psnr_mean": 30.0 + offset, "copy_last_psnr_mean": 28.0, "psnr_mean": 25.0}
                 for a in ACTIONS}
        table["boxing"]["copy_last_psnr_mean"] = 36.0             # the last frame is nearly the next one
        return {"metrics": {"prediction.by_action": table}}

    mean = by_action_mean([run(0.0), run(1.0)])
    assert set(mean) == set(ACTIONS) and "clips" not in mean["walking"]
    assert mean["walking"]["oracle_psnr_mean"] == pytest.approx(30.5)
    gap = margin_over_copy_last(mean)
    assert gap["walking"] == pytest.approx(2.5) and gap["boxing"] == pytest.approx(-5.5)
    assert gap["moving"] == pytest.approx(2.5)
    assert gap["in place"] == pytest.approx((-5.5 + 2.5 + 2.5) / 3)   # each action once
    own = margin_over_copy_last(mean, score="psnr_mean")                # DrNet's prediction, not the ceiling
    assert own["walking"] == pytest.approx(-3.0) and own["boxing"] == pytest.approx(-11.0)


def test_error_split_parts_add_up_to_each_guess_mean_squared_error():
    from drnet_lib.kth_experiment import error_split

    truth = torch.zeros(1, 2, 1, 4, 4)
    truth[0, :, 0, 0, 0] = 1.0                          # one pixel changes from the last frame
    last = torch.zeros(1, 1, 4, 4)
    decoded = torch.full_like(truth, 0.1)               # a blurred guess: a little wrong everywhere
    decoded[0, :, 0, 0, 0] = 0.6
    out = error_split(decoded, last, truth)
    assert out["changing_share"] == pytest.approx(1 / 16)
    assert out["copy_last_static"] == 0 and out["copy_last_changing"] == pytest.approx(1 / 16)
    assert out["decoded_static"] == pytest.approx(15 * 0.01 / 16)
    assert out["decoded_changing"] == pytest.approx(0.16 / 16)
    assert out["decoded_static"] + out["decoded_changing"] == pytest.approx(float(((decoded - truth) ** 2).mean()))


def test_mean_error_split_averages_each_group_and_key():
    from drnet_lib.kth_experiment import mean_error_split

    a = {"moving": {"decoded_static": 1.0, "copy_last_static": 0.5}}
    b = {"moving": {"decoded_static": 3.0, "copy_last_static": 0.5}}
    assert mean_error_split([a, b]) == {"moving": {"decoded_static": 2.0, "copy_last_static": 0.5}}


def test_against_same_seeds_pairs_each_run_with_the_reference_of_its_seed():
    from drnet_lib.kth_experiment import against_same_seeds

    def run(seed, psnr):
        return {"seed": seed, "metrics": {"prediction.psnr_mean": psnr}}

    reference = [run(0, 25.0), run(1, 26.0), run(2, 30.0)]
    out = against_same_seeds([run(0, 26.0), run(1, 26.5)], reference, ["prediction.psnr_mean"])
    assert out["seeds"] == 2
    assert out["prediction.psnr_mean"] == pytest.approx(26.25)
    assert out["prediction.psnr_mean.reference"] == pytest.approx(25.5)   # seed 2's 30 dB is not paired
    assert out["prediction.psnr_mean.gain"] == pytest.approx(0.75)
    assert (out["prediction.psnr_mean.gain_min"], out["prediction.psnr_mean.gain_max"]) == pytest.approx((0.5, 1.0))
    assert out["prediction.psnr_mean.gain_max_seed"] == 0
    with pytest.raises(ValueError, match=r"seed\(s\) \[5\]"):
        against_same_seeds([run(5, 20.0)], reference, ["prediction.psnr_mean"])


def test_run_config_reads_a_notebook_variant_from_the_results():
    from drnet_lib.kth_experiment import changed_settings, run_config

    run = {"config": get_config("kth", "smoke").to_dict(),
           "variants": {"adv": {"train.adversarial_weight": 1e-4}, "noadv": {"train.adversarial_weight": 0.0}}}
    assert run_config(run).train.adversarial_weight == 1e-4
    assert run_config(run, "noadv").train.adversarial_weight == 0.0
    assert changed_settings(run, "noadv") == {"train.adversarial_weight": 0.0} and changed_settings(run, "adv") == {}
    with pytest.raises(ValueError, match="no variant 'beta'.*adv, noadv"):
        run_config(run, "beta")


def test_person_leak_rows_pair_each_model_with_its_recorded_split_once():
    from drnet_lib.kth_experiment import person_leak_rows

    def scores(v):
        return {"classification.person_from_pose_across_scenarios": v, "probe.person_from_pose_across_scenarios": v / 2,
                "probe.person_from_content_across_scenarios": 0.1, "classification.person_chance_across_scenarios": 0.12}

    def recorded(prefix, v):
        return {f"classification.{prefix}person_from_pose": v, f"probe.{prefix}person_from_pose": v / 2,
                f"probe.{prefix}person_from_content": 0.6}

    notebook = {"seed": 0, "config": get_config("kth", "cpu", seed=0).to_dict(),
                "variants": {"adv": {"train.adversarial_weight": 1e-4}, "noadv": {"train.adversarial_weight": 0.0}},
                "metrics": {**recorded("", 0.6), **recorded("noadv.", 0.8)}}
    tagged = {"seed": 0, "config": get_config("kth", "cpu", seed=0, overrides={"train.adversarial_weight": 1e-3}).to_dict(),
              "metrics": recorded("", 0.3)}
    again = {**notebook, "metrics": recorded("", 0.6)}          # the same model re-evaluated under a tag
    leak = {"kth_seed0:adv": {"scores": scores(0.2)}, "kth_seed0:noadv": {"scores": scores(0.4)},
            "kth_beta1e-3_seed0": {"scores": scores(0.15)}, "kth_oracle_seed0": {"scores": scores(0.2)}}
    rows = person_leak_rows(leak, {"kth_seed0": notebook, "kth_beta1e-3_seed0": tagged, "kth_oracle_seed0": again})
    assert [(r["changed"], r["beta"]) for r in rows] == [
        ("cpu profile", 1e-4), ("train.adversarial_weight = 0.0", 0.0), ("train.adversarial_weight = 0.001", 1e-3)]
    assert [(r["even_odd_mlp"], r["across_mlp"]) for r in rows] == [(0.6, 0.2), (0.8, 0.4), (0.3, 0.15)]
    assert all(r["only_beta"] for r in rows)
    assert rows[1]["even_odd_probe"] == 0.4 and rows[1]["across_probe"] == 0.2 and rows[1]["chance_across"] == 0.12


def test_drnet_twin_finds_the_runs_whose_drnet_an_lstm_run_reused():
    from drnet_lib.kth_experiment import drnet_twin

    lstm = {"lstm.hidden", "lstm.iterations"}
    changed = {"kth_oracle_seed0": {}, "kth_long9k_seed0": {"train.iterations": 9000},
               "kth_lstm20k_seed0": {"lstm.hidden": 256, "lstm.iterations": 20000},
               "kth_long9k-lstm20k_seed0": {"train.iterations": 9000, "lstm.hidden": 256, "lstm.iterations": 20000}}
    by_tag = {n[4:-6]: [n] for n in changed}
    assert drnet_twin("lstm20k", by_tag, changed, lstm) == "oracle"
    assert drnet_twin("long9k-lstm20k", by_tag, changed, lstm) == "long9k"
    del by_tag["long9k"]
    with pytest.raises(ValueError, match="long9k-lstm20k"):
        drnet_twin("long9k-lstm20k", by_tag, changed, lstm)


def test_with_rollout_summary_adds_the_gap_and_the_last_motion_without_touching_the_run():
    from drnet_lib.kth_experiment import with_rollout_summary

    run = {"seed": 1, "metrics": {"prediction.oracle_psnr_mean": 27.5, "prediction.psnr_mean": 25.0,
                                  "rollout.motion_ratio": {"10": 0.4, "50": 0.1, "200": 0.05}}}
    out = with_rollout_summary(run)
    assert out["metrics"]["prediction.gap_to_ceiling"] == pytest.approx(2.5)
    assert out["metrics"]["rollout.motion_ratio.last"] == 0.05 and out["seed"] == 1
    assert "prediction.gap_to_ceiling" not in run["metrics"]
