"""Batch reruns of the experiment notebooks through papermill.

For each (experiment, seed) the source notebook ``notebooks/<NN>_<experiment>.ipynb`` is executed
with ``profile``/``seed``/... injected into ``results/<profile>/<experiment>_seed<k>.ipynb``; the
notebook itself writes ``results/<profile>/<experiment>_seed<k>.json``. Source notebooks are
never overwritten. A run whose JSON exists is skipped unless forced; a failed run is reported
with its notebook path and does not stop the others.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .results import REPO_ROOT, results_path

NOTEBOOKS = {"mnist": "01_mnist.ipynb"}


@dataclass
class RunOutcome:
    experiment: str
    seed: int
    status: str          # "done", "skipped" or "failed"
    notebook: Path
    seconds: float = 0.0
    error: str = ""


def source_notebook(experiment: str) -> Path:
    if experiment not in NOTEBOOKS:
        raise ValueError(f"unknown experiment {experiment!r}; known: {sorted(NOTEBOOKS)}")
    return REPO_ROOT / "notebooks" / NOTEBOOKS[experiment]


def run_one(experiment: str, profile: str, seed: int, results_dir: Path, device: str = "auto",
            data_source: str = "embedded", force: bool = False) -> RunOutcome:
    import papermill as pm

    out_json = results_path(results_dir, profile, experiment, seed)
    out_nb = out_json.with_suffix(".ipynb")
    if out_json.exists() and not force:
        return RunOutcome(experiment, seed, "skipped", out_nb)
    out_nb.parent.mkdir(parents=True, exist_ok=True)
    notebooks = REPO_ROOT / "notebooks"
    # paths as seen from the notebook's working directory (relative, so executed notebooks
    # committed to the book do not show this machine's folders)
    params = dict(profile=profile, seed=seed, device=device, data_source=data_source,
                  data_root=os.path.relpath(REPO_ROOT / "data", notebooks),
                  results_dir=os.path.relpath(Path(results_dir).resolve(), notebooks),
                  checkpoint_dir=os.path.relpath(REPO_ROOT / "checkpoints", notebooks))
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(source_notebook(experiment)), str(out_nb), parameters=params,
                            cwd=str(notebooks), kernel_name="python3",
                            progress_bar=False, request_save_on_cell_execute=True)
    except Exception as err:  # keep going: one failing run must not stop the batch
        return RunOutcome(experiment, seed, "failed", out_nb, time.perf_counter() - start,
                          f"{err.__class__.__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}")
    return RunOutcome(experiment, seed, "done", out_nb, time.perf_counter() - start)


def reproduce(experiments, seeds, profile: str = "cpu", results_dir=None, device: str = "auto",
              data_source: str = "embedded", force: bool = False, progress: bool = True) -> list[RunOutcome]:
    """Run every (experiment, seed), one after another, and print a summary table."""
    from tqdm.auto import tqdm

    results_dir = Path(results_dir or REPO_ROOT / "results")
    for e in experiments:
        source_notebook(e)  # fail fast on an unknown name, before any run starts
    jobs = [(e, s) for e in experiments for s in seeds]
    outcomes = []
    for e, s in tqdm(jobs, desc=f"reproduce ({profile})", disable=not progress):
        outcomes.append(run_one(e, profile, s, results_dir, device, data_source, force))
    print(format_summary(outcomes))
    return outcomes


def format_summary(outcomes: list[RunOutcome]) -> str:
    lines = [f"{'experiment':<12}{'seed':>5}  {'status':<8}{'minutes':>8}  notebook"]
    for o in outcomes:
        lines.append(f"{o.experiment:<12}{o.seed:>5}  {o.status:<8}{o.seconds / 60:>8.1f}  {o.notebook}")
        if o.error:
            lines.append(f"{'':<17}error: {o.error}")
    return "\n".join(lines)
