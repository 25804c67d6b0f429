"""notebooks/conftest.py: a smoke notebook's outputs are compared digit for digit on the kind of CPU
that made them; on another kind (or where the notebook names none) with their numbers masked, so
rounding passes and any other change still fails, and the run says which notebooks were masked."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from drnet_lib.results import REPO_ROOT, host_cpu


def _run_notebook(tmp_path, made_on, committed_output):
    """nbval on a one-cell notebook that prints 'loss 0.5 supported', committed with another output."""
    shutil.copy(REPO_ROOT / "notebooks" / "conftest.py", tmp_path / "conftest.py")
    cell = nbformat.v4.new_code_cell("print('loss', 1 / 2, 'supported')", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=committed_output)]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if made_on is not None:
        nb.metadata["drnet"] = {"smoke_outputs_host_cpu": host_cpu() if made_on == "here" else made_on}
    nbformat.write(nb, tmp_path / "smoke.ipynb")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-current-env", "smoke.ipynb"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("made_on", ["Some Other CPU 9000", None])
def test_another_cpus_outputs_are_compared_without_their_digits(tmp_path, made_on):
    rounding = _run_notebook(tmp_path, made_on, "loss 0.4999 supported\n")
    assert rounding.returncode == 0, rounding.stdout[-2000:]
    assert f"this machine is {host_cpu()}: compared with their numbers masked" in rounding.stdout
    assert (made_on or "a CPU the notebook does not name") in rounding.stdout
    assert "refresh_smoke_notebooks.py" in rounding.stdout
    verdict = _run_notebook(tmp_path, made_on, "loss 0.4999 NOT supported\n")
    assert verdict.returncode == 1, verdict.stdout[-2000:]          # words still count


def test_this_cpus_outputs_are_compared_digit_for_digit(tmp_path):
    assert _run_notebook(tmp_path, "here", "loss 0.5 supported\n").returncode == 0
    rounding = _run_notebook(tmp_path, "here", "loss 0.4999 supported\n")
    assert rounding.returncode == 1, rounding.stdout[-2000:]
    assert "numbers masked" not in rounding.stdout
