"""Configurations: profiles, overrides, round trips, and the paper profile against drnet-py."""

from __future__ import annotations

import json
import re

import pytest

from drnet_lib.config import (PROFILES, ExperimentConfig, apply_overrides, config_from_dict, differences,
                              format_differences, get_config)
from drnet_lib.models import DrNet


@pytest.mark.parametrize("profile", sorted(PROFILES["mnist"]))
def test_every_profile_builds(profile):
    cfg = get_config("mnist", profile, seed=2)
    assert isinstance(cfg, ExperimentConfig)
    assert (cfg.experiment, cfg.profile, cfg.seed) == ("mnist", profile, 2)
    assert cfg.data.digit_size < cfg.model.image_size
    assert cfg.model.channels >= cfg.data.num_digits


def test_smoke_profile_builds_a_model():
    cfg = get_config("mnist", "smoke")
    m = DrNet(cfg.model)
    assert m.decoder.use_skips and cfg.model.image_size == 32


def test_profiles_are_the_expected_ones():
    assert set(PROFILES["mnist"]) == {"paper", "cpu", "smoke"}


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError) as err:
        get_config("mnist", "laptop")
    msg = str(err.value)
    assert "laptop" in msg and all(p in msg for p in ("paper", "cpu", "smoke"))


def test_unknown_experiment_names_the_choices():
    with pytest.raises(ValueError) as err:
        get_config("ucf101", "cpu")
    assert "ucf101" in str(err.value) and "mnist" in str(err.value) and "kth" in str(err.value)


@pytest.mark.parametrize("key", ["train.iteration", "model", "optimizer.lr", "lstm.hidden.size", "seed"])
def test_unknown_override_key_lists_valid_keys(key):
    with pytest.raises(KeyError) as err:
        get_config("mnist", "smoke", overrides={key: 1})
    msg = str(err.value)
    assert repr(key) in msg
    for valid in ("train.iterations", "model.image_size", "lstm.hidden", "eval.swap_pairs", "data.max_velocity"):
        assert valid in msg


def test_overrides_apply_to_a_copy():
    base = get_config("mnist", "smoke")
    changed = apply_overrides(base, {"train.iterations": 7, "eval.rollout_checkpoints": [1, 2]})
    assert changed.train.iterations == 7 and base.train.iterations == 30
    assert changed.eval.rollout_checkpoints == (1, 2)   # lists become tuples where a tuple is expected
    assert apply_overrides(base, {"train.iterations": None}).train.iterations == 30  # None: not set


def test_data_source_argument():
    assert get_config("mnist", "smoke", data_source="real", data_root="/tmp/x").data.source == "real"
    with pytest.raises(KeyError, match="colour"):
        get_config("mnist", "smoke", colour=True)


@pytest.mark.parametrize("profile", sorted(PROFILES["mnist"]))
def test_config_round_trips_through_a_dict_and_json(profile):
    cfg = get_config("mnist", profile, seed=5, overrides={"train.lr": 0.01})
    assert config_from_dict(cfg.to_dict()) == cfg
    through_json = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert through_json == cfg
    assert isinstance(through_json.eval.rollout_checkpoints, tuple)
    assert through_json.fingerprint() == cfg.fingerprint()


def test_fingerprint_sections():
    a = get_config("mnist", "smoke")
    b = get_config("mnist", "smoke", overrides={"eval.swap_pairs": 3})
    assert a.fingerprint("model", "train") == b.fingerprint("model", "train")
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint("train") != get_config("mnist", "smoke", overrides={"train.lr": 1.0}).fingerprint("train")
    assert len(a.fingerprint()) == 16


def test_differences_cpu_vs_paper():
    cpu, paper = get_config("mnist", "cpu"), get_config("mnist", "paper")
    rows = differences(cpu, paper)
    assert rows
    table = {k: (a, b) for k, a, b in rows}
    assert table["model.image_size"] == (32, 64)
    assert table["train.iterations"] == (cpu.train.iterations, 120_000) and cpu.train.iterations < 120_000
    assert "train.lr" not in table          # the same optimiser settings
    assert all(a != b for a, b in table.values())
    assert differences(paper, paper) == []


def test_paper_profile_matches_drnet_py_defaults():
    """drnet-py train_drnet.py defaults (reference/drnet.md §3.1) and its MNIST generator (§1.3)."""
    c = get_config("mnist", "paper")
    assert c.train.lr == 0.002
    assert c.train.beta1 == 0.5
    assert c.train.batch_size == 100
    assert c.train.iterations == 200 * 600 == 120_000
    assert c.train.similarity_weight == 1.0
    assert c.model.content_dim == 128 and c.model.pose_dim == 10
    assert c.model.image_size == 64
    assert c.model.content_model == "dcgan_unet" and c.model.pose_model == "dcgan"
    assert c.model.channels == 3
    assert c.model.base_width == 64
    assert c.model.discriminator_width == 100
    assert c.data.clip_length == 20            # max_step
    assert c.data.num_digits == 2 and c.data.digit_size == 32 and c.data.max_velocity == 4
    assert c.lstm.lr == 0.0002 and c.lstm.beta1 == 0.9 and c.lstm.hidden == 256 and c.lstm.layers == 2


def test_fingerprint_ignores_how_often_a_run_saves_and_logs():
    base = get_config("kth", "cpu")
    cadence = get_config("kth", "cpu", overrides={"train.checkpoint_every": 7, "train.log_every": 3,
                                                  "lstm.checkpoint_every": 11, "lstm.log_every": 2})
    assert cadence.fingerprint() == base.fingerprint()
    # the run's length counts here; a trainer leaves it out where its steps do not depend on it (test_train)
    assert get_config("kth", "cpu", overrides={"train.iterations": 7}).fingerprint() != base.fingerprint()


def test_fingerprint_ignores_where_the_data_sits_but_not_what_it_is():
    a = get_config("mnist", "smoke", data_root="data")
    b = get_config("mnist", "smoke", data_root="../data")
    c = get_config("mnist", "smoke", data_source="real")
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


def test_differences_leave_out_where_the_data_sits():
    a = get_config("mnist", "smoke", data_root="../data")
    assert all(key != "data.root" for key, _, _ in differences(a, get_config("mnist", "paper")))


def test_settings_at_their_default_do_not_enter_the_fingerprint():
    """So a setting added later (with a default) leaves the fingerprints of older runs unchanged."""
    import hashlib
    import json

    paper = get_config("mnist", "paper")                   # every eval.* setting at its default
    empty = hashlib.sha256(json.dumps({"eval": {}}, sort_keys=True).encode()).hexdigest()[:16]
    assert paper.fingerprint("eval") == empty
    changed = get_config("mnist", "paper", overrides={"eval.swap_pairs": 7})
    assert changed.fingerprint("eval") != empty


def test_format_differences_aligns_every_column():
    """Long values (the kth cpu profile's rollout checkpoints) must not push their row out of line."""
    text = format_differences(get_config("kth", "cpu"), get_config("kth", "paper"))
    lines = text.split("\n")
    assert len(lines) == len(differences(get_config("kth", "cpu"), get_config("kth", "paper")))
    assert any("(10, 50, 100, 200)" in line for line in lines)
    assert len({line.index("paper: ") for line in lines}) == 1
    assert format_differences(get_config("kth", "paper"), get_config("kth", "paper")).startswith("(the same settings")


@pytest.mark.parametrize("key, value, says", [
    ("train.iterations", "abc", "takes int"), ("train.iterations", True, "takes int"),
    ("train.iterations", -5, "must not be negative"), ("train.lr", -0.1, "must not be negative"),
    ("model.content_model", 3, "takes str"), ("lstm.bn_refresh_batches", 2.5, "takes int"),
    ("train.batch_size", 0, "at least 1"), ("model.pose_dim", 0, "at least 1"),
    ("train.checkpoint_every", 0, "at least 1"), ("lstm.n_past", 0, "at least 1"), ("eval.metric_steps", 0, "at least 1"),
])
def test_a_value_of_the_wrong_type_or_sign_is_refused_by_name(key, value, says):
    with pytest.raises(ValueError, match=says) as err:
        get_config("kth", "smoke", overrides={key: value})
    assert repr(key) in str(err.value)


@pytest.mark.parametrize("overrides, says", [
    ({"data.clip_length": 1}, r"'data.clip_length' is 1, but a training clip needs at least 2 frames"),
    ({"data.clip_length": 3, "train.pair_sampling": "fixed"}, r"at least 4 frames with train.pair_sampling='fixed'"),
])
def test_a_clip_too_short_for_an_iterations_frames_is_refused(overrides, says):
    # one frame used to fail deep in the sampler ("random_ expects 'from' to be less than 'to'")
    with pytest.raises(ValueError, match=says):
        get_config("mnist", "smoke", overrides=overrides)
    get_config("mnist", "smoke", overrides={"data.clip_length": 2})


def test_every_prepare_refuses_a_source_its_dataset_has_not_and_names_the_choices(tmp_path):
    """The data modules check their source against config.DATA_SOURCES (one list, which the
    command line offers too): nothing is written for an unknown source."""
    from drnet_lib import cli
    from drnet_lib.data import chairs, kth, mnist, norb

    for prepare, name in ((mnist.prepare, "mnist"), (norb.prepare, "norb"), (kth.prepare, "kth"),
                          (chairs.prepare_chairs, "suncg")):
        with pytest.raises(ValueError, match=f"unknown {name} data source 'authorz'; choose 'embedded' or 'real'"):
            prepare("authorz", tmp_path)
    with pytest.raises(ValueError, match="unknown mnist data source 'authors'"):
        mnist.load_digits("authors", "train", tmp_path)
    assert not any(tmp_path.iterdir())
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["reproduce", "--data-source", "authors"])   # not every notebook reads it
    assert parser.parse_args(["data", "prepare", "suncg", "--source", "authors"]).source == "authors"
    assert parser.parse_args(["train", "--data-source", "authors"]).data_source == "authors"


def test_a_data_source_the_experiment_has_not_is_refused_by_name():
    with pytest.raises(ValueError, match=r"'data.source' .* is 'authors'; kth reads 'embedded' or 'real'"):
        get_config("kth", "smoke", data_source="authors")
    assert get_config("suncg", "smoke", data_source="authors").data.source == "authors"


def test_a_data_root_that_is_a_file_is_refused(tmp_path):
    afile = tmp_path / "data"
    afile.write_text("")
    with pytest.raises(ValueError, match=f"'data.root' .* is {re.escape(str(afile))}, which is a file: give a folder"):
        get_config("mnist", "smoke", data_root=str(afile))
    assert get_config("mnist", "smoke", data_root=str(tmp_path / "new")).data.root == str(tmp_path / "new")


@pytest.mark.parametrize("seed, says", [("abc", "takes int"), (1.5, "takes int"), (True, "takes int"),
                                         (-1, "must not be negative")])
def test_a_seed_that_is_not_a_whole_number_from_zero_is_refused(seed, says):
    # papermill's '-p seed abc' arrives as a string; it used to be taken and fail deep in training
    with pytest.raises(ValueError, match=f"'seed' {says}"):
        get_config("mnist", "smoke", seed=seed)


def test_numpy_numbers_are_taken_as_numbers():
    import numpy as np

    cfg = get_config("mnist", "smoke", seed=np.int64(2), overrides={"train.lr": np.float32(0.001),
                                                                    "train.iterations": np.int64(5)})
    assert (cfg.seed, cfg.train.iterations, cfg.train.lr) == (2, 5, pytest.approx(0.001))
    assert type(cfg.seed) is int and type(cfg.train.iterations) is int and type(cfg.train.lr) is float


def test_the_counts_that_may_be_zero_take_zero():
    # no training (an untrained model), no BatchNorm refresh, test clips drawn with seed 0
    cfg = get_config("kth", "smoke", seed=0, overrides={"train.iterations": 0, "lstm.iterations": 0,
                                                        "lstm.bn_refresh_batches": 0, "data.test_seed": 0})
    assert (cfg.train.iterations, cfg.lstm.iterations, cfg.lstm.bn_refresh_batches, cfg.data.test_seed) == (0, 0, 0, 0)


def test_values_of_the_settings_own_kinds_are_accepted():
    cfg = get_config("kth", "smoke", overrides={"train.adversarial_weight": 0, "train.channels_last": True,
                                                "train.conv_tf32": "pytorch", "eval.rollout_checkpoints": [1, 2]})
    assert cfg.train.adversarial_weight == 0 and cfg.train.channels_last is True


def test_a_whole_number_for_a_float_setting_is_the_same_run_as_its_float():
    # the CLI's --set parses "0" as the int 0; a checkpoint trained with 0.0 (a notebook's) must resume
    as_int = get_config("kth", "smoke", overrides={"train.adversarial_weight": 0})
    as_float = get_config("kth", "smoke", overrides={"train.adversarial_weight": 0.0})
    assert type(as_int.train.adversarial_weight) is float
    assert as_int.fingerprint() == as_float.fingerprint()


def test_cli_reports_a_bad_setting_without_a_traceback(capsys):
    from drnet_lib.cli import main

    assert main(["train", "--experiment", "kth", "--profile", "smoke", "--set", "train.iterations=abc"]) == 2
    assert "train.iterations" in capsys.readouterr().err


def test_cli_refuses_a_data_root_that_is_a_file_for_training_and_preparing(tmp_path, capsys):
    from drnet_lib.cli import main

    afile = tmp_path / "data"
    afile.write_text("")
    assert main(["train", "--experiment", "kth", "--profile", "smoke", "--data-root", str(afile)]) == 2
    assert f"(--data-root, the notebooks' data_root) is {afile}, which is a file" in capsys.readouterr().err
    assert main(["data", "prepare", "kth", "--root", str(afile)]) == 2
    assert f"--root is {afile}, which is a file" in capsys.readouterr().err
    assert afile.read_text() == ""


def test_papermill_folder_parameters_are_checked_at_the_setup_cell(tmp_path):
    from drnet_lib.config import check_papermill_parameters

    parameters = 'profile = "smoke"\ndata_root = "../data"\nresults_dir = "../results"\ncheckpoint_dir = "../checkpoints"\n'
    fresh = tmp_path / "new" / "results"
    check_papermill_parameters(["install", parameters, f'# Parameters\nresults_dir = "{fresh}"\n', "setup"])
    assert fresh.is_dir()   # made now: a folder that cannot be made stops the run here, not after training
    a_file = tmp_path / "afile"
    a_file.write_text("")
    with pytest.raises(ValueError, match=r"results_dir: the folder .*afile/results' cannot be made"):
        check_papermill_parameters(["install", parameters, f'# Parameters\nresults_dir = "{a_file}/results"\n', "setup"])
    with pytest.raises(ValueError, match=r"checkpoint_dir takes a folder path \(a string\), got 5"):
        check_papermill_parameters(["install", parameters, "# Parameters\ncheckpoint_dir = 5\n", "setup"])


def test_a_misspelt_papermill_parameter_is_refused_by_name():
    from drnet_lib.config import check_papermill_parameters

    parameters = 'profile = "smoke"   # which profile\nseed = 0\n'
    check_papermill_parameters(["install", parameters, "setup"])                         # no papermill: nothing to check
    check_papermill_parameters(["install", parameters, '# Parameters\nprofile = "cpu"\n', "setup"])
    with pytest.raises(ValueError, match=r"\['profil'\].*\['profile', 'seed'\]"):
        check_papermill_parameters(["install", parameters, '# Parameters\nprofil = "cpu"\nseed = 1\n', "setup"])
