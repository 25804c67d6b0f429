"""The ``drnet`` command line: train (resumable), error exits, bench output."""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from drnet_lib import claims, cli
from drnet_lib.config import PROFILES
from drnet_lib.checkpoint import load_checkpoint
from drnet_lib.predict import LSTMTrainer
from drnet_lib.results import host_cpu, recorded_cpu_threads
from drnet_lib.train import DrNetTrainer

TRAIN = ["train", "--profile", "smoke", "--device", "cpu"]
SMALL = ["--set", "train.iterations=4", "lstm.iterations=2"]


def test_train_writes_both_checkpoints_then_resumes(tmp_path, capsys, monkeypatch):
    argv = TRAIN + ["--checkpoint-dir", str(tmp_path)] + SMALL
    assert cli.main(argv) == 0
    run = tmp_path / "smoke" / "mnist_seed0"
    drnet, lstm = run / "drnet.pt", run / "lstm.pt"
    assert load_checkpoint(drnet)["iteration"] == 4
    assert load_checkpoint(lstm)["iteration"] == 2
    out = capsys.readouterr().out
    assert "DrNet: 4 iterations" in out and "pose LSTM: 2 iterations" in out
    stamps = {p: p.read_bytes() for p in (drnet, lstm)}

    # a second run finds both runs complete: it trains nothing and rewrites nothing
    def no_training(self):
        raise AssertionError("resumed run trained again")

    monkeypatch.setattr(DrNetTrainer, "step", no_training)
    monkeypatch.setattr(LSTMTrainer, "step", no_training)
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "DrNet: 4 iterations" in out and "pose LSTM: 2 iterations" in out
    assert all(p.read_bytes() == data for p, data in stamps.items())


def test_ctrl_c_during_training_exits_130_with_a_checkpoint_and_the_rerun_continues(tmp_path, capsys, monkeypatch,
                                                                                   ctrl_c_raises):
    argv = TRAIN + ["--checkpoint-dir", str(tmp_path), "--skip-lstm", "--set", "train.iterations=6"]
    original = DrNetTrainer.step

    def pressed_at_the_third(self):
        if self.iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(DrNetTrainer, "step", pressed_at_the_third)
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "DrNet stopped by SIGINT at iteration 3 of 6" in err and "run the same command (or notebook cell) again" in err
    drnet = tmp_path / "smoke" / "mnist_seed0" / "drnet.pt"
    assert load_checkpoint(drnet)["iteration"] == 3
    monkeypatch.setattr(DrNetTrainer, "step", original)
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "DrNet: continuing from iteration 3 of 6" in out and "DrNet: 6 iterations" in out


def test_train_reuses_the_drnet_checkpoint_when_only_lstm_settings_change(tmp_path, capsys, monkeypatch):
    """--skip-lstm, then a run with the same DrNet settings reuses the DrNet checkpoint."""
    where = TRAIN + ["--checkpoint-dir", str(tmp_path)]
    assert cli.main(where + ["--skip-lstm", "--set", "train.iterations=4"]) == 0
    lstm = tmp_path / "smoke" / "mnist_seed0" / "lstm.pt"
    assert not lstm.exists()
    capsys.readouterr()

    def no_training(self):
        raise AssertionError("the finished DrNet run trained again")

    monkeypatch.setattr(DrNetTrainer, "step", no_training)
    assert cli.main(where + ["--set", "train.iterations=4", "lstm.iterations=2"]) == 0
    # lstm.* settings are not part of the DrNet fingerprint: the DrNet run is reused
    assert "DrNet: 4 iterations" in capsys.readouterr().out
    assert load_checkpoint(lstm)["iteration"] == 2


def test_train_refuses_a_checkpoint_of_other_settings(tmp_path, capsys):
    where = TRAIN + ["--checkpoint-dir", str(tmp_path), "--skip-lstm", "--set", "train.iterations=2"]
    assert cli.main(where) == 0
    drnet = tmp_path / "smoke" / "mnist_seed0" / "drnet.pt"
    before = drnet.read_bytes()
    assert cli.main(where + ["train.lr=0.01"]) == 2
    assert "another configuration" in capsys.readouterr().err
    assert drnet.read_bytes() == before   # the old run's checkpoint is kept


def test_train_with_a_stale_checkpoint_exits_2(tmp_path, capsys):
    where = TRAIN + ["--checkpoint-dir", str(tmp_path), "--skip-lstm", "--set", "train.iterations=2"]
    assert cli.main(where) == 0
    capsys.readouterr()
    assert cli.main(where + ["train.lr=0.01"]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_unknown_profile_exits_2_with_the_choices(tmp_path, capsys):
    assert cli.main(["train", "--profile", "laptop", "--checkpoint-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "laptop" in err and "paper" in err and "cpu" in err and "smoke" in err
    assert not any(tmp_path.iterdir())


def test_bad_set_key_exits_2(tmp_path, capsys):
    assert cli.main(TRAIN + ["--checkpoint-dir", str(tmp_path), "--set", "train.iters=4"]) == 2
    err = capsys.readouterr().err
    assert "train.iters" in err and "train.iterations" in err
    assert not any(tmp_path.iterdir())


def test_a_device_this_machine_cannot_use_exits_2_naming_it(tmp_path, capsys):
    # both were tracebacks from inside torch
    train = ["train", "--profile", "smoke", "--checkpoint-dir", str(tmp_path)]
    assert cli.main(train + ["--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err
    missing = "cuda:7" if torch.cuda.is_available() and torch.cuda.device_count() < 8 else "cuda"
    if torch.cuda.is_available() and missing == "cuda":
        pytest.skip("this machine has 8 or more GPUs")
    assert cli.main(train + ["--device", missing]) == 2
    err = capsys.readouterr().err
    assert f"device '{missing}' asked for" in err and ("use device auto or cpu" in err or "GPU(s)" in err)
    assert cli.main(["bench", "--device", missing, "--experiments", "mnist", "--profiles", "smoke"]) == 2
    assert f"device '{missing}' asked for" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_set_without_equals_sign_is_refused(tmp_path, capsys):
    assert cli.main(TRAIN + ["--checkpoint-dir", str(tmp_path), "--set", "train.iterations"]) == 2
    assert "drnet train: error: --set expects key=value" in capsys.readouterr().err


def test_data_settings_given_by_set_are_used_and_given_twice_are_refused(tmp_path, capsys):
    parse = cli.build_parser().parse_args
    # the options' defaults used to be passed always, silently replacing --set data.source / data.root
    args = parse(TRAIN + ["--set", "data.source=real", "data.root=/elsewhere"])
    assert cli.data_fields(args, cli.parse_set(args.set)) == {}
    assert cli.data_fields(parse(TRAIN), {}) == {"data_root": str(cli.DEFAULT_DATA_ROOT)}
    assert cli.main(TRAIN + ["--checkpoint-dir", str(tmp_path), "--data-source", "embedded",
                             "--set", "data.source=real"]) == 2
    assert "data.source is given twice" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_no_resume_with_a_bad_setting_keeps_the_old_checkpoint(tmp_path, capsys):
    where = TRAIN + ["--checkpoint-dir", str(tmp_path), "--skip-lstm", "--set", "train.iterations=2"]
    assert cli.main(where) == 0
    drnet = tmp_path / "smoke" / "mnist_seed0" / "drnet.pt"
    before = drnet.read_bytes()
    assert cli.main(where + ["train.pair_sampling=fixd", "--no-resume"]) == 2   # it used to be deleted first
    assert "train.pair_sampling must be 'random' or 'fixed'" in capsys.readouterr().err
    assert drnet.read_bytes() == before


@pytest.mark.parametrize("setting,message", [("lstm.bn_mode=evl", "lstm.bn_mode must be"),
                                             ("train.lr=Infinity", "must be a finite number"),
                                             ("train.beta1=5", "train.beta1 or lstm.beta1")])
def test_bad_settings_are_refused_before_training(tmp_path, capsys, monkeypatch, setting, message):
    def no_training(self):
        raise AssertionError("trained before refusing the setting")

    monkeypatch.setattr(DrNetTrainer, "step", no_training)
    assert cli.main(TRAIN + ["--checkpoint-dir", str(tmp_path), "--set", setting]) == 2
    assert message in capsys.readouterr().err


def test_record_is_checked_before_training(tmp_path, capsys, monkeypatch):
    def no_training(self):
        raise AssertionError("trained before refusing")

    monkeypatch.setattr(DrNetTrainer, "step", no_training)
    where = TRAIN + ["--checkpoint-dir", str(tmp_path / "ckpt"), "--skip-lstm"]
    for tag in ("", "a/b", ".."):
        with pytest.raises(SystemExit) as stopped:
            cli.main(where + ["--record", tag])
        assert stopped.value.code == 2 and "part of a file name" in capsys.readouterr().err
    assert cli.main(where + ["--record", "r", "--set", "train.iterations=0"]) == 2
    assert "nothing would be trained" in capsys.readouterr().err
    a_file = tmp_path / "afile"
    a_file.write_text("")
    assert cli.main(where + ["--record", "r", "--results-dir", str(a_file)]) == 2   # was a traceback after training
    assert "drnet train: error:" in capsys.readouterr().err


def test_reproduce_and_bench_refuse_bad_options_before_running(tmp_path, capsys):
    reproduce = ["reproduce", "--profile", "smoke", "--results-dir", str(tmp_path)]
    assert cli.main(reproduce + ["--seeds", "-1"]) == 2
    assert "--seeds must not be negative" in capsys.readouterr().err
    assert cli.main(reproduce + ["--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err
    assert cli.main(reproduce + ["--experiments", "norb_grid", "--grid", "adversarial_weight=0,abc"]) == 2
    assert "--grid adversarial_weight=0,abc: cannot read 'abc'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    for bad in (["--repeats", "0"], ["--loss-iterations", "-1"], ["--scaling-batch", "0"]):
        with pytest.raises(SystemExit) as stopped:
            cli.main(["bench", "--profiles", "smoke"] + bad)
        assert stopped.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_unknown_dataset_and_version(capsys):
    assert cli.main(["data", "prepare", "faces"]) == 2
    assert "unknown dataset 'faces'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("drnet_lib ")


def test_set_values_are_parsed_as_json():
    assert cli.parse_set(["a.b=4", "c.d=0.5", "e.f=[1, 2]", "g.h=true", "i.j=dcgan"]) == {
        "a.b": 4, "c.d": 0.5, "e.f": [1, 2], "g.h": True, "i.j": "dcgan"}



def test_a_list_option_given_twice_keeps_both_and_the_first_replaces_the_default():
    # argparse's plain nargs list kept only the last use: "--set a=1 --set b=2" dropped a=1 silently
    parser = cli.build_parser()
    train = parser.parse_args(["train", "--set", "train.iterations=4", "--set", "lstm.iterations=2", "eval.swap_pairs=8"])
    assert train.set == ["train.iterations=4", "lstm.iterations=2", "eval.swap_pairs=8"]
    assert parser.parse_args(["train"]).set is None
    assert parser.parse_args(["reproduce"]).seeds == [0, 1, 2]
    assert parser.parse_args(["reproduce", "--seeds", "5"]).seeds == [5]
    assert parser.parse_args(["reproduce", "--seeds", "5", "--seeds", "6", "7"]).seeds == [5, 6, 7]
    bench = parser.parse_args(["bench", "--experiments", "mnist", "--experiments", "kth", "--variants", "bf16"])
    assert (bench.experiments, bench.variants) == (["mnist", "kth"], ["bf16"])
    # the default list itself is never changed by a use
    assert parser.parse_args(["reproduce"]).seeds == [0, 1, 2]

def test_bench_prints_one_json_line_per_configuration(capsys):
    assert cli.main(["bench", "--profiles", "smoke", "--repeats", "2", "--device", "cpu"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    rows = [json.loads(line) for line in lines]
    assert [r["experiment"] for r in rows] == sorted(PROFILES)  # one line per experiment
    assert all(r["profile"] == "smoke" and r["device"] == "cpu" and r["train_step_s"] > 0 for r in rows)
    assert all(r["host_cpu"] == host_cpu() for r in rows)   # which CPU: timings depend on it
    row = next(r for r in rows if r["experiment"] == "mnist")
    assert isinstance(row["train_step_s"], float) and row["train_step_s"] > 0
    assert row["lstm_step_s"] > 0 and row["data_batches_per_s"] > 0
    assert row["batch_size"] == 16 and row["image_size"] == 32 and row["content_model"] == "dcgan_unet"
    assert row["flops_per_step"] > 0 and 0 < row["matmul_peak_tflops"]


def test_train_record_measures_an_mnist_run_as_the_chapter_notebook_does(tmp_path, capsys):
    """``drnet train --experiment mnist --record`` measures what the chapter records (probes,
    judge, swaps, rollouts) with the notebook's seeds: on the smoke profile it gives the numbers
    the committed smoke notebook printed, and the verdict of every MNIST claim."""
    args = ["train", "--experiment", "mnist", "--profile", "smoke", "--device", "cpu",
            "--data-root", str(tmp_path / "data"), "--checkpoint-dir", str(tmp_path / "ckpt"),
            "--results-dir", str(tmp_path / "results"), "--record", "measured"]
    assert cli.main(args) == 0
    metrics = json.loads((tmp_path / "results" / "smoke" / "mnist_measured_seed0.json").read_text())["metrics"]
    printed = capsys.readouterr().out
    for claim in claims.MNIST_CLAIMS:
        assert claim.key in printed, f"no verdict printed for {claim.key}"
        claims.lookup(metrics, claim.key)          # recorded (a KeyError otherwise)
    notebook = json.loads((Path(__file__).parents[1] / "notebooks" / "01_mnist.ipynb").read_text())
    shown = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            for line in "".join(output.get("text", "")).splitlines():
                match = re.match(r"^((?:probe|swap)\.\S+)\s+(-?[0-9.]+)$", line)
                if match:
                    shown[match.group(1)] = float(match.group(2))
                match = re.match(r"^judge accuracy on real test frames: ([0-9.]+) \(each digit unoccluded: ([0-9.]+)\)$", line)
                if match:
                    shown["judge.real_accuracy"], shown["judge.clean_accuracy"] = map(float, match.groups())
                match = re.match(r"^judge identity accuracy at step\s+(\d+): ([0-9.]+)$", line)
                if match:
                    shown[f"rollout.identity_accuracy.{match.group(1)}"] = float(match.group(2))
    assert len(shown) >= 14, "the smoke notebook prints its probe, swap, judge and rollout scores"
    for key, value in shown.items():   # the notebook pins one thread on the smoke profile, as the tests do
        assert round(claims.lookup(metrics, key), 3) == pytest.approx(value), key


def test_train_record_measures_mnist_codes_before_the_pose_lstm_moves_batchnorm(tmp_path):
    """With lstm.bn_mode=train the LSTM's training moves the DrNet's BatchNorm statistics; the
    chapter measures probes, judge and swaps before it, and so must --record: its numbers are
    those of the DrNet as its checkpoint holds it (the LSTM never writes that checkpoint)."""
    from drnet_lib.config import get_config
    from drnet_lib.mnist_experiment import measure_codes
    from drnet_lib.train import make_test_bank

    where = ["--data-root", str(tmp_path / "data"), "--checkpoint-dir", str(tmp_path / "ckpt"),
             "--results-dir", str(tmp_path / "results")]
    assert cli.main(["train", "--experiment", "mnist", "--profile", "smoke", "--device", "cpu", *where,
                     "--record", "bn", "--set", "lstm.bn_mode=train"]) == 0
    metrics = json.loads((tmp_path / "results" / "smoke" / "mnist_bn_seed0.json").read_text())["metrics"]
    cfg = get_config("mnist", "smoke", 0, {"lstm.bn_mode": "train"}, data_root=str(tmp_path / "data"))
    trainer = DrNetTrainer(cfg, "cpu")
    assert trainer.resume(tmp_path / "ckpt" / "smoke" / "mnist_bn_seed0" / "drnet.pt")
    before_lstm, _ = measure_codes(cfg, trainer.model.eval(), trainer.bank, make_test_bank(cfg, trainer.device),
                                   trainer.device, progress=False)
    for key, value in before_lstm.items():
        assert metrics[key] == pytest.approx(value, abs=1e-12), key


def test_train_record_measures_a_kth_run(tmp_path):
    import subprocess
    import sys

    from drnet_lib.results import REPO_ROOT

    run = tmp_path / "results" / "smoke" / "kth_short_seed0.json"
    ckpt = tmp_path / "ckpt" / "smoke" / "kth_short_seed0" / "drnet.pt"

    def remeasure(*args, results=True):
        """tools/kth_remeasure.py with ``args`` (and, unless told, this test's results folder)."""
        extra = ["--results-dir", str(tmp_path / "results")] if results else []
        return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "kth_remeasure.py"), *args, *extra],
                              capture_output=True, text=True)

    def measured(name):
        return json.loads((tmp_path / "results" / "smoke" / f"{name}.json").read_text())

    args = ["train", "--experiment", "kth", "--profile", "smoke", "--device", "cpu",
            "--data-root", str(tmp_path / "data"), "--checkpoint-dir", str(tmp_path / "ckpt"),
            "--results-dir", str(tmp_path / "results"), "--record", "short",
            "--set", "train.iterations=4", "lstm.iterations=4"]
    assert cli.main(args) == 0
    metrics = json.loads(run.read_text())["metrics"]
    for key in ("classification.action_from_pose", "classification.action_from_content",
                "classification.person_from_pose", "prediction.copy_last_psnr"):
        assert key in metrics
    assert sorted(map(int, metrics["prediction.psnr"])) == list(range(1, 6))
    split = metrics["prediction.error_split"]
    assert set(split) <= {"all", "moving", "in place"} and "all" in split

    # the tool measures the same split, and the same person scores across scenarios, on the saved
    # checkpoint of a run recorded before the run measured them
    # a misspelt file anywhere in the list stops the tool before it measures anything, naming the file
    done = remeasure(f"{run}={ckpt}", f"{run}={ckpt.with_name('drent.pt')}")
    assert done.returncode == 2 and "no such file" in done.stderr and "drent.pt" in done.stderr
    assert not (tmp_path / "results" / "smoke" / "kth_error_split.json").exists()
    done = remeasure(f"{run}={ckpt}")
    assert done.returncode == 0, done.stderr
    entry = measured("kth_error_split")["runs"]["kth_short_seed0"]
    assert entry["iteration"] == 4 and entry["provenance"]["device"].startswith("cpu")
    for group, values in split.items():
        assert entry["split"][group] == pytest.approx(values)
    done = remeasure("--measure", "person_leak", f"{run}={ckpt}")
    assert done.returncode == 0, done.stderr
    scores = measured("kth_person_leak")["runs"]["kth_short_seed0"]["scores"]
    assert scores == pytest.approx({k: v for k, v in metrics.items() if k.endswith("_across_scenarios")}, nan_ok=True)
    assert set(scores) == {"classification.person_chance_across_scenarios"} | {
        f"{p}.person_from_{c}_across_scenarios" for p in ("classification", "probe") for c in ("pose", "content")}
    # the action classifier refitted with the run's own thread count: the run's scores again, exactly
    done = remeasure("--measure", "action_confusion", f"{run}={ckpt}")
    assert done.returncode == 0, done.stderr
    entry = measured("kth_action_confusion")["runs"]["kth_short_seed0"]
    assert entry["action_from_pose"] == metrics["classification.action_from_pose"]
    assert entry["confusion"] == metrics["classification.action_confusion_from_pose"]
    assert entry["action_from_frame_motion"] == metrics["classification.action_from_frame_motion"]
    recorded = json.loads(run.read_text())
    assert recorded_cpu_threads(entry) == recorded_cpu_threads(recorded) is not None
    # the pose LSTM's motion in code space, and shortened in pixels: every group's curve has a value per step
    done = remeasure("--measure", "pose_codes", f"{run}={ckpt}")
    assert done.returncode == 0, done.stderr
    entry = measured("kth_pose_codes")["runs"]["kth_short_seed0"]
    groups = [g for g in ("moving", "in place") if g in entry]
    assert groups and all(len(entry[g]["alignment"]) == 5 for g in groups)
    assert set(entry["scaled_motion"]["by_action"]) == set(entry["by_action"])
    done = remeasure("--measure", "ceiling_by_scenario", "--checkpoint-origin", "this run's own, named again",
                     f"{run}={ckpt}")
    assert done.returncode == 0, done.stderr
    entry = measured("kth_ceiling_by_scenario")["runs"]["kth_short_seed0"]
    assert entry["checkpoint_origin"] == "this run's own, named again"
    assert sum(g["clips"] for groups in entry["scenarios"].values() for g in groups.values()) == entry["clips"]
    assert set(entry["scenarios"]) <= {"d1", "d2", "d3", "d4"}
    # the run's prediction again, with its pose LSTM, on its own clips (the recorded numbers, up to the
    # memory layout's rounding) and on MCNet's list of the same persons' ranges
    done = remeasure("--measure", "mcnet_clips", f"{run}={ckpt}")
    assert done.returncode == 0, done.stderr
    lists = measured("kth_mcnet_clips")["runs"]["kth_short_seed0"]["lists"]
    own = lists["one_per_range"]
    for key in ("psnr", "copy_last_psnr", "ssim"):
        assert own[key] == pytest.approx(metrics[f"prediction.{key}"], rel=1e-3)
    assert own["steps_beating_copy_last"] == metrics["prediction.steps_beating_copy_last"]
    assert lists["mcnet"]["clips"] == sum(v["clips"] for v in lists["mcnet"]["by_action"].values()) > 0
    assert sorted(map(int, lists["mcnet"]["psnr"])) == list(range(1, 6))
    # a pose LSTM that did not finish is refused by name
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(ckpt, unfinished / "drnet.pt")
    lstm_state = torch.load(ckpt.with_name("lstm.pt"), weights_only=False)
    torch.save({**lstm_state, "iteration": 2}, unfinished / "lstm.pt")
    done = remeasure("--measure", "mcnet_clips", f"{run}={unfinished / 'drnet.pt'}")
    assert done.returncode != 0 and "the pose LSTM is at iteration 2, not the run's 4" in done.stderr
    # so is a DrNet that did not reach the run's length (a checkpoint now resumes under a longer one)
    drnet_state = torch.load(unfinished / "drnet.pt", weights_only=False)
    torch.save({**drnet_state, "iteration": 3}, unfinished / "drnet.pt")
    done = remeasure("--measure", "error_split", f"{run}={unfinished / 'drnet.pt'}")
    assert done.returncode != 0 and "DrNet is at iteration 3, not the run's 4" in done.stderr
    # the same on the persons DrNet trained on: its own file, its entry says whose clips
    done = remeasure("--measure", "ceiling_by_scenario", "--persons", "train", f"{run}={ckpt}")
    assert done.returncode == 0, done.stderr
    seen = measured("kth_ceiling_by_scenario_train_persons")
    assert "trained on" in seen["what"]
    train_entry = seen["runs"]["kth_short_seed0"]
    assert train_entry["persons"] == "train" and train_entry["scenarios"] != entry["scenarios"]
    # the same weights with BatchNorm statistics recomputed: the run finds DrNet done, refreshes, trains its LSTM;
    # the tool then measures each run's model as that run did
    refreshed_dir = tmp_path / "ckpt" / "smoke" / "kth_refreshed_seed0"
    refreshed_dir.mkdir(parents=True)
    shutil.copy(ckpt, refreshed_dir / "drnet.pt")
    assert cli.main(args[:-4] + ["refreshed", "--set", "train.iterations=4", "lstm.iterations=4",
                                 "lstm.bn_refresh_batches=2"]) == 0
    refreshed_run = tmp_path / "results" / "smoke" / "kth_refreshed_seed0.json"
    refreshed = json.loads(refreshed_run.read_text())["metrics"]
    assert refreshed["prediction.oracle_psnr_mean"] != metrics["prediction.oracle_psnr_mean"]
    done = remeasure("--measure", "self_reconstruction", f"{run}={refreshed_dir / 'drnet.pt'}",
                     f"{refreshed_run}={refreshed_dir / 'drnet.pt'}")
    assert done.returncode == 0, done.stderr
    selves = measured("kth_self_reconstruction")["runs"]
    assert selves["kth_short_seed0"]["scenarios"] != selves["kth_refreshed_seed0"]["scenarios"]
    for entry in selves.values():
        assert sum(g["clips"] for groups in entry["scenarios"].values() for g in groups.values()) == entry["clips"]
    refused = remeasure("--measure", "person_leak", "--persons", "train", f"{run}=x.pt", results=False)
    assert refused.returncode == 2 and "test persons only" in refused.stderr
    wrong = remeasure(str(run), results=False)
    assert wrong.returncode == 2 and "RESULTS_JSON=CHECKPOINT" in wrong.stderr


def test_bench_times_a_bf16_variant_against_fp32_with_a_loss_check(capsys):
    rc = cli.main(["bench", "--experiments", "mnist", "--profiles", "smoke", "--repeats", "2", "--device", "cpu",
                   "--variants", "bf16", "--loss-iterations", "6"])
    assert rc == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [r["variant"] for r in rows] == ["bf16"]
    row = rows[0]
    assert row["speedup_vs_fp32"] == pytest.approx(row["fp32_step_s"] / row["train_step_s"], rel=1e-2)
    check = row["loss_check"]
    assert check["iterations"] == 6 and check["fp32_reconstruction"] > 0
    assert check["variant_reconstruction"] != check["fp32_reconstruction"]          # bf16 really ran
    assert abs(check["relative_difference"]) < 0.1                                 # and learns the same


def test_bench_text_rows_label_every_figure_and_keep_a_variants_comparison():
    from drnet_lib.bench import text_row

    row = {"experiment": "mnist", "profile": "smoke", "variant": "bf16", "device": "cpu", "train_step_s": 0.0113,
           "lstm_step_s": 0.0041, "data_batches_per_s": 513.0, "achieved_tflops": 0.016,
           "fraction_of_matmul_peak": 0.086, "peak_memory_mb": 210.4, "speedup_vs_fp32": 0.907,
           "loss_check": {"iterations": 6, "relative_difference": -0.015}}
    line = text_row(row)
    assert line.startswith("mnist smoke bf16 (cpu): DrNet 11.3 ms/iteration, pose LSTM 4.1 ms/iteration")
    assert "data generation 513 batches/s" in line and "8.6% of this machine's fp32 matrix-product rate" in line
    assert "0.91x the speed of the default fp32 iteration" in line and "-1.5% against fp32" in line
    plain = text_row({**row, "variant": "plain", "peak_memory_mb": None, "loss_check": None})
    assert "peak memory" not in plain and "against fp32" not in plain


def test_bench_times_the_plain_reference_iteration_and_checks_its_losses_are_equal(capsys):
    rc = cli.main(["bench", "--experiments", "mnist", "--profiles", "smoke", "--repeats", "2", "--device", "cpu",
                   "--variants", "fp32", "plain", "--loss-iterations", "4"])
    assert rc == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [r["variant"] for r in rows] == ["fp32", "plain"]
    fp32, plain = rows
    # timed in alternating blocks with a fp32 trainer: the ratio of the two medians of those rounds
    assert plain["speedup_vs_fp32"] == pytest.approx(plain["fp32_step_s"] / plain["train_step_s"], rel=1e-2)
    check = plain["loss_check"]
    assert check["iterations"] == 4
    assert check["variant_reconstruction"] == pytest.approx(check["fp32_reconstruction"], rel=1e-5)


def test_alternating_timing_takes_turns_and_gives_each_step_its_median():
    from drnet_lib.bench import _alternating_seconds

    calls = []
    seconds = _alternating_seconds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                   torch.device("cpu"), rounds=3, block=2)
    assert "".join(calls) == "aabb" + "bbaa" + "aabb"     # each step is timed first and second in turn
    assert set(seconds) == {"a", "b"} and all(t >= 0 for t in seconds.values())


def test_unknown_bench_variant_is_refused(capsys):
    assert cli.main(["bench", "--profiles", "smoke", "--device", "cpu", "--variants", "fp8"]) == 2
    assert "unknown bench variant" in capsys.readouterr().err


def test_cuda_graphs_variant_needs_a_gpu(capsys):
    assert cli.main(["bench", "--profiles", "smoke", "--device", "cpu", "--variants", "cuda_graphs"]) == 2
    assert "needs a GPU" in capsys.readouterr().err


@pytest.mark.parametrize("variant", ["strict_fp32", "cudnn_benchmark"])
def test_cudnn_variants_need_a_gpu(capsys, variant):
    # they change only cuDNN's switches: on the CPU they would time the default again under their name
    assert cli.main(["bench", "--profiles", "smoke", "--device", "cpu", "--variants", variant]) == 2
    assert "run on a GPU" in capsys.readouterr().err


def test_bench_scaling_and_breakdown_rows(capsys):
    assert cli.main(["bench", "--experiments", "mnist", "--profiles", "smoke", "--device", "cpu", "--scaling",
                     "--scaling-batch", "4", "8", "--scaling-size", "32", "--breakdown"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    scaling = [r for r in rows if r["kind"] == "scaling"]
    assert [(r["batch_size"], r["image_size"]) for r in scaling] == [(4, 32), (8, 32)]
    assert all(r["train_step_s"] > 0 and r["ms_per_clip"] > 0 for r in scaling)
    assert {r["host_cpu"] for r in rows} == {host_cpu()}
    (breakdown,) = [r for r in rows if r["kind"] == "profile"]
    shares = [op["share"] for op in breakdown["top_ops"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1.0001
    assert any("conv" in op["op"] for op in breakdown["top_ops"])


def test_train_norb_skips_the_pose_lstm_it_has_no_schedule_for(tmp_path, capsys):
    argv = ["train", "--experiment", "norb", "--profile", "smoke", "--device", "cpu", "--checkpoint-dir",
            str(tmp_path), "--data-root", str(tmp_path / "data"), "--set", "train.iterations=2"]
    assert cli.main(argv) == 0
    assert "no pose LSTM in this experiment" in capsys.readouterr().out
    assert not (tmp_path / "smoke" / "norb_seed0" / "lstm.pt").exists()


def test_train_record_of_one_norb_variant_says_why_no_claim_is_judged(tmp_path, capsys):
    """NORB's claims compare a model trained with the adversarial loss and one without; a run of
    one says so instead of printing nothing."""
    argv = ["train", "--experiment", "norb", "--profile", "smoke", "--device", "cpu", "--checkpoint-dir",
            str(tmp_path), "--data-root", str(tmp_path / "data"), "--results-dir", str(tmp_path / "results"),
            "--record", "one", "--set", "train.iterations=2"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "no claim judged" in out and "classification.noadv.pose" in out and "--experiments norb" in out


def test_bench_help_lists_every_variant_the_bench_accepts():
    """The CLI names the variants by hand (importing the bench would import torch for every
    command); this keeps that list and drnet_lib.bench.CHOICES the same."""
    from drnet_lib import bench

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["bench"]
    help_text = next(a for a in sub._actions if a.dest == "variants").help
    listed = help_text.split(":")[0].split(" | ")
    assert listed == list(bench.CHOICES)



def test_kth_schedule_measures_milestones_of_one_run_and_resumes(tmp_path):
    """tools/kth_schedule.py: the model measured at a milestone is the one a run of that many
    iterations trains (same losses), a second call has nothing left to do, other settings are refused."""
    import subprocess
    import sys

    from drnet_lib.results import REPO_ROOT
    common = ["--profile", "smoke", "--results-dir", str(tmp_path / "results"), "--checkpoint-dir",
              str(tmp_path / "ckpt"), "--data-root", str(tmp_path / "data")]
    tool = [sys.executable, str(REPO_ROOT / "tools" / "kth_schedule.py")]
    done = subprocess.run(tool + ["--milestones", "2", "4", "--set", "lstm.iterations=3"] + common,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "results" / "smoke" / "kth_schedule.json"
    record = json.loads(out.read_text())
    assert list(record["milestones"]) == ["2", "4"] and record["changed"]["train.iterations"] == 4
    at_2 = record["milestones"]["2"]["metrics"]
    assert at_2["train.iterations_done"] == 2 and "prediction.oracle_psnr_mean" in at_2
    assert sorted(map(int, at_2["rollout.motion_ratio"])) == [10, 50]     # the tool's short rollouts

    straight = ["train", "--experiment", "kth", "--profile", "smoke", "--device", "cpu", "--skip-lstm",
                "--data-root", str(tmp_path / "data"), "--checkpoint-dir", str(tmp_path / "straight"),
                "--results-dir", str(tmp_path / "straight_results"), "--record", "two", "--set", "train.iterations=2"]
    assert cli.main(straight) == 0
    two = json.loads((tmp_path / "straight_results" / "smoke" / "kth_two_seed0.json").read_text())["metrics"]
    assert two["train.final"] == pytest.approx(at_2["train.final"])    # the same trajectory, milestone or not

    again = subprocess.run(tool + ["--milestones", "2", "4", "--set", "lstm.iterations=3"] + common,
                           capture_output=True, text=True)
    assert again.returncode == 0 and "wrote" not in again.stdout and json.loads(out.read_text()) == record
    other = subprocess.run(tool + ["--milestones", "2", "4", "--set", "lstm.iterations=5"] + common,
                           capture_output=True, text=True)
    assert other.returncode == 1 and "other settings" in other.stderr

    # --refresh-pair: each milestone measured as trained and with recomputed BatchNorm statistics, same weights
    paired = subprocess.run(tool + ["--milestones", "2", "--set", "lstm.iterations=3", "--refresh-pair", "2",
                                    "--tag", "paired"] + common, capture_output=True, text=True)
    assert paired.returncode == 0, paired.stderr
    entry = json.loads((tmp_path / "results" / "smoke" / "kth_paired.json").read_text())["milestones"]["2"]
    as_trained, refreshed = entry["metrics"], entry["refreshed"]["metrics"]
    assert as_trained["train.final"] == pytest.approx(at_2["train.final"])     # the same DrNet at milestone 2
    assert refreshed["train.final"] == as_trained["train.final"]
    assert refreshed["prediction.oracle_psnr_mean"] != as_trained["prediction.oracle_psnr_mean"]
    assert as_trained["prediction.oracle_psnr_mean"] == pytest.approx(at_2["prediction.oracle_psnr_mean"])
    unpaired = subprocess.run(tool + ["--milestones", "2", "--set", "lstm.iterations=3", "--tag", "paired"] + common,
                              capture_output=True, text=True)
    assert unpaired.returncode == 1 and "other settings" in unpaired.stderr


def test_the_paper_profile_on_a_cpu_says_it_is_made_for_a_gpu(tmp_path, capsys):
    assert cli.main(["train", "--profile", "paper", "--device", "cpu", "--checkpoint-dir", str(tmp_path),
                     "--skip-lstm", "--set", "train.iterations=1", "train.batch_size=4"]) == 0
    err = capsys.readouterr().err
    assert "paper profile is the authors' setting for a GPU" in err and "cpu profile is the one made for a CPU" in err
    capsys.readouterr()
    assert cli.main(TRAIN + ["--checkpoint-dir", str(tmp_path), "--skip-lstm", "--set", "train.iterations=1"]) == 0
    assert "for a GPU" not in capsys.readouterr().err


def test_every_option_of_every_command_says_what_it_does():
    import argparse

    def undocumented(parser, command):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from undocumented(sub, f"{command} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                yield f"{command} {'/'.join(action.option_strings) or action.dest}"

    assert list(undocumented(cli.build_parser(), "drnet")) == []
