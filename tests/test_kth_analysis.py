"""Reading recorded KTH runs back (drnet_lib.kth_analysis): what a run changed, seeds paired with
the reference runs, the beta sweep, per-action means, the person-leak rows."""

from __future__ import annotations

import numpy as np
import pytest

from drnet_lib.config import get_config
from drnet_lib.data.kth import ACTIONS
from drnet_lib.kth_analysis import (adversarial_sweep, against_same_seeds, by_action_mean, changed_settings,
                                    clip_list_by_action, clip_list_mean_curve, clip_list_rows, pooled_ceiling, steps_ahead, steps_text,
                                    run_summary, scenario_rows, self_reconstruction_rows, schedule_rows,
                                    drnet_twin, margin_over_copy_last, mean_error_split, person_leak_rows,
                                    recorded_leak_scores, same_training,
                                    run_config, sweep_by_beta, with_rollout_summary)


def test_adversarial_sweep_keeps_runs_that_differ_from_their_profile_only_in_beta():
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
    def result(seed, **overrides):
        return {"config": get_config("kth", "cpu", seed=seed, overrides=overrides).to_dict(), "seed": seed}

    assert changed_settings(result(2)) == {}                    # the seed is not a change
    assert changed_settings(result(0, **{"model.content_model": "vgg_unet", "model.base_width": 64})) == {
        "model.content_model": "vgg_unet", "model.base_width": 64}


def test_clip_list_by_action_averages_one_lists_tables_over_entries():
    def entry(value):
        table = lambda v: {a: {"clips": 3, "held_pose_psnr_mean": v} for a in ACTIONS}
        return {"lists": {"one_per_range": {"by_action": table(value)}, "mcnet": {"by_action": table(value + 10)}}}

    mean = clip_list_by_action([entry(20.0), entry(23.0)], "one_per_range")
    assert mean["boxing"] == {"held_pose_psnr_mean": pytest.approx(21.5)}     # counts are left out
    assert clip_list_by_action([entry(20.0)], "mcnet")["walking"]["held_pose_psnr_mean"] == pytest.approx(30.0)


def test_margin_over_copy_last_averages_runs_then_groups_actions():
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


def test_mean_error_split_averages_each_group_and_key():
    a = {"moving": {"decoded_static": 1.0, "copy_last_static": 0.5}}
    b = {"moving": {"decoded_static": 3.0, "copy_last_static": 0.5}}
    assert mean_error_split([a, b]) == {"moving": {"decoded_static": 2.0, "copy_last_static": 0.5}}


def test_against_same_seeds_pairs_each_run_with_the_reference_of_its_seed():
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
    run = {"config": get_config("kth", "smoke").to_dict(),
           "variants": {"adv": {"train.adversarial_weight": 1e-4}, "noadv": {"train.adversarial_weight": 0.0}}}
    assert run_config(run).train.adversarial_weight == 1e-4
    assert run_config(run, "noadv").train.adversarial_weight == 0.0
    assert changed_settings(run, "noadv") == {"train.adversarial_weight": 0.0} and changed_settings(run, "adv") == {}
    with pytest.raises(ValueError, match="no variant 'beta'.*adv, noadv"):
        run_config(run, "beta")


def test_person_leak_rows_pair_each_model_with_its_recorded_split_once():
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
    run = {"seed": 1, "metrics": {"prediction.oracle_psnr_mean": 27.5, "prediction.psnr_mean": 25.0,
                                  "rollout.motion_ratio": {"10": 0.4, "50": 0.1, "200": 0.05}}}
    out = with_rollout_summary(run)
    assert out["metrics"]["prediction.gap_to_ceiling"] == pytest.approx(2.5)
    assert out["metrics"]["rollout.motion_ratio.last"] == 0.05 and out["seed"] == 1
    assert "prediction.gap_to_ceiling" not in run["metrics"]


def test_run_summary_reads_scores_computes_margins_and_fills_later_measurements():
    table = {a: {"psnr_mean": 24.0, "oracle_psnr_mean": 26.0, "copy_last_psnr_mean": 23.0} for a in ACTIONS}
    for a in ("boxing", "handwaving", "handclapping"):
        table[a]["copy_last_psnr_mean"] = 33.0
    run = {"metrics": {"prediction.psnr_mean": 25.0, "prediction.by_action": table,
                       "rollout.motion_ratio": {"10": 0.4, "500": 0.16},
                       "classification.person_from_pose_across_scenarios": 0.11,
                       "train.final": {"discriminator_accuracy": 0.86}}}
    out = run_summary(run, extra_scores={"classification.person_from_pose_across_scenarios": 0.5,
                                         "classification.person_chance_across_scenarios": 0.12})
    assert out["prediction.psnr_mean"] == 25.0
    assert out["classification.person_from_pose_across_scenarios"] == 0.11   # the run's own value wins
    assert out["classification.person_chance_across_scenarios"] == 0.12      # filled from the later measurement
    assert out["prediction.copy_last_ssim_mean"] != out["prediction.copy_last_ssim_mean"]   # absent: nan
    assert out["margin.drnet.moving"] == pytest.approx(1.0) and out["margin.drnet.in place"] == pytest.approx(-9.0)
    assert out["margin.ceiling.moving"] == pytest.approx(3.0) and out["margin.ceiling.in place"] == pytest.approx(-7.0)
    assert out["rollout.motion_ratio.last"] == 0.16 and out["train.discriminator_accuracy"] == 0.86
    # the notebook's runs keep both models' last losses: the adversarial one is the run's own
    run["metrics"]["train.final"] = {"adv": {"discriminator_accuracy": 0.9}, "noadv": {"discriminator_accuracy": 0.5}}
    assert run_summary(run)["train.discriminator_accuracy"] == 0.9


def test_scenario_rows_and_the_pooled_ceiling_weight_each_group_by_its_clips():
    entry = {"scenarios": {"d1": {"in place": {"clips": 1, "oracle_psnr_mean": 30.0, "copy_last_psnr_mean": 37.0},
                                  "moving": {"clips": 3, "oracle_psnr_mean": 26.0, "copy_last_psnr_mean": 24.0}}}}
    rows = scenario_rows({"a": entry})
    assert [(r["run"], r["scenario"], r["group"], r["clips"]) for r in rows] == [("a", "d1", "in place", 1),
                                                                                ("a", "d1", "moving", 3)]
    assert [r["margin"] for r in rows] == [pytest.approx(-7.0), pytest.approx(2.0)]
    assert pooled_ceiling(entry) == pytest.approx((30.0 + 3 * 26.0) / 4)    # not the plain mean, 28


def test_self_reconstruction_rows_give_the_offset_in_grey_levels():
    entry = {"scenarios": {"d4": {"in place": {"clips": 2, "self_psnr_mean": 29.5, "offset_mean": 0.02,
                                               "offset_share": 0.4}}}}
    (row,) = self_reconstruction_rows({"a": entry})
    assert (row["run"], row["scenario"], row["group"], row["clips"], row["PSNR"]) == ("a", "d4", "in place", 2, 29.5)
    assert row["offset"] == pytest.approx(5.1) and row["offset share"] == 0.4


def test_schedule_rows_sort_milestones_numerically_and_summarize_each():
    table = {a: {"psnr_mean": 24.0, "oracle_psnr_mean": 26.0, "copy_last_psnr_mean": 23.0} for a in ACTIONS}

    def entry(iterations, action):
        return {"metrics": {"prediction.by_action": table, "classification.action_from_pose": action,
                            "rollout.motion_ratio": {"10": 0.5}, "train.final": {"discriminator_accuracy": 0.7},
                            "train.iterations_done": iterations, "train.seconds_per_iteration": 0.12}}

    rows = schedule_rows({"milestones": {"12000": entry(12000, 0.7), "1500": entry(1500, 0.3), "3000": entry(3000, 0.6)}})
    assert [r["iterations"] for r in rows] == [1500, 3000, 12000]              # not "12000" < "1500"
    assert [r["classification.action_from_pose"] for r in rows] == [0.3, 0.6, 0.7]
    assert rows[0]["minutes"] == pytest.approx(1500 * 0.12 / 60) and rows[0]["margin.drnet.moving"] == pytest.approx(1.0)

    # a record made with --refresh-pair: the refreshed measurements of the same milestones
    paired = {"milestones": {"3000": {**entry(3000, 0.6), "refreshed": entry(3000, 0.65)}}}
    assert schedule_rows(paired)[0]["classification.action_from_pose"] == 0.6
    assert schedule_rows(paired, refreshed=True)[0]["classification.action_from_pose"] == 0.65


def test_clip_list_rows_count_the_moving_share_and_the_margin_per_run_and_list():
    def scores(clips_by_action, drnet, copy_last):
        return {"clips": sum(clips_by_action.values()), "psnr_mean": drnet, "copy_last_psnr_mean": copy_last,
                "steps_beating_copy_last": 0.25, "by_action": {a: {"clips": n} for a, n in clips_by_action.items()}}

    entries = {"kth_a_seed0": {"lists": {"one_per_range": scores({"walking": 3, "boxing": 1}, 25.0, 26.0),
                                         "mcnet": scores({"jogging": 6, "running": 1, "boxing": 1}, 25.5, 25.0)}}}
    rows = clip_list_rows(entries)
    assert [(r["run"], r["list"]) for r in rows] == [("kth_a_seed0", "one_per_range"), ("kth_a_seed0", "mcnet")]
    assert rows[0]["moving share"] == 0.75 and rows[1]["moving share"] == 7 / 8
    assert rows[0]["margin"] == -1.0 and rows[1]["margin"] == 0.5
    assert rows[1]["clips"] == 8 and rows[1]["steps beating"] == 0.25


def test_clip_list_mean_curve_orders_steps_numerically_and_averages_runs():
    def entry(values):   # steps as the JSON keys them: strings, 10 after 9
        return {"lists": {"mcnet": {"psnr": {str(i + 1): v for i, v in enumerate(values)}}}}

    runs = [entry([30.0, 29, 28, 27, 26, 25, 24, 23, 22, 21]), entry([28.0, 27, 26, 25, 24, 23, 22, 21, 20, 19])]
    curve = clip_list_mean_curve(runs, "mcnet", "psnr")
    assert curve.tolist() == [29.0, 28, 27, 26, 25, 24, 23, 22, 21, 20]


def test_steps_ahead_and_their_text():
    assert steps_ahead(np.array([1.0, 3, 3, 3, 0]), np.array([2.0, 2, 2, 2, 2])) == [2, 3, 4]
    assert steps_text([2, 3, 4]) == "steps 2–4"
    assert steps_text([2, 5]) == "steps 2, 5"
    assert steps_text([7]) == "step 7"
    assert steps_text([]) == "no step"


def test_recorded_leak_scores_take_each_model_of_a_notebook_run_and_its_shared_chance():
    across = lambda prefix, v: {f"classification.{prefix}person_from_pose_across_scenarios": v,
                                f"probe.{prefix}person_from_pose_across_scenarios": v / 2,
                                f"probe.{prefix}person_from_content_across_scenarios": 0.1}
    notebook = {"variants": {"adv": {}, "noadv": {}},
                "metrics": {**across("", 0.2), **across("noadv.", 0.4), "classification.person_from_pose": 0.6,
                            "classification.person_chance_across_scenarios": 0.12}}
    entries = recorded_leak_scores("kth_seed0", notebook)
    assert set(entries) == {"kth_seed0:adv", "kth_seed0:noadv"}
    assert entries["kth_seed0:noadv"]["scores"] == {**across("", 0.4), "classification.person_chance_across_scenarios": 0.12}
    assert entries["kth_seed0:adv"]["scores"] == {**across("", 0.2), "classification.person_chance_across_scenarios": 0.12}
    tagged = {"metrics": {**across("", 0.3), "classification.person_chance_across_scenarios": 0.12}}
    assert recorded_leak_scores("kth_cosine_seed0", tagged) == {"kth_cosine_seed0": {"scores": tagged["metrics"]}}
    assert recorded_leak_scores("kth_oracle_seed0", {"metrics": {"classification.person_from_pose": 0.6}}) == {}


def test_same_training_compares_final_losses_with_the_notebooks_adversarial_variant():
    final = {"iteration": 3000, "reconstruction": 0.0018367614829912782}
    chapter = {"metrics": {"train.final": {"adv": final, "noadv": {**final, "reconstruction": 0.0019}}}}
    assert same_training({"metrics": {"train.final": dict(final)}}, chapter)
    assert not same_training({"metrics": {"train.final": {**final, "reconstruction": final["reconstruction"] * (1 + 1e-12)}}}, chapter)
    assert not same_training({"metrics": {"train.final": chapter["metrics"]["train.final"]["noadv"]}}, chapter)
    assert same_training({"metrics": {"train.final": dict(final)}}, {"metrics": {"train.final": final}})
