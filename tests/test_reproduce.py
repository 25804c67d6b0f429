"""drnet reproduce: papermill runs land in results/<profile>/, existing results are skipped unless
forced, and a failing notebook is reported with its path without stopping the batch."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from drnet_lib import prose_refresh, reproduce


# what a run's results file holds besides its own values (results.RUN_KEYS): a file without them is no run's record
RECORD = {"experiment": "ok", "config": {}, "metrics": {}, "provenance": {}}


def tiny_notebook(path, body: str):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\nseed = 0\nresults_dir = "."')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def fake_experiments(tmp_path, monkeypatch):
    """Two notebooks in a fake repository: 'ok' writes its JSON, 'broken' raises."""
    (tmp_path / "notebooks").mkdir()
    writes = ("import json, pathlib\n"
              "p = pathlib.Path(results_dir, profile, f'ok_seed{seed}.json')\n"
              "p.parent.mkdir(parents=True, exist_ok=True)\n"
              f"p.write_text(json.dumps({{**{RECORD!r}, 'seed': seed, 'profile': profile}}))")
    tiny_notebook(tmp_path / "notebooks" / "ok.ipynb", writes)
    tiny_notebook(tmp_path / "notebooks" / "broken.ipynb", "raise RuntimeError('deliberately broken')")
    monkeypatch.setattr(reproduce, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "NOTEBOOKS", {"ok": "ok.ipynb", "broken": "broken.ipynb"})
    monkeypatch.setattr(reproduce, "PROFILES_OF", {name: "mnist" for name in ("ok", "broken", "cell", "killed")})
    return tmp_path


def test_runs_skip_and_failures(fake_experiments, capsys):
    results = fake_experiments / "results"
    outcomes = reproduce.reproduce(["broken", "ok"], [0, 1], profile="smoke", results_dir=results, progress=False)
    status = {(o.experiment, o.seed): o.status for o in outcomes}
    assert status == {("broken", 0): "failed", ("broken", 1): "failed", ("ok", 0): "done", ("ok", 1): "done"}
    assert json.loads((results / "smoke" / "ok_seed1.json").read_text()) == {**RECORD, "seed": 1, "profile": "smoke"}
    assert (results / "smoke" / "ok_seed1.ipynb").exists()           # the executed notebook
    executed = json.loads((results / "smoke" / "ok_seed1.ipynb").read_text())
    assert executed["metadata"]["papermill"]["output_path"] == str(results / "smoke" / "ok_seed1.ipynb")
    failed = [o for o in outcomes if o.status == "failed"]
    assert all("deliberately broken" in o.error and o.notebook.name.startswith("broken_seed") for o in failed)
    assert all(o.notebook.name.endswith(".failed.ipynb") and o.notebook.exists() for o in failed)  # kept to read
    summary = capsys.readouterr().out
    assert "failed" in summary and "broken_seed0.failed.ipynb" in summary
    assert not list(results.rglob("*.running.ipynb"))

    again = reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)
    assert again[0].status == "skipped" and again[0].error == ""
    (results / "smoke" / "ok_seed0.running.ipynb").write_text("{}")   # what a killed rerun leaves
    again = reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)
    assert again[0].status == "skipped" and "ok_seed0.running.ipynb is left from a rerun" in again[0].error
    assert "note: ok_seed0.running.ipynb is left from a rerun that did not finish" in capsys.readouterr().out
    forced = reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, force=True, progress=False)
    assert forced[0].status == "done"
    # a results file damaged after its run is not a finished run: the run is made again
    (results / "smoke" / "ok_seed0.json").write_text('{"seed": 0, "prof')
    again = reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)
    assert again[0].status == "done"
    assert json.loads((results / "smoke" / "ok_seed0.json").read_text()) == {**RECORD, "seed": 0, "profile": "smoke"}
    # so is one emptied to {} or cut short after its notebook was written
    for damaged in ((results / "smoke" / "ok_seed0.json"), (results / "smoke" / "ok_seed0.ipynb")):
        damaged.write_text("{}")
        assert reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results,
                                   progress=False)[0].status == "done"


def test_a_forced_rerun_that_fails_keeps_the_last_executed_notebook(fake_experiments):
    # make reproduce always forces: a rerun that breaks half-way must not leave a half-executed
    # notebook where the book reads the finished one
    results = fake_experiments / "results"
    reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)
    finished = (results / "smoke" / "ok_seed0.ipynb").read_bytes()
    tiny_notebook(fake_experiments / "notebooks" / "ok.ipynb", "raise RuntimeError('broke on the rerun')")
    again = reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, force=True, progress=False)
    assert again[0].status == "failed" and again[0].notebook == results / "smoke" / "ok_seed0.failed.ipynb"
    assert (results / "smoke" / "ok_seed0.ipynb").read_bytes() == finished
    assert "broke on the rerun" in again[0].notebook.read_text()
    # a later successful run replaces the finished notebook and clears the failed copy
    tiny_notebook(fake_experiments / "notebooks" / "ok.ipynb", "x = 1")
    assert reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, force=True,
                               progress=False)[0].status == "done"
    assert (results / "smoke" / "ok_seed0.ipynb").read_bytes() != finished
    assert not (results / "smoke" / "ok_seed0.failed.ipynb").exists()


def test_unknown_experiment_fails_before_any_run(fake_experiments):
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        reproduce.reproduce(["ok", "nope"], [0], results_dir=fake_experiments / "results", progress=False)
    assert not (fake_experiments / "results").exists()


def test_unknown_profile_fails_before_any_run(fake_experiments):
    # the notebook would only fail in its first cell, leaving a failed copy in results/<profile>/
    with pytest.raises(ValueError, match="unknown profile 'gpu' for mnist; choose one of .'cpu', 'paper', 'smoke'."):
        reproduce.reproduce(["ok"], [0], profile="gpu", results_dir=fake_experiments / "results", progress=False)
    assert not (fake_experiments / "results").exists()


def test_every_notebook_runs_the_profiles_of_a_configured_experiment():
    from drnet_lib.config import PROFILES

    for experiment in reproduce.NOTEBOOKS:
        reproduce.check_profile(experiment, "smoke")
        assert reproduce.PROFILES_OF.get(experiment, experiment) in PROFILES


def test_grid_runs_every_cell_and_names_results_after_it(fake_experiments):
    nb = fake_experiments / "notebooks" / "cell.ipynb"
    tiny_notebook(nb, "import json, pathlib\n"
                      "p = pathlib.Path(results_dir, profile, f'cell_width{width}_seed{seed}.json')\n"
                      "p.parent.mkdir(parents=True, exist_ok=True)\n"
                      f"p.write_text(json.dumps({{**{RECORD!r}, 'seed': seed, 'width': width}}))")
    source = nbformat.read(nb, as_version=4)
    source.cells[0].source += "\nwidth = 1"
    nbformat.write(source, nb)
    reproduce.NOTEBOOKS["cell"] = "cell.ipynb"
    results = fake_experiments / "results"
    outcomes = reproduce.reproduce(["cell"], [0], profile="smoke", results_dir=results, progress=False,
                                   grid={"width": [2, 3]})
    assert [o.status for o in outcomes] == ["done", "done"]
    assert json.loads((results / "smoke" / "cell_width3_seed0.json").read_text())["width"] == 3
    again = reproduce.reproduce(["cell"], [0], profile="smoke", results_dir=results, progress=False,
                                grid={"width": [2, 3, 4]})
    assert [o.status for o in again] == ["skipped", "skipped", "done"]   # resumes at the missing cell


def test_unknown_grid_parameter_fails_before_any_run(fake_experiments):
    with pytest.raises(ValueError, match="no parameter 'colour'.*profile, results_dir, seed"):
        reproduce.reproduce(["ok"], [0], results_dir=fake_experiments / "results", progress=False,
                            grid={"colour": ["red"]})
    assert not (fake_experiments / "results").exists()


@pytest.mark.parametrize("name, says", [("seed", "seed: use --seeds"), ("data_root", "data_root: always the clone's data/")])
def test_a_grid_over_a_parameter_the_batch_sets_is_refused(fake_experiments, name, says):
    # papermill would get the name twice (TypeError: multiple values for keyword argument)
    with pytest.raises(ValueError, match=f"--grid {name}: drnet reproduce sets this parameter for every run itself .*{says}"):
        reproduce.reproduce(["ok"], [0], results_dir=fake_experiments / "results", progress=False,
                            grid={name: [0, 1]})
    assert not (fake_experiments / "results").exists()


def test_workers_survive_a_killed_kernel_and_keep_job_order(fake_experiments, capsys, monkeypatch):
    # os.chdir is process-wide: with worker threads one run's chdir moves every other run's kernel
    # (a CI run lost ok_seed1.json that way). Runs must give each kernel its directory instead.
    # (papermill's file handler re-enters the directory it started in around reads and writes:
    # harmless, it is everyone's directory.)
    here, chdir = os.getcwd(), os.chdir

    def chdir_nowhere_else(path):
        if os.path.realpath(path) != os.path.realpath(here):
            raise AssertionError(f"reproduce moved the process to {path}")
        chdir(path)
    monkeypatch.setattr("os.chdir", chdir_nowhere_else)
    tiny_notebook(fake_experiments / "notebooks" / "killed.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    reproduce.NOTEBOOKS["killed"] = "killed.ipynb"
    results = fake_experiments / "results"
    outcomes = reproduce.reproduce(["killed", "broken", "ok"], [0, 1], profile="smoke", results_dir=results,
                                   progress=False, workers=3)
    assert [(o.experiment, o.seed, o.status) for o in outcomes] == [
        ("killed", 0, "failed"), ("killed", 1, "failed"), ("broken", 0, "failed"), ("broken", 1, "failed"),
        ("ok", 0, "done"), ("ok", 1, "done")]
    assert "Dead" in outcomes[0].error or "died" in outcomes[0].error.lower()
    assert (results / "smoke" / "ok_seed0.json").exists() and (results / "smoke" / "ok_seed1.json").exists()
    assert "killed_seed1.failed.ipynb" in capsys.readouterr().out
    with pytest.raises(ValueError, match="workers"):
        reproduce.reproduce(["ok"], [0], results_dir=results, progress=False, workers=0)


def test_a_source_notebook_refuses_a_misspelt_papermill_parameter(tmp_path):
    """papermill itself only warns about ``-p profil cpu`` and would run the smoke profile; the
    notebook's setup cell stops there, naming the parameter."""
    import papermill as pm

    from drnet_lib.results import REPO_ROOT

    with pytest.raises(pm.PapermillExecutionError, match="unknown notebook parameter.*profil"):
        pm.execute_notebook(str(REPO_ROOT / "notebooks" / "01_mnist.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"profil": "cpu"}, cwd=str(REPO_ROOT / "notebooks"), kernel_name="python3",
                            progress_bar=False)


def test_cells_changed_since_counts_source_cells_the_executed_copy_lacks(fake_experiments, tmp_path):
    results = fake_experiments / "results"
    reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)
    executed = results / "smoke" / "ok_seed0.ipynb"
    assert prose_refresh.cells_changed_since(executed, reproduce.source_notebook("ok")) == (0, 2)   # papermill's injected cell is not counted
    source = fake_experiments / "notebooks" / "ok.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[1].source += "\nprint('edited')"
    nb.cells.append(nbformat.v4.new_markdown_cell("## added later"))
    nbformat.write(nb, source)
    assert prose_refresh.cells_changed_since(executed, reproduce.source_notebook("ok")) == (2, 3)


def test_outside_a_clone_the_folders_are_the_working_directory_and_reproduce_says_why_it_cannot_run(
        tmp_path, monkeypatch):
    from drnet_lib.results import project_root

    # installed as a wheel (Colab), the package's parent folder is site-packages: no pyproject.toml there
    monkeypatch.chdir(tmp_path)
    assert project_root(tmp_path / "site-packages") == tmp_path
    (tmp_path / "clone").mkdir()
    (tmp_path / "clone" / "pyproject.toml").write_text("")
    assert project_root(tmp_path / "clone") == tmp_path / "clone"
    monkeypatch.setattr(reproduce, "REPO_ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="no notebook at .*01_mnist.ipynb.*inside a clone"):
        reproduce.reproduce(["mnist"], [0], profile="smoke", progress=False)
    assert not (tmp_path / "results").exists()


def test_a_run_that_wrote_its_results_and_then_failed_is_not_taken_as_done(fake_experiments):
    # the notebook writes its results file, then a later cell fails: no executed notebook is kept
    # under the final name and the results file goes too (it stands for no finished run), so a
    # later batch (make book skips what is done) runs it again
    writes_then_fails = ("import json, pathlib\n"
                         "p = pathlib.Path(results_dir, profile, f'ok_seed{seed}.json')\n"
                         "p.parent.mkdir(parents=True, exist_ok=True)\n"
                         "p.write_text(json.dumps({'seed': seed}))\n"
                         "raise RuntimeError('a cell after the results failed')")
    tiny_notebook(fake_experiments / "notebooks" / "ok.ipynb", writes_then_fails)
    results = fake_experiments / "results"
    first = reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)
    assert first[0].status == "failed" and not (results / "smoke" / "ok_seed0.json").exists()
    again = reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)
    assert again[0].status == "failed"                     # ran again, not "skipped"


def test_prose_refresh_takes_the_source_markdown_and_keeps_every_output(fake_experiments):
    """A chapter's prose fixed in its source reaches the executed run without a rerun, and only prose."""
    results = fake_experiments / "results"
    source = fake_experiments / "notebooks" / "ok.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("# Title"))
    nb.cells.insert(2, nbformat.v4.new_markdown_cell("An old sentence."))
    nb.cells[-1].source += "\nprint('the output')"
    nbformat.write(nb, source)
    reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)
    executed = results / "smoke" / "ok_seed0.ipynb"
    ran = nbformat.read(executed, as_version=4)
    injected = [k for k, c in enumerate(ran.cells) if "injected-parameters" in c.metadata.get("tags", [])]
    code_before = [(c.source, c.outputs) for c in ran.cells if c.cell_type == "code"]
    assert prose_refresh.prose_refreshed(executed) == 0
    assert code_before[-1][1][0]["text"] == "the output\n"

    nb.cells[2].source = "A new sentence."                       # edited
    nb.cells.append(nbformat.v4.new_markdown_cell("## Added"))   # added after the last code cell
    del nb.cells[0]                                              # removed
    nbformat.write(nb, source)
    assert prose_refresh.cells_changed_since(executed, reproduce.source_notebook("ok"))[0] == 2
    assert prose_refresh.refresh_prose(executed, source) == 3
    after = nbformat.read(executed, as_version=4)
    assert prose_refresh.cells_changed_since(executed, reproduce.source_notebook("ok")) == (0, len(nb.cells))
    assert [(c.source, c.outputs) for c in after.cells if c.cell_type == "code"] == code_before
    assert [c.source for c in after.cells if "injected-parameters" not in c.metadata.get("tags", [])] == \
        [c.source for c in nb.cells]
    # papermill's cell stays right after the parameters cell, and the run's metadata is kept
    params = next(k for k, c in enumerate(after.cells) if "parameters" in c.metadata.get("tags", []))
    assert "injected-parameters" in after.cells[params + 1].metadata["tags"] and len(injected) == 1
    assert after.metadata["papermill"] == ran.metadata["papermill"]
    assert prose_refresh.prose_refreshed(executed) == 3

    written = executed.read_bytes()
    assert prose_refresh.refresh_prose(executed, source) == 0       # up to date: not rewritten
    assert executed.read_bytes() == written
    nb.cells[-2].source += "\nprint('new code')"
    nbformat.write(nb, source)
    with pytest.raises(prose_refresh.CodeChanged, match=r"ok_seed0.ipynb ran other code .*code cell 2.*rerun"):
        prose_refresh.refresh_prose(executed, source)
    assert executed.read_bytes() == written                        # refused: nothing changed


def _ran_with_last_cell_ending(fake_experiments, code: str):
    """'ok' run once with ``code`` added to its last cell: ``(source notebook, its path, the
    executed notebook's path, the last cell's outputs)``."""
    source = fake_experiments / "notebooks" / "ok.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[-1].source += code
    nbformat.write(nb, source)
    results = fake_experiments / "results"
    reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)
    executed = results / "smoke" / "ok_seed0.ipynb"
    return nb, source, executed, nbformat.read(executed, as_version=4).cells[-1].outputs


def test_prose_refresh_takes_a_code_cells_caption_and_keeps_its_output(fake_experiments):
    """A figure caption (myst-nb's cell metadata) written into the source reaches the executed run."""
    nb, source, executed, outputs = _ran_with_last_cell_ending(fake_experiments, "\nprint('the output')")

    caption = {"figure": {"caption": "What the figure shows."}, "image": {"alt": "a figure"}}
    nb.cells[-1].metadata["mystnb"] = caption
    nbformat.write(nb, source)
    assert prose_refresh.refresh_prose(executed, source) == 1
    last = nbformat.read(executed, as_version=4).cells[-1]
    assert last.metadata["mystnb"] == caption and last.outputs == outputs
    assert prose_refresh.refresh_prose(executed, source) == 0
    del nb.cells[-1].metadata["mystnb"]                        # a caption removed goes too
    nbformat.write(nb, source)
    assert prose_refresh.refresh_prose(executed, source) == 1
    assert "mystnb" not in nbformat.read(executed, as_version=4).cells[-1].metadata


def test_prose_refresh_takes_a_code_cells_comments_and_refuses_its_code(fake_experiments):
    """A comment is prose (a parameter's help text); a changed token is code and needs a rerun."""
    nb, source, executed, outputs = _ran_with_last_cell_ending(
        fake_experiments, "\nx = 1   # an old comment\nprint('the output', x)")

    nb.cells[-1].source = nb.cells[-1].source.replace("# an old comment", "# a new comment\n\n# and a line")
    nbformat.write(nb, source)
    assert prose_refresh.refresh_prose(executed, source) == 1
    last = nbformat.read(executed, as_version=4).cells[-1]
    assert last.source == nb.cells[-1].source and last.outputs == outputs
    assert prose_refresh.refresh_prose(executed, source) == 0

    written = executed.read_bytes()
    nb.cells[-1].source = nb.cells[-1].source.replace("x = 1", "x = 2")   # the code itself
    nbformat.write(nb, source)
    with pytest.raises(prose_refresh.CodeChanged, match="rerun"):
        prose_refresh.refresh_prose(executed, source)
    assert executed.read_bytes() == written


def test_code_without_comments_compares_what_runs():
    same = prose_refresh.code_without_comments
    assert same("a = 1  # one\nb = 2\n") == same("a = 1\n# between\n\nb = 2   # two")
    assert same("a = 1") != same("a = 2") and same("s = '# not a comment'") != same("s = ''")
    assert same("%matplotlib inline") != same("%matplotlib widget")
    assert same("x = (1,") == "x = (1,"                             # does not tokenize: compared as text


def test_prose_only_refreshes_the_batch_and_names_the_runs_that_need_a_rerun(fake_experiments, capsys):
    from drnet_lib.cli import main

    results = fake_experiments / "results"
    reproduce.reproduce(["ok"], [0, 1], profile="smoke", results_dir=results, progress=False)
    source = fake_experiments / "notebooks" / "ok.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("A sentence added later."))
    nbformat.write(nb, source)
    (results / "smoke" / "ok_seed1.json").unlink()   # the notebook stays: prose needs only the notebook
    argv = ["reproduce", "--prose-only", "--profile", "smoke", "--experiments", "ok", "--seeds", "0", "1", "2",
            "--results-dir", str(results)]
    assert main(argv) == 1                           # seed 2 never ran
    out = capsys.readouterr().out
    assert "prose" in out and "note: 1 prose cell(s) taken from the source" in out and "missing" in out
    assert prose_refresh.cells_changed_since(results / "smoke" / "ok_seed1.ipynb", reproduce.source_notebook("ok"))[0] == 0
    nb.cells[1].source += "\nprint('changed code')"
    nbformat.write(nb, source)
    outcomes = reproduce.refresh_prose_of_runs(["ok"], [0], "smoke", results)
    assert [o.status for o in outcomes] == ["rerun"]
    assert outcomes[0].error.endswith(": drnet reproduce --profile smoke --experiments ok --seeds 0 --force")
    # a damaged executed notebook is that run's status; the pass goes on and names it
    (results / "smoke" / "ok_seed0.ipynb").write_text('{"cells": [')
    outcomes = reproduce.refresh_prose_of_runs(["ok"], [0, 1], "smoke", results)
    assert [o.status for o in outcomes] == ["damaged", "rerun"]
    assert str(results / "smoke" / "ok_seed0.ipynb") in outcomes[0].error and "--seeds 0 --force" in outcomes[0].error
    with pytest.raises(ValueError, match="profile"):   # a misspelt profile is not three "missing" runs
        reproduce.refresh_prose_of_runs(["ok"], [0], "smoek", results)


def test_a_stop_request_signals_each_kernel_once_and_refuses_new_cells(monkeypatch):
    import signal
    import subprocess
    import sys
    from types import SimpleNamespace

    from drnet_lib import stopping
    from drnet_lib.stopping import BatchStop, StopRequested

    class Manager:   # what the stop needs of a jupyter_client kernel manager (weakly held, like one)
        def __init__(self, pid):
            self.provisioner = SimpleNamespace(pid=pid)

    stop = BatchStop()
    stop.before_cell(cell_index=3)                      # no request yet: cells run
    # as jupyter_client starts a kernel: SIGINT at its default even where this process ignores it
    kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    manager = Manager(kernel.pid)
    stop._kernels.add(manager)
    sent, kill = [], os.kill
    monkeypatch.setattr(stopping.os, "kill", lambda pid, signum: sent.append((pid, signum)) or kill(pid, signum))
    stop.request()
    assert kernel.wait(timeout=30) == -signal.SIGINT
    stop.request()                                      # each second while a batch stops: no kernel twice
    assert sent == [(kernel.pid, signal.SIGINT)]
    with pytest.raises(StopRequested, match="before cell 4"):
        stop.before_cell(cell_index=4)


def _sleeping_batch_and_ctrl_c(fake_experiments, presses: int):
    """Make 'ok' a minute-long notebook, and press Ctrl-C ``presses`` times (50 ms apart) 3 s
    into the first run's sleeping cell. Returns the results folder."""
    import signal
    import threading
    import time

    tiny_notebook(fake_experiments / "notebooks" / "ok.ipynb", "import time\nfor _ in range(600):\n    time.sleep(0.1)")
    results = fake_experiments / "results"
    running = results / "smoke" / "ok_seed0.running.ipynb"

    def press():
        deadline = time.monotonic() + 120
        while not running.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)                                     # into the sleeping cell
        for _ in range(presses):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)

    threading.Thread(target=press, daemon=True).start()
    return results


def test_ctrl_c_stops_a_batch_in_order(fake_experiments, capsys, ctrl_c_raises):
    import time

    from drnet_lib.stopping import BatchInterrupted

    results = _sleeping_batch_and_ctrl_c(fake_experiments, presses=1)
    start = time.monotonic()
    with pytest.raises(BatchInterrupted, match="To go on with the runs that did not finish:\n"
                                               "drnet reproduce --profile smoke --experiments ok --seeds 0 1$"):
        reproduce.reproduce(["ok"], [0, 1], profile="smoke", results_dir=results, progress=False)
    assert time.monotonic() - start < 50                 # the 60-second cell did not run to its end
    summary = capsys.readouterr().out
    assert "stopped" in summary and "not run" in summary
    assert (results / "smoke" / "ok_seed0.failed.ipynb").exists()   # the stopped run's notebook, kept to read
    assert not list(results.rglob("*.running.ipynb"))
    assert not (results / "smoke" / "ok_seed1.failed.ipynb").exists()   # the queued run never started


def test_a_quick_second_ctrl_c_kills_the_runs_and_starts_no_queued_one(fake_experiments, capsys, ctrl_c_raises):
    """Two Ctrl-Cs in the same second: the kernels are killed, the queued notebooks never start
    (they ran to their end before, unreported), and the summary is printed."""
    import time

    from drnet_lib.stopping import BatchInterrupted

    results = _sleeping_batch_and_ctrl_c(fake_experiments, presses=2)
    start = time.monotonic()
    with pytest.raises(BatchInterrupted, match="stopped at once by a second signal"):
        reproduce.reproduce(["ok"], [0, 1, 2], profile="smoke", results_dir=results, progress=False)
    assert time.monotonic() - start < 50
    summary = capsys.readouterr().out
    assert summary.count("not run") == 2
    assert not (results / "smoke" / "ok_seed1.running.ipynb").exists() and not (results / "smoke" / "ok_seed1.json").exists()


def test_an_error_outside_the_notebook_fails_that_run_and_the_batch_goes_on(fake_experiments, capsys):
    results = fake_experiments / "results"
    (results / "smoke" / "ok_seed0.json").mkdir(parents=True)   # a results path that cannot be read
    outcomes = reproduce.reproduce(["ok"], [0, 1], profile="smoke", results_dir=results, progress=False)
    assert [o.status for o in outcomes] == ["failed", "done"]
    assert "ok_seed0.json" in outcomes[0].error
    assert "failed" in capsys.readouterr().out


def test_a_forced_rerun_that_fails_after_writing_its_results_puts_the_previous_results_back(fake_experiments):
    """The notebook writes its results file before its last cells; a rerun that fails after that
    leaves the previous run's notebook, so the previous run's results go back beside it."""
    results = fake_experiments / "results"
    reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)
    before = (results / "smoke" / "ok_seed0.json").read_bytes()
    source = fake_experiments / "notebooks" / "ok.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("'profile': profile", "'profile': profile, 'new': 1")
    assert "'new': 1" in nb.cells[1].source   # the rerun writes other results than the first run
    nb.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('after the results')"))
    nbformat.write(nb, source)
    again = reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, force=True, progress=False)
    assert again[0].status == "failed" and "after the results" in again[0].error
    assert (results / "smoke" / "ok_seed0.json").read_bytes() == before
    assert not list((results / "smoke").glob("*previous*")) and not list((results / "smoke").glob(".*"))


def test_duplicate_seeds_and_experiments_run_once():
    jobs = reproduce.batch_jobs(["mnist", "mnist"], [0, 0, 1], "smoke")
    assert jobs == [("mnist", 0, {}), ("mnist", 1, {})]


def test_a_grid_cells_files_are_named_as_the_grid_notebook_names_its_results(tmp_path):
    """Whatever subset or order of its parameters a --grid gives, a norb_grid cell's executed
    notebook and results file share the notebook's own name (adversarial_weight, then pose_dim,
    the other at its default), so --skip-existing finds finished cells."""
    _, out_json, out_nb = reproduce.run_files(tmp_path, "cpu", "norb_grid", 0, {"pose_dim": 2})
    assert out_json.name == "norb_grid_adversarial_weight0.1_pose_dim2_seed0.json"
    assert out_nb.name == "norb_grid_adversarial_weight0.1_pose_dim2_seed0.ipynb"
    swapped = reproduce.run_files(tmp_path, "cpu", "norb_grid", 0, {"pose_dim": 2, "adversarial_weight": 0.1})
    assert swapped[1] == out_json
    with pytest.raises(ValueError, match="schedule_fraction would write one results file over the other"):
        reproduce.check_grid("norb_grid", {"schedule_fraction": [0.25, 0.5]})


def test_the_grid_notebook_names_its_results_by_the_parameters_reproduce_expects():
    """RESULTS_NAMED_BY restates the grid notebook's own grid_tag line; they must agree."""
    import re

    source = nbformat.read(reproduce.source_notebook("norb_grid"), as_version=4)
    code = "\n".join(c.source for c in source.cells if c.cell_type == "code")
    named = re.search(r"grid_tag\(\{(.*?)\}\)", code).group(1)
    assert tuple(re.findall(r'"(\w+)":', named)) == reproduce.RESULTS_NAMED_BY["norb_grid"]


def test_a_backup_a_killed_run_left_is_never_put_back(fake_experiments):
    """A kill between the backup and its restore leaves `.<name>.json.previous`; a later run that
    fails must not bring those old results back (the folder may have been cleared since)."""
    results = fake_experiments / "results"
    stale = results / "smoke" / ".ok_seed0.json.previous"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({**RECORD, "seed": 0, "profile": "old"}))
    tiny_notebook(fake_experiments / "notebooks" / "ok.ipynb", "raise RuntimeError('fails')")
    assert reproduce.reproduce(["ok"], [0], profile="smoke", results_dir=results, progress=False)[0].status == "failed"
    assert not (results / "smoke" / "ok_seed0.json").exists() and not stale.exists()


def test_norb_grid_without_a_grid_and_values_that_name_one_cell(tmp_path):
    default = reproduce.run_files(tmp_path, "smoke", "norb_grid", 0, {})[1]
    assert default.name == "norb_grid_adversarial_weight0.1_pose_dim10_seed0.json"
    jobs = reproduce.batch_jobs(["norb_grid"], [0], "smoke", {"adversarial_weight": [0, 0.0], "pose_dim": [2, 2]})
    assert len(jobs) == 1


def test_the_rerun_line_goes_on_as_the_batch_did(tmp_path):
    from drnet_lib.cli import build_parser

    outcomes = [reproduce.RunOutcome("norb_grid", 1, "stopped", tmp_path / "x.ipynb"),
                reproduce.RunOutcome("norb_grid", 2, "done", tmp_path / "y.ipynb")]
    jobs = [("norb_grid", 1, {"pose_dim": 2}), ("norb_grid", 2, {"pose_dim": 2})]
    lines = reproduce.rerun_commands(outcomes, jobs, ("stopped",), "cpu", tmp_path / "my results",
                                     {"pose_dim": [2, 5]}, force=True, options=" --data-source real --workers 2")
    assert lines == [f"drnet reproduce --profile cpu --experiments norb_grid --seeds 1 --grid pose_dim=2 "
                     f"--results-dir '{tmp_path / 'my results'}' --data-source real --workers 2 --force"]
    import shlex
    args = build_parser().parse_args(shlex.split(lines[0])[1:])
    assert (args.data_source, args.workers, args.force, args.seeds) == ("real", 2, True, [1])


def test_a_batchs_second_sigterm_interrupts_so_the_batch_can_clean_up():
    """In a batch a second SIGTERM (`kill -TERM` twice, the way to stop a background batch) raises
    KeyboardInterrupt like a second Ctrl-C, instead of ending the process with kernels and files
    left behind; while the batch collects its runs further signals are held."""
    import signal

    from drnet_lib.stopping import signals_held, stop_requests

    with stop_requests(second_interrupts=True) as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag["signal"] == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    with signals_held():
        os.kill(os.getpid(), signal.SIGTERM)   # ignored: the test process lives on
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
