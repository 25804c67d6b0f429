"""Re-execute source notebooks in the smoke profile, in place, as `pytest --nbval` expects them.

    .venv/bin/python tools/refresh_smoke_notebooks.py notebooks/04_kth.ipynb [...]

The committed copies of ``notebooks/*.ipynb`` carry the outputs of a smoke run: strict nbval
re-runs them and compares. After editing a notebook, refresh it with this script (it runs the
notebook with its own default parameters, which are the smoke ones, from ``notebooks/``), then
strips what papermill adds (run metadata, timings) so the diff shows only real changes. The
kernel keeps the machine's default thread count: each smoke notebook pins one thread itself, so
its outputs must not depend on the environment (a notebook that forgot to would show up here).

The outputs do depend on the processor: a smoke notebook run on an Intel Xeon (AVX-512) and on an
AMD EPYC differed from the first DrNet iterations on (oneDNN's convolution kernels round
differently), and capping the instruction sets (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_CBWR)
did not make them agree. Refresh on the kind of machine that runs CI; `lscpu` tells which. The
script records the CPU in the notebook's metadata (``drnet.smoke_outputs_host_cpu``): on that kind of
CPU nbval compares every digit; on another, ``notebooks/conftest.py`` masks the numbers and says so.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
import papermill as pm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from drnet_lib.results import host_cpu  # noqa: E402


def refresh(path: Path) -> None:
    """Execute ``path`` into a copy beside it and replace the source only once the run has
    finished and been cleaned: a notebook that fails, or a refresh stopped half-way, leaves the
    committed source as it was (the copy, ``.<name>.refreshing.ipynb``, is removed)."""
    if not path.is_file():
        raise SystemExit(f"no notebook at {path}")
    copy = path.with_name(f".{path.stem}.refreshing.ipynb")
    try:
        pm.execute_notebook(str(path), str(copy), cwd=str(path.parent), kernel_name="python3",
                            progress_bar=False)
        nb = nbformat.read(copy, as_version=4)
        nb.metadata.pop("papermill", None)
        nb.metadata.setdefault("drnet", {})["smoke_outputs_host_cpu"] = host_cpu()   # see notebooks/conftest.py
        for cell in nb.cells:
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
            if cell.metadata.get("tags") == []:
                cell.metadata.pop("tags")
        nbformat.write(nb, copy)
        os.replace(copy, path)
    finally:
        copy.unlink(missing_ok=True)
    print(f"refreshed {path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path, help="source notebooks to re-execute in place")
    for path in parser.parse_args(argv).notebooks:
        refresh(path.resolve())


if __name__ == "__main__":
    main()
