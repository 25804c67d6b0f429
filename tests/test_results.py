"""The results contract (results.py) and the claims' verdicts (claims.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from drnet_lib import __version__, claims
from drnet_lib.config import config_from_dict, get_config
from drnet_lib.results import (grid_cell_summary, grid_tag, host_cpu, load_grid, load_runs, read_results,
                               results_path, summarize, write_results)


def _strict_json(text: str):
    """Parse as standard JSON: NaN / Infinity are not JSON and are refused."""
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def cfg():
    return get_config("mnist", "smoke", seed=3)


def test_write_results_layout_and_keys(cfg, tmp_path):
    metrics = {"probe.content_to_identity": 0.93, "rollout.identity_accuracy": {10: 0.9, 500: 0.8}}
    path = write_results(tmp_path, cfg, metrics, "cpu", wall_s=12.34)
    assert path == tmp_path / "smoke" / "mnist_seed3.json" == results_path(tmp_path, "smoke", "mnist", 3)
    record = _strict_json(path.read_text())
    assert {"experiment", "profile", "seed", "data_source", "config", "metrics", "provenance"} <= set(record)
    assert (record["experiment"], record["profile"], record["seed"]) == ("mnist", "smoke", 3)
    assert record["data_source"] == "embedded"
    assert config_from_dict(record["config"]) == cfg
    prov = record["provenance"]
    assert {"git_commit", "dirty", "drnet_lib", "torch", "device", "wall_s", "finished"} <= set(prov)
    assert prov["drnet_lib"] == __version__ and prov["torch"] == torch.__version__
    assert prov["wall_s"] == 12.3
    assert prov["device"] == f"cpu ({host_cpu()}, {torch.get_num_threads()} threads)"
    assert prov["processes"] == 1                           # not under torchrun
    assert prov["dirty"] in (True, False, None)
    assert prov["git_commit"] is None or len(prov["git_commit"]) == 40
    assert "T" in prov["finished"]
    # int keys of per-step tables become strings
    assert record["metrics"]["rollout.identity_accuracy"] == {"10": 0.9, "500": 0.8}
    assert read_results(path) == record


def test_write_results_extra_fields_and_plain_values(cfg, tmp_path):
    metrics = {"a": np.float32(0.5), "b": torch.tensor(2.0), "c": (1, 2), "d": np.int64(7)}
    path = write_results(tmp_path, cfg, metrics, "cpu", 1.0, extra={"notes": "x"})
    record = _strict_json(path.read_text())
    assert record["metrics"] == {"a": 0.5, "b": 2.0, "c": [1, 2], "d": 7}
    assert record["notes"] == "x"


def test_nan_becomes_null(cfg, tmp_path):
    metrics = {"nan": float("nan"), "inf": float("inf"), "table": {5: float("-inf"), 6: 1.0}}
    record = _strict_json(write_results(tmp_path, cfg, metrics, "cpu", 0.0).read_text())
    assert record["metrics"] == {"nan": None, "inf": None, "table": {"5": None, "6": 1.0}}


@pytest.mark.parametrize("value", [np.float64("nan"), np.float32("inf"), torch.tensor(float("nan"))],
                         ids=["np.float64-nan", "np.float32-inf", "torch-nan"])
def test_nan_numpy_and_torch_scalars_become_null(cfg, tmp_path, value):
    record = _strict_json(write_results(tmp_path, cfg, {"m": value}, "cpu", 0.0).read_text())
    assert record["metrics"]["m"] is None


def test_write_results_is_atomic_and_overwrites(cfg, tmp_path):
    write_results(tmp_path, cfg, {"m": 1.0}, "cpu", 0.0)
    path = write_results(tmp_path, cfg, {"m": 2.0}, "cpu", 0.0)
    assert read_results(path)["metrics"] == {"m": 2.0}
    assert [p.name for p in path.parent.iterdir()] == ["mnist_seed3.json"]   # no temp file left


def test_write_results_failure_leaves_no_partial_file(cfg, tmp_path):
    path = write_results(tmp_path, cfg, {"m": 1.0}, "cpu", 0.0)
    before = path.read_text()
    with pytest.raises(TypeError):
        write_results(tmp_path, cfg, {"m": object()}, "cpu", 0.0)   # not serialisable
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == ["mnist_seed3.json"]


def test_read_results_errors_name_the_file(tmp_path):
    bad = tmp_path / "mnist_seed0.json"
    bad.write_text('{"experiment": "mnist", "metrics": {')
    with pytest.raises(ValueError, match="mnist_seed0.json"):
        read_results(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_results(tmp_path / "missing.json")


@pytest.mark.parametrize("text, missing", [("{}", "experiment, seed, config, metrics, provenance"),
                                           ("null", "experiment, seed"), ('{"seed": 0, "metrics": {}}', "config")])
def test_a_results_file_that_is_json_but_no_runs_record_is_named(tmp_path, text, missing):
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "norb_grid_x_seed0.json").write_text(text)
    (tmp_path / "smoke" / "norb_seed0.json").write_text(text)
    for load in (load_runs, load_grid):
        with pytest.raises(ValueError, match=rf"norb\S*_seed0.json is not a run's record \(no [^)]*{missing}"):
            load(tmp_path, "smoke", "norb")


def test_load_runs_sorted_by_seed(tmp_path):
    for seed in (10, 2, 0):
        write_results(tmp_path, get_config("mnist", "smoke", seed=seed), {"m": float(seed)}, "cpu", 0.0)
    write_results(tmp_path, get_config("mnist", "cpu", seed=1), {"m": 1.0}, "cpu", 0.0)
    runs = load_runs(tmp_path, "smoke", "mnist")
    assert [r["seed"] for r in runs] == [0, 2, 10]
    assert load_runs(tmp_path, "paper", "mnist") == []


def _write_grid(tmp_path, values: dict):
    """values: (beta, pose_dim) -> per-seed metric values; one results file per cell and seed."""
    for (beta, pose_dim), per_seed in values.items():
        cell = {"adversarial_weight": beta, "pose_dim": pose_dim}
        for seed, v in enumerate(per_seed):
            write_results(tmp_path, get_config("norb", "smoke", seed=seed), {"classification.pose": v}, "cpu", 60.0,
                          extra={"grid": cell}, tag="grid_" + grid_tag(cell))


def test_grid_cells_summarised_over_their_seeds(tmp_path):
    values = {(0.0, 2): [0.30, 0.40, 0.35], (0.1, 10): [0.60, 0.50, 0.70], (0.1, 2): [0.25]}
    _write_grid(tmp_path, values)
    runs = load_grid(tmp_path, "smoke", "norb_grid")
    assert len(runs) == 7 and sorted(runs["seed"].unique()) == [0, 1, 2]
    table = grid_cell_summary(runs, ["classification.pose"])
    assert len(table) == 3
    for (beta, pose_dim), per_seed in values.items():
        row = table[(table["adversarial_weight"] == beta) & (table["pose_dim"] == pose_dim)].iloc[0]
        assert row["seeds"] == len(per_seed)
        assert row["classification.pose mean"] == pytest.approx(np.mean(per_seed))
        if len(per_seed) > 1:
            assert row["classification.pose std"] == pytest.approx(np.std(per_seed, ddof=1))
        else:
            assert math.isnan(row["classification.pose std"])


def test_summarize_matches_numpy_and_scipy():
    x = [0.91, 0.87, 0.95, 0.89]
    s = summarize(x + [None])   # None (a missing value) is dropped
    arr = np.array(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=arr.mean(), scale=stats.sem(arr))
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(arr.mean(), rel=1e-12)
    assert s["std"] == pytest.approx(arr.std(ddof=1), rel=1e-12)
    assert s["ci95"][0] == pytest.approx(lo, rel=1e-10) and s["ci95"][1] == pytest.approx(hi, rel=1e-10)
    # by hand: 1, 2, 3 -> mean 2, sd 1, half-width t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051
    s3 = summarize([1, 2, 3])
    assert s3["mean"] == 2 and s3["std"] == pytest.approx(1.0)
    assert s3["ci95"][1] - 2 == pytest.approx(4.302652729749464 / math.sqrt(3), rel=1e-9)


def test_summarize_small_samples():
    one = summarize([0.5])
    assert one["n"] == 1 and one["mean"] == 0.5 and math.isnan(one["std"]) and all(map(math.isnan, one["ci95"]))
    none = summarize([None])
    assert none["n"] == 0 and math.isnan(none["mean"])


# -- claims -----------------------------------------------------------------------------------

def _metrics(step_table):
    return {
        "probe.content_to_identity": 0.95,
        "probe.pose_to_identity": 0.4,           # goal <= 0.25: not met
        "probe.pose_to_position_r2": 0.85,
        "swap.identity_accuracy": 0.85,          # exactly the goal: met
        "rollout.identity_accuracy": step_table,
    }


@pytest.mark.parametrize("table", [{"10": 0.9, "100": 0.8, "500": 0.75}, {10: 0.9, 100: 0.8, 500: 0.75}],
                         ids=["str-keys", "int-keys"])
def test_verdicts_with_per_step_tables(table):
    rows = claims.verdicts("mnist", _metrics(table))
    got = {c.key: (value, met) for c, value, met in rows}
    assert got == {
        "probe.content_to_identity": (0.95, True),
        "probe.pose_to_identity": (0.4, False),
        "probe.pose_to_position_r2": (0.85, True),
        "swap.identity_accuracy": (0.85, True),
        "rollout.identity_accuracy.500": (0.75, True),
    }


def test_verdicts_read_back_from_a_results_file(cfg, tmp_path):
    path = write_results(tmp_path, cfg, _metrics({10: 0.9, 100: 0.8, 500: 0.6}), "cpu", 0.0)
    rows = claims.verdicts("mnist", read_results(path)["metrics"])
    assert [met for _, _, met in rows] == [True, False, True, True, False]


def test_claim_describe_and_lower_is_better():
    c = claims.Claim("x", "a claim", 0.25, higher_is_better=False)
    assert c.met(0.25) and c.met(0.1) and not c.met(0.3)
    assert "NOT supported" in c.describe(0.3) and "<= 0.25" in c.describe(0.3)
    assert claims.verdicts("unknown", {}) == []


def test_seed_table_marks_a_verdict_the_seeds_disagree_on():
    # position r2 goal 0.8: mean 0.81 passes, but one seed of three misses it
    runs = [{"metrics": {"probe.pose_to_position_r2": v}} for v in (0.85, 0.83, 0.75)]
    row = claims.seed_table("mnist", runs)[0]
    assert row["verdict"] == "supported (seeds disagree)" and row["seeds meeting the goal"] == "2/3"
    assert row["claim of"] == claims.PAPER
    agree = claims.seed_table("mnist", [{"metrics": {"probe.pose_to_position_r2": v}} for v in (0.5, 0.6)])
    assert agree[0]["verdict"] == "not supported"
    kth = {c.key: c.origin for c in claims.KTH_CLAIMS}
    assert kth["classification.person_from_pose"] == claims.STUDY


def test_seed_table_judges_an_ablation_by_its_own_claims():
    # the same probe value passes "no identity in the pose code" and fails its ablation's opposite claim
    runs = [{"metrics": {"probe.pose_to_identity": v}} for v in (0.12, 0.15)]
    chapter = {row["measurement"]: row["verdict"] for row in claims.seed_table("mnist", runs)}
    ablation = claims.seed_table("mnist", runs, claims.MNIST_NOADV_CLAIMS)
    assert chapter == {"probe.pose_to_identity": "supported"}
    assert [(row["measurement"], row["verdict"]) for row in ablation] == [("probe.pose_to_identity", "not supported")]
    assert claims.MNIST_NOADV_CLAIMS[0].runs_meeting(runs) == 0 and claims.MNIST_CLAIMS[1].runs_meeting(runs) == 2


def test_reworded_verdicts_finds_a_printed_claim_whose_wording_or_goal_changed(tmp_path):
    import nbformat

    current = claims.KTH_CLAIMS[1]
    printed = [current.describe(0.6),                                          # up to date
               current.describe(0.6).replace(current.claim, "an older sentence"),  # reworded
               claims.KTH_CLAIMS[2].describe(0.3).replace(f"goal <= {claims.KTH_CLAIMS[2].goal}", "goal <= 0.2")]
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print_verdicts()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(printed) + "\n")]
    nb.cells.append(cell)
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, str(path))
    found = claims.reworded_verdicts(path, "kth")
    assert [(f["key"], f["printed"], f["goal_changed"]) for f in found] == [
        (current.key, "an older sentence", False), (claims.KTH_CLAIMS[2].key, claims.KTH_CLAIMS[2].claim, True),
        # claims the page never printed (added after its run)
        (claims.KTH_CLAIMS[0].key, None, False), (claims.KTH_CLAIMS[3].key, None, False)]
    assert found[0]["current"] == current.claim


def test_provenance_outside_a_checkout_names_the_commit_pip_installed(tmp_path, monkeypatch):
    # installed as a wheel (Colab: pip install git+URL@main) there is no checkout to ask git about,
    # and the working directory may be another repository: the commit comes from the install record
    from drnet_lib import results

    info = tmp_path / "fakedrnet-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakedrnet\nVersion: 0.1\n")
    (info / "direct_url.json").write_text(json.dumps(
        {"url": "https://github.com/drnet-book/drnet-book", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert results.installed_commit("fakedrnet") == "abc123"
    assert results.installed_commit("no-such-distribution") is None
    site_packages = tmp_path / "site-packages"
    site_packages.mkdir()
    monkeypatch.setattr(results, "PACKAGE_PARENT", site_packages)
    monkeypatch.setattr(results, "installed_commit", lambda: "abc123")
    assert not results.runs_from_checkout() and results._git("rev-parse", "HEAD") is None
    made = results.provenance("cpu", 1.0)
    assert made["git_commit"] == "abc123" and made["dirty"] is None


def test_recalled_paper_values_exist_only_for_norbs_table():
    assert claims.recalled_paper_value("norb", "classification.adv.pose") == claims.NORB_PAPER_RECALLED["adv"]["pose"]
    assert claims.recalled_paper_value("norb", "classification.chance") is None
    assert claims.recalled_paper_value("mnist", "probe.pose_to_identity") is None


@pytest.fixture
def fresh_code_state():
    """code_state is read once per process; these tests read it again, and leave none of theirs behind."""
    from drnet_lib import results

    results._code_state.cache_clear()
    yield results
    results._code_state.cache_clear()


def test_provenance_names_the_code_as_it_was_when_training_started(fresh_code_state, monkeypatch):
    """A commit made while a run goes (HEAD moves, the tree changes) does not relabel its results:
    the commit and the tree's cleanliness are read when first asked, which training does at its start."""
    results = fresh_code_state
    answers = {"rev-parse": "a" * 40, "status": ""}
    monkeypatch.setattr(results, "_git", lambda *args: answers[args[0]])
    monkeypatch.delenv("DRNET_GIT_COMMIT", raising=False)
    assert results.current_commit() == "a" * 40            # a trainer starts
    answers.update({"rev-parse": "b" * 40, "status": " M drnet_lib/train.py"})
    made = results.provenance("cpu", 1.0)
    assert made["git_commit"] == "a" * 40 and made["dirty"] is False
    monkeypatch.setenv("DRNET_GIT_COMMIT", "c" * 40)        # a commit the caller names is its own answer
    assert results.provenance("cpu", 1.0)["git_commit"] == "c" * 40


def test_own_training_minutes_leave_out_a_drnet_only_read_from_another_run():
    from drnet_lib.results import own_training_minutes

    copied = {"wall_s": 30 * 60, "models": {"x_seed0/drnet.pt": {"iterations_this_process": 0, "training_min": 26.0},
                                             "x_seed0/lstm.pt": {"iterations_this_process": 3000, "training_min": 4.0}}}
    assert own_training_minutes({"provenance": copied}) == pytest.approx(4.0)
    resumed = {"wall_s": 30 * 60, "models": {"x_seed0/drnet.pt": {"iterations_this_process": 10, "training_min": 26.0}}}
    assert own_training_minutes({"provenance": resumed}) == pytest.approx(30.0)   # it trained: all of it counts
    assert own_training_minutes({"provenance": {"wall_s": 600}}) == pytest.approx(10.0)   # older results: as recorded
