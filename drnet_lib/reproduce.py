"""Batch reruns of the experiment notebooks through papermill.

For each (experiment, seed) the source notebook ``notebooks/<NN>_<experiment>.ipynb`` is executed
with ``profile``/``seed``/... injected into ``results/<profile>/<experiment>_seed<k>.ipynb``; the
notebook itself writes ``results/<profile>/<experiment>_seed<k>.json``. Source notebooks are
never overwritten. A finished run (a run's results record beside a readable executed notebook)
is skipped unless forced; a failed run is reported with its notebook path and does not stop the
others, and leaves the previous run's files as they were.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shlex
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from .stopping import BatchInterrupted, BatchStop, signals_held, stop_requests
from .results import REPO_ROOT, grid_tag, results_path

NOTEBOOKS = {"mnist": "01_mnist.ipynb", "norb": "02_norb.ipynb", "norb_grid": "02b_norb_grid.ipynb",
             "suncg": "03_suncg.ipynb", "kth": "04_kth.ipynb"}
# whose profiles a notebook runs (the NORB grid notebook trains NORB models)
PROFILES_OF = {"norb_grid": "norb"}
# The parameters a grid notebook names its results file by, in the order of its own
# `grid_tag({...})` line: a grid point's executed notebook must carry the same name, whatever
# subset or order of them the --grid gives, for --skip-existing to find a finished cell. A grid
# over another parameter would write every cell into one results file, so it is refused.
RESULTS_NAMED_BY = {"norb_grid": ("adversarial_weight", "pose_dim")}
# the notebook parameters every run gets from the batch (run_one), and the option that sets each:
# a --grid over one of them would clash with it
BATCH_PARAMETERS = {"profile": "use --profile", "seed": "use --seeds", "device": "use --device",
                    "data_source": "use --data-source", "data_root": "always the clone's data/",
                    "results_dir": "use --results-dir", "checkpoint_dir": "always the clone's checkpoints/"}


@dataclass
class RunOutcome:
    experiment: str
    seed: int
    status: str          # "done", "skipped", "failed", or on Ctrl-C "stopped" and "not run";
                         # with --prose-only "prose", "current", "rerun", "damaged" or "missing"
    notebook: Path
    seconds: float = 0.0
    error: str = ""
    tag: str | None = None


def source_notebook(experiment: str) -> Path:
    if experiment not in NOTEBOOKS:
        raise ValueError(f"unknown experiment {experiment!r}; known: {sorted(NOTEBOOKS)}")
    path = REPO_ROOT / "notebooks" / NOTEBOOKS[experiment]
    if not path.is_file():   # e.g. drnet_lib installed as a wheel, run outside a clone
        raise FileNotFoundError(f"no notebook at {path}: drnet reproduce runs the repository's notebooks; "
                                "run it inside a clone of the repository")
    return path


def check_profile(experiment: str, profile: str) -> None:
    """Refuse a profile the experiment does not have before its notebook starts (the notebook
    would fail in its first cell and leave a failed copy in ``results/<profile>/``)."""
    from .config import get_config

    get_config(PROFILES_OF.get(experiment, experiment), profile)   # its error names the profiles there are


def grid_points(grid: dict[str, list] | None) -> list[dict]:
    """Every combination of a parameter grid: ``{"a": [1, 2], "b": [3]}`` -> ``[{a:1,b:3}, {a:2,b:3}]``."""
    if not grid:
        return [{}]
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def check_grid(experiment: str, grid: dict | None) -> None:
    """Refuse grid names that are not parameters of the experiment's notebook (papermill would
    inject them anyway, and the notebook would silently ignore them)."""
    path = source_notebook(experiment)
    if not grid:
        return
    own = sorted(set(grid) & set(BATCH_PARAMETERS))
    if own:
        raise ValueError(f"--grid {', '.join(own)}: drnet reproduce sets "
                         f"{'this parameter' if len(own) == 1 else 'these parameters'} for every run "
                         f"itself ({'; '.join(f'{n}: {BATCH_PARAMETERS[n]}' for n in own)})")
    known = set(notebook_parameters(path))
    unknown = sorted(set(grid) - known)
    if unknown:
        raise ValueError(f"{path.name} has no parameter {', '.join(map(repr, unknown))}; "
                         f"its parameters are: {', '.join(sorted(known))}")
    named_by = RESULTS_NAMED_BY.get(experiment)
    unnamed = sorted(set(grid) - set(named_by)) if named_by else []
    if unnamed:
        raise ValueError(f"--grid {', '.join(unnamed)}: {path.name} names each run's results by "
                         f"{' and '.join(named_by)} only, so cells that differ in {', '.join(unnamed)} would "
                         f"write one results file over the other; run each value with papermill (-p) into a "
                         f"results folder of its own")


def batch_jobs(experiments, seeds, profile: str, grid: dict[str, list] | None = None) -> list[tuple[str, int, dict]]:
    """Every ``(experiment, seed, grid point)`` of a batch, in job order; an unknown experiment,
    profile or grid parameter is refused first, before anything runs or is reported missing."""
    for e in experiments:
        check_grid(e, grid)
        check_profile(e, profile)
    # each run once, in the order given: `--seeds 0 0`, or grid values that name one cell (`0,0.0`),
    # would run one notebook twice at once into the same files
    jobs = {}
    for e in experiments:
        for s in seeds:
            for p in grid_points(grid):
                jobs.setdefault(run_files(Path("."), profile, e, s, p)[1], (e, s, p))
    return list(jobs.values())


def run_files(results_dir: Path, profile: str, experiment: str, seed: int,
              point: dict | None = None) -> tuple[str | None, Path, Path]:
    """A run's grid tag (None outside a grid), results file and executed notebook. A grid
    notebook's tag names every parameter of RESULTS_NAMED_BY in its order, those the point lacks
    at the notebook's defaults, as the notebook names its results."""
    if experiment in RESULTS_NAMED_BY:   # without --grid too: the notebook names its results by them
        defaults = notebook_defaults(experiment)
        point = {name: (point or {}).get(name, defaults[name]) for name in RESULTS_NAMED_BY[experiment]}
    tag = grid_tag(point) if point else None
    out_json = results_path(results_dir, profile, experiment, seed, tag)
    return tag, out_json, out_json.with_suffix(".ipynb")


def notebook_parameters(path: Path) -> dict:
    """papermill's description of a notebook's ``parameters`` cell, read once per version of the
    file (every run of a grid batch names its files from it)."""
    stat = Path(path).stat()
    return _inspected(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _inspected(path: str, mtime_ns: int, size: int) -> dict:
    import papermill as pm

    return pm.inspect_notebook(path)


def notebook_defaults(experiment: str) -> dict:
    """The values of the source notebook's ``parameters`` cell (papermill reads them as text)."""
    import ast

    return {name: ast.literal_eval(info["default"])
            for name, info in notebook_parameters(source_notebook(experiment)).items()}


def run_one(experiment: str, profile: str, seed: int, results_dir: Path, device: str = "auto",
            data_source: str = "embedded", force: bool = False, extra: dict | None = None,
            stop: BatchStop | None = None, announce=None) -> RunOutcome:
    """Execute one notebook run; ``extra`` are further papermill parameters (a grid point);
    ``stop``, the batch's switch that Ctrl-C turns (status "stopped" then); ``announce()`` is
    called when the notebook starts (not for a skipped run)."""
    import papermill as pm

    tag, out_json, out_nb = run_files(results_dir, profile, experiment, seed, extra)
    # papermill saves the notebook after every cell: it runs under another name, and replaces the
    # last executed notebook only once it has finished, so a run that fails or is stopped leaves
    # the previous one (and the results file beside it) as they were
    running, failed = (out_nb.with_name(f"{out_nb.stem}.{state}.ipynb") for state in ("running", "failed"))
    # done means both: a run that wrote its results and then failed in a later cell has no notebook
    if not force and _finished_results(out_json) and _finished_notebook(out_nb):
        left = [f"{path.name} is left from a rerun that did not finish" for path in (running, failed) if path.exists()]
        return RunOutcome(experiment, seed, "skipped", out_nb, error="; ".join(left), tag=tag)
    out_nb.parent.mkdir(parents=True, exist_ok=True)
    notebooks = REPO_ROOT / "notebooks"
    # paths as seen from the notebook's working directory (relative, so executed notebooks
    # committed to the book do not show this machine's folders)
    params = dict(profile=profile, seed=seed, device=device, data_source=data_source,
                  data_root=os.path.relpath(REPO_ROOT / "data", notebooks),
                  results_dir=os.path.relpath(Path(results_dir).resolve(), notebooks),
                  checkpoint_dir=os.path.relpath(REPO_ROOT / "checkpoints", notebooks), **(extra or {}))
    # The notebook writes its results file in its last cells; should the run fail or be stopped
    # after that, the previous run's results go back beside the previous run's notebook.
    # (a hidden name without .json: load_runs' glob for a run's files must not find it)
    previous = out_json.with_name(f".{out_json.name}.previous")
    previous.unlink(missing_ok=True)   # one a killed run left: not this run's to put back
    backed_up = out_json.exists()
    if backed_up:
        shutil.copy2(out_json, previous)
    if announce:
        announce()
    start = time.perf_counter()
    try:
        # The kernel starts in notebooks/ through nbclient's resources (the kernel process's own
        # cwd), not papermill's cwd=: that one chdirs the whole Python process, and with several
        # worker threads a kernel could start in another thread's directory and write its
        # results elsewhere.
        pm.execute_notebook(str(source_notebook(experiment)), str(running), parameters=params,
                            resources={"metadata": {"path": str(notebooks)}}, kernel_name="python3",
                            progress_bar=False, request_save_on_cell_execute=True,
                            **(stop.papermill_options() if stop else {}))
        _finish(running, out_nb)
    except Exception as err:  # keep going: one failing run must not stop the batch
        kept = _keep_failed(running, failed, previous if backed_up else None, out_json)
        status = "stopped" if stop and stop.requested.is_set() else "failed"
        return RunOutcome(experiment, seed, status, kept or out_nb, time.perf_counter() - start,
                          failure_text(err, kept), tag)
    previous.unlink(missing_ok=True)
    failed.unlink(missing_ok=True)   # an earlier failure's copy is out of date
    return RunOutcome(experiment, seed, "done", out_nb, time.perf_counter() - start, tag=tag)


def _keep_failed(running: Path, failed: Path, previous: Path | None, out_json: Path) -> Path | None:
    """After a run that did not finish: its notebook kept for reading as ``failed`` (returned; None
    when it wrote none), and the results file put back as it was before the run: the previous
    run's from ``previous`` (the copy this run made), or none when there was none, so no results
    file stands for a run whose notebook did not finish."""
    kept = None
    with contextlib.suppress(OSError):   # each step on its own: one that cannot be done is no reason to skip the others
        if running.exists():
            os.replace(running, failed)
            kept = failed
    with contextlib.suppress(OSError):
        if previous is not None:
            os.replace(previous, out_json)
        else:
            out_json.unlink(missing_ok=True)
    return kept


def failure_text(err: Exception, notebook: Path | None) -> str:
    """One line for the summary: the error's class and the first line of its message (for an
    error inside the notebook, the notebook's own: a download's, a setting's), and where the
    whole of it is."""
    from papermill.exceptions import PapermillExecutionError

    name, message = err.__class__.__name__, str(err)
    if isinstance(err, PapermillExecutionError):   # the cell's exception, not papermill's wrapper
        name, message = err.ename, err.evalue
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    return name + (f": {first}" if first else "") + (f" (the whole error is in {notebook.name})" if notebook else "")


def _finished_results(path: Path) -> bool:
    """Whether ``path`` holds a run's results record: a file damaged after its run (cut short,
    emptied, ``{}``) or one that cannot be read does not count as done, and the run is made again."""
    from .results import read_run

    try:
        read_run(path)
        return True
    except (OSError, ValueError):
        return False


def _finished_notebook(path: Path) -> bool:
    """Whether ``path`` is a readable executed notebook (not cut short or emptied)."""
    import nbformat

    try:
        nbformat.read(str(path), as_version=4)
        return True
    except Exception:   # missing, not JSON, not a notebook: nbformat raises several kinds
        return False


def _finish(running: Path, out_nb: Path) -> None:
    """Move a finished notebook from ``running`` to ``out_nb`` in one step, its papermill metadata
    naming the path it now has."""
    import nbformat

    nb = nbformat.read(running, as_version=4)
    nb.metadata.setdefault("papermill", {})["output_path"] = str(out_nb)
    nbformat.write(nb, running)
    os.replace(running, out_nb)


def reproduce(experiments, seeds, profile: str = "cpu", results_dir=None, device: str = "auto",
              data_source: str = "embedded", force: bool = False, progress: bool = True,
              grid: dict[str, list] | None = None, workers: int = 1) -> list[RunOutcome]:
    """Run every (experiment, seed, grid point) and print a summary table, in job order.

    ``grid`` maps notebook parameters to lists of values (e.g. ``{"adversarial_weight": [0, 0.1],
    "pose_dim": [2, 10]}``); each combination is one run, its results tagged by :func:`grid_tag`.

    ``workers`` runs that many notebooks at once. Each run has its own kernel process, driven
    from a thread here, so a kernel that crashes or is killed fails only its own run (reported
    like a failing notebook) and the others go on. Unless ``OMP_NUM_THREADS`` is already set, the
    machine's cores are shared out between the kernels (at least one thread each). An
    interrupted batch resumes when run again: finished runs (results file and executed notebook) are skipped,
    unfinished ones continue from their checkpoints.

    Ctrl-C (or SIGTERM) stops the batch in order (:mod:`.stopping`): running notebooks stop, a
    training cell after saving a checkpoint at its current iteration; queued ones do not start;
    the summary table is printed and :class:`.stopping.BatchInterrupted` raised. A second
    Ctrl-C (or SIGTERM) kills the kernels at once; the table is printed then too.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    results_dir = Path(results_dir or REPO_ROOT / "results")
    jobs = batch_jobs(experiments, seeds, profile, grid)
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    bar = tqdm(total=len(jobs), desc=f"reproduce ({profile}, {workers} at once)", disable=not progress)
    stop = BatchStop()

    def not_run(e, s, p) -> RunOutcome:
        tag, _, notebook = run_files(results_dir, profile, e, s, p)
        return RunOutcome(e, s, "not run", notebook, tag=tag)

    def job(e, s, p):
        tag, _, notebook = run_files(results_dir, profile, e, s, p)
        started = lambda: bar.write(f"started: {e} seed {s}" + (f" {tag}" if tag else ""))
        try:
            return run_one(e, profile, s, results_dir, device, data_source, force, p, stop, started)
        except Exception as err:   # outside the notebook (a results file that cannot be read or
            # replaced, a folder that cannot be made): this run's failure, reported with the others
            return RunOutcome(e, s, "failed", notebook, error=failure_text(err, None), tag=tag)

    pool = ThreadPoolExecutor(max_workers=workers)
    futures = {pool.submit(job, e, s, p): i for i, (e, s, p) in enumerate(jobs)}
    try:
        killed = _wait_for_runs(futures, stop, bar)
    finally:
        # the runs' threads end (killed kernels within seconds) before the table; a further
        # Ctrl-C or SIGTERM meanwhile would leave files half-moved and print nothing
        with signals_held():
            pool.shutdown(wait=True, cancel_futures=True)
    bar.close()
    outcomes = {i: f.result() for f, i in futures.items() if not f.cancelled()}
    ordered = [outcomes[i] if i in outcomes else not_run(*jobs[i]) for i in range(len(jobs))]
    print(format_summary(ordered))
    if stop.requested.is_set() and any(o.status in ("stopped", "not run") for o in ordered):
        options = "".join(f" {flag} {shlex.quote(str(value))}" for flag, value, default in (
            ("--data-source", data_source, "embedded"), ("--device", device, "auto"), ("--workers", workers, 1))
            if value != default)
        again = "\n".join(rerun_commands(ordered, jobs, ("stopped", "not run"), profile, results_dir, grid, force,
                                         options))
        how = ("stopped at once by a second signal: the running notebooks' kernels were killed, so their training "
               "kept only its last periodic checkpoint" if killed else "stopped on request")
        resume = ("" if profile == "smoke" else
                  "; stopped runs continue from their checkpoints")   # the smoke profile always starts over
        raise BatchInterrupted(f"{how}{resume}. To go on with the runs that did not finish:\n{again}")
    return ordered


def _wait_for_runs(futures: dict, stop: BatchStop, bar) -> bool:
    """Wait for the runs (``futures`` maps each to its job index), writing a line per failure; on
    Ctrl-C or SIGTERM, stop the batch (see :func:`reproduce`): queued runs are cancelled. Returns
    True when a second signal killed the kernels (the runs then end at once, as stopped)."""
    pending = set(futures)
    with stop_requests(second_interrupts=True) as signalled:
        try:
            while pending:
                pending = _wait_a_second(pending, stop, bar, signalled)
        except KeyboardInterrupt:                # a second signal: no more waiting for checkpoints
            stop.requested.set()                 # no run starts another cell
            for future in pending:               # and no queued run starts at all
                future.cancel()
            stop.signal_kernels(signal.SIGKILL, again=True)
            return True
    return False


def _wait_a_second(pending: set, stop: BatchStop, bar, signalled: dict) -> set:
    """One turn of :func:`_wait_for_runs`: wait up to a second for a run to end, act on a stop
    request, report finished runs; returns the runs still pending."""
    from concurrent.futures import FIRST_COMPLETED, wait

    done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
    if signalled["signal"] and not stop.requested.is_set():
        bar.write("stopping: running notebooks stop after saving a checkpoint, queued ones will not "
                  "start (Ctrl-C or SIGTERM again to kill them at once)")
        for future in pending:
            future.cancel()
    if signalled["signal"]:
        stop.request()   # again each second: a kernel that started since gets its SIGINT too
    for future in done:
        if future.cancelled():
            continue
        bar.update()
        outcome = future.result()
        if outcome.status == "failed":
            bar.write(f"failed: {outcome.notebook} ({outcome.error})")
    return pending


def rerun_commands(outcomes: list[RunOutcome], jobs: list[tuple[str, int, dict]], statuses, profile: str,
                   results_dir: Path, grid: dict | None, force: bool, options: str = "") -> list[str]:
    """The ``drnet reproduce`` lines that run again the runs of ``outcomes`` (in ``jobs``' order)
    whose status is in ``statuses``, with the batch's profile and results folder. Without
    ``--force`` one line per experiment and its whole grid does it (finished runs are skipped);
    a ``--force`` batch's runs may have results from before, so each grid cell gets its own
    ``--force`` line and no finished run is redone. ``options``: the batch's other options as
    typed (``" --data-source real --workers 2"``), so the line goes on as the batch did."""
    groups: dict[tuple[str, str], list[int]] = {}
    for outcome, (e, s, point) in zip(outcomes, jobs):
        if outcome.status in statuses:
            cells = grid if not force else {name: [value] for name, value in point.items()}
            text = " --grid " + " ".join(f"{n}={','.join(map(str, v))}" for n, v in cells.items()) if cells else ""
            seeds = groups.setdefault((e, text), [])
            if s not in seeds:
                seeds.append(s)
    where = ("" if Path(results_dir).resolve() == (REPO_ROOT / "results").resolve()
             else f" --results-dir {shlex.quote(str(results_dir))}")
    return [f"drnet reproduce --profile {profile} --experiments {e} --seeds {' '.join(map(str, seeds))}"
            f"{cells}{where}{options}{' --force' if force else ''}" for (e, cells), seeds in groups.items()]


def refresh_prose_of_runs(experiments, seeds, profile: str = "cpu", results_dir=None,
                          grid: dict[str, list] | None = None) -> list[RunOutcome]:
    """:func:`.prose_refresh.refresh_prose` for every executed run of the batch, and a summary table.

    Status per run: ``prose`` (its markdown now the source's), ``current`` (nothing to take),
    ``rerun`` (its code differs from the source's: only a rerun updates it), ``damaged`` (its
    notebook cannot be read or rewritten) or ``missing`` (never run); a rerun's or a damaged run's
    note ends with the command that reruns it. Nothing is executed.
    """
    from .prose_refresh import CodeChanged, refresh_prose

    results_dir = Path(results_dir or REPO_ROOT / "results")
    outcomes, jobs = [], batch_jobs(experiments, seeds, profile, grid)
    for e, s, point in jobs:
        tag, out_json, executed = run_files(results_dir, profile, e, s, point)
        outcome = RunOutcome(e, s, "missing", executed, tag=tag)
        if executed.exists():
            try:
                changed = refresh_prose(executed, source_notebook(e))
                outcome.status = "prose" if changed else "current"
                outcome.error = f"{changed} prose cell(s) taken from the source" if changed else ""
            except CodeChanged as err:
                outcome.status, outcome.error = "rerun", str(err)
            except Exception as err:   # cut short, emptied, not a notebook, cannot be replaced
                outcome.status = "damaged"
                outcome.error = (f"{executed} cannot be read or rewritten ({failure_text(err, None)}); "
                                 f"a rerun writes it again")
        outcomes.append(outcome)
        if outcome.status in ("rerun", "damaged"):
            source = _data_source_of(out_json)
            outcome.error += ": " + rerun_commands([outcome], [(e, s, point)], ("rerun", "damaged"), profile,
                                                   results_dir, grid, force=True,
                                                   options="" if source == "embedded" else f" --data-source {source}")[0]
    print(format_summary(outcomes))
    return outcomes


def _data_source_of(out_json: Path) -> str:
    """The data source a run's results file records (``embedded`` when it cannot be read)."""
    from .results import read_run

    try:
        return read_run(out_json)["config"]["data"]["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return "embedded"


def format_summary(outcomes: list[RunOutcome]) -> str:
    lines = [f"{'experiment':<12}{'seed':>5}  {'status':<8}{'minutes':>8}  notebook"]
    for o in outcomes:
        lines.append(f"{o.experiment:<12}{o.seed:>5}  {o.status:<8}{o.seconds / 60:>8.1f}  {o.notebook}")
        if o.tag:
            lines[-1] = lines[-1].replace(f"{o.experiment:<12}", f"{o.experiment + ' ' + o.tag:<12}", 1)
        if o.error:
            label = "note" if o.status in ("prose", "skipped") else "error"
            lines.append(f"{'':<17}{label}: {o.error}")
    return "\n".join(lines)
