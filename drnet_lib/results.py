"""The results contract: ``results/<profile>/<experiment>_seed<k>.json``, written atomically.

Each file holds the experiment, profile, seed, data source, every setting, the metrics and the
provenance of the run (git commit and whether the tree was dirty, library versions, device, wall
time, finish time). The book and the tests read only these files.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_write
from .distributed import rank_and_world

PACKAGE_PARENT = Path(__file__).resolve().parent.parent   # the repository, or site-packages


def project_root(package_parent: Path | None = None) -> Path:
    """Where ``drnet``'s default folders (checkpoints/, data/, results/) and notebooks/ are: the
    repository when the package runs from a checkout (``pip install -e .``, ``make setup``); the
    working directory when it was installed as a wheel (Colab's ``pip install git+...``), where
    the folder holding the package is site-packages."""
    package_parent = package_parent or PACKAGE_PARENT
    return package_parent if runs_from_checkout(package_parent) else Path.cwd()


def runs_from_checkout(package_parent: Path | None = None) -> bool:
    return ((package_parent or PACKAGE_PARENT) / "pyproject.toml").is_file()


REPO_ROOT = project_root()
# where drnet train, bench and data prepare keep the datasets (outside a clone: ./data)
DEFAULT_DATA_ROOT = REPO_ROOT / "data"


def _git(*args: str) -> str | None:
    """A git command's output in the package's own checkout (None outside one, or on any failure:
    a wheel's working directory may be some other repository)."""
    if not runs_from_checkout():
        return None
    try:
        out = subprocess.run(["git", *args], cwd=PACKAGE_PARENT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def installed_commit(distribution: str = "drnet_lib") -> str | None:
    """The commit pip installed the package from, outside a checkout: ``pip install git+URL@REF``
    records it in the distribution's ``direct_url.json`` (PEP 610); None for other installs."""
    try:
        recorded = importlib.metadata.distribution(distribution).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    try:
        return json.loads(recorded or "{}").get("vcs_info", {}).get("commit_id")
    except (json.JSONDecodeError, AttributeError):
        return None


@functools.cache   # every bench row and provenance asks; the CPU does not change under a process
def host_cpu() -> str:
    """The CPU's model name (e.g. "Intel(R) Xeon(R) Processor"): timings and even the
    last bits of fp32 results depend on it. Read from /proc/cpuinfo on Linux; elsewhere what
    :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({host_cpu()}, {torch.get_num_threads()} threads)"


def recorded_cpu_threads(result: dict) -> int | None:
    """The thread count a CPU run recorded in its provenance (:func:`device_name`), or None for a
    GPU run or a device string without one."""
    found = re.fullmatch(r"cpu \(.*, (\d+) threads\)", result.get("provenance", {}).get("device", ""))
    return int(found.group(1)) if found else None


def code_state() -> tuple[str | None, bool | None]:
    """``(commit, dirty)``: the commit this process's code came from, and whether the tree differed
    from it (results/ left out: a rerun's own notebook, being written by papermill, is not a code
    change), as first asked in this process. Training asks when it starts, so a commit made while a
    run goes does not relabel its results. ``DRNET_GIT_COMMIT`` names the commit where the caller
    knows it (a copy of the tree shipped to another machine, a GPU box, may carry a stale .git or
    none); cleanliness is then unknown (None), as it is outside a checkout."""
    return _code_state(os.environ.get("DRNET_GIT_COMMIT"), str(PACKAGE_PARENT))


@functools.cache   # per named commit and package folder: a test may change either
def _code_state(named: str | None, package_parent: str) -> tuple[str | None, bool | None]:
    if named:
        return named, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return _git("rev-parse", "HEAD") or installed_commit(), (bool(status) if status is not None else None)


def current_commit() -> str | None:
    """The commit of :func:`code_state`: what checkpoints and results files record."""
    return code_state()[0]


# What this process trained or read, by checkpoint (a training loop's record when fit() ends):
# every results file it writes lists them, so a file whose models were only read from finished
# checkpoints says so, and names the code that trained them.
_MODELS: dict[str, dict] = {}


def note_model(key: str, record: dict) -> None:
    """Remember one model of this process for ``provenance.models`` (the last record per key wins:
    a notebook cell run again replaces its model's record)."""
    _MODELS[key] = dict(record)


def provenance(device, wall_s: float) -> dict:
    from . import __version__

    commit, dirty = code_state()
    return {
        "git_commit": commit,
        "dirty": dirty,
        "drnet_lib": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        # several under torchrun: each process on its own device (or cores) trained on its share
        # of the batch, so wall_s is not one device's time for the whole batch
        "processes": rank_and_world()[1],
        "wall_s": round(float(wall_s), 1),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # per checkpoint ("<run>/drnet.pt"): iterations, those trained by this process (0: read only),
        # training minutes over every session, and the commit whose code last trained it
        "models": {key: dict(record) for key, record in sorted(_MODELS.items())},
    }


def _plain(value):
    """JSON-safe copy: numpy/torch scalars to floats, tuples to lists, int dict keys to str."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic, torch.Tensor)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Infinity
    return value


def run_name(experiment: str, seed: int, tag: str | None = None) -> str:
    """``<experiment>[_<tag>]_seed<k>``: how results and checkpoints of one run are named.

    ``tag`` tells apart runs of one experiment that differ in a grid setting (``beta0.1_pose10``).
    """
    return f"{experiment}_{tag}_seed{seed}" if tag else f"{experiment}_seed{seed}"


def grid_tag(params: dict) -> str:
    """A file-name-safe tag for one grid point: ``{"adversarial_weight": 0.01, "pose_dim": 5}`` ->
    ``"adversarial_weight0.01_pose_dim5"`` (keys in the given order, numbers in ``%g`` form)."""
    parts = []
    for key, value in params.items():
        text = f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
        parts.append(f"{key}{text}")
    return "_".join(parts)


def results_path(results_dir, profile: str, experiment: str, seed: int, tag: str | None = None) -> Path:
    return Path(results_dir) / profile / f"{run_name(experiment, seed, tag)}.json"


def write_results(results_dir, cfg, metrics: dict, device, wall_s: float, extra: dict | None = None,
                  tag: str | None = None) -> Path:
    """Write the results JSON of one run; returns its path."""
    record = {
        "experiment": cfg.experiment, "profile": cfg.profile, "seed": cfg.seed, "tag": tag,
        "data_source": cfg.data.source, "config": cfg.to_dict(), "metrics": metrics,
        "provenance": provenance(device, wall_s), **(extra or {}),
    }
    text = json.dumps(_plain(record), indent=2, sort_keys=False) + "\n"
    path = results_path(results_dir, cfg.profile, cfg.experiment, cfg.seed, tag)
    return atomic_write(path, lambda f: f.write(text.encode()))


def read_results(path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no results at {path}: run `drnet reproduce` for this experiment") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"results file {path} is not valid JSON ({err}); rerun the experiment with --force") from err


def own_training_minutes(result: dict) -> float:
    """The training minutes a run's provenance records (``wall_s``), less those of the models it
    only read from a finished checkpoint (``provenance.models`` entries with
    ``iterations_this_process`` 0: a DrNet copied in from another run to train a pose LSTM on it,
    whose training that other run's results count). Results written before ``models`` was recorded
    count such a model again: nothing in them tells it apart."""
    p = result["provenance"]
    read_only = sum(m["training_min"] for m in (p.get("models") or {}).values() if m.get("iterations_this_process") == 0)
    return p["wall_s"] / 60 - read_only


def write_measurement(path, what: str, name: str, entry: dict) -> None:
    """Add or replace one run's entry in a file of measurements made on saved checkpoints
    (``{"what": description, "runs": {name: entry}}``, the tools' ``results/<profile>/<measure>.json``):
    the other runs' entries are kept, the description becomes ``what``; written atomically."""
    record = read_results(path) if Path(path).exists() else {"runs": {}}
    record = {"what": what, "runs": {**record["runs"], name: entry}}
    atomic_write(path, lambda f: f.write((json.dumps(record, indent=1) + "\n").encode()))


# what write_results puts in every run's record, and the readers below rely on
RUN_KEYS = ("experiment", "seed", "config", "metrics", "provenance")


def read_run(path) -> dict:
    """One run's results record (:func:`write_results`); a file that is valid JSON but not such
    a record (emptied, hand-edited, another file under a run's name) is named with its fix."""
    record = read_results(path)
    missing = [k for k in RUN_KEYS if k not in record] if isinstance(record, dict) else list(RUN_KEYS)
    if missing:
        raise ValueError(f"results file {path} is not a run's record (no {', '.join(missing)}); "
                         f"rerun the experiment with --force, or move the file out of {Path(path).parent}")
    return record


def load_runs(results_dir, profile: str, experiment: str) -> list[dict]:
    """All seeds' results of one experiment and profile, sorted by seed."""
    paths = sorted(Path(results_dir, profile).glob(f"{experiment}_seed*.json"))
    return sorted((read_run(p) for p in paths), key=lambda r: r["seed"])


def load_grid(results_dir, profile: str, experiment: str):
    """One row per grid run of ``experiment`` (``<experiment>_<cell>_seed<k>.json``): its grid
    parameters, iterations, flat numeric metrics, seed, wall time and device, as a DataFrame."""
    import pandas as pd

    rows = []
    for path in sorted(Path(results_dir, profile).glob(f"{experiment}_*_seed*.json")):
        r = read_run(path)
        metrics = {k: v for k, v in r["metrics"].items() if isinstance(v, (int, float))}
        rows.append({**r.get("grid", {}), **metrics, "seed": r["seed"],
                     "iterations": r["config"]["train"]["iterations"],
                     "wall_s": r["provenance"]["wall_s"], "device": r["provenance"]["device"]})
    return pd.DataFrame(rows)


def grid_cell_summary(runs, metrics, by=("adversarial_weight", "pose_dim")):
    """Per grid cell, the number of seeds and each metric's mean and sample std over them.

    Args:
        runs: :func:`load_grid`'s frame (one row per run, so several per cell with several seeds).
        metrics: metric columns to summarise, e.g. ``["classification.pose"]``.
        by: the grid parameters that name a cell.
    Returns:
        One row per cell: the ``by`` columns, ``seeds``, and ``<metric> mean`` / ``<metric> std``
        (std is NaN for a cell with one seed).
    """
    grouped = runs.groupby(list(by), sort=True)
    table = grouped["seed"].nunique().rename("seeds").to_frame()
    for metric in metrics:
        table[f"{metric} mean"] = grouped[metric].mean()
        table[f"{metric} std"] = grouped[metric].std(ddof=1)
    return table.reset_index()


def summarize(values) -> dict:
    """Mean, sample std and a 95% t-interval of per-seed values (n = number of seeds)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None], dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "std": std, "ci95": (mean - half, mean + half)}

