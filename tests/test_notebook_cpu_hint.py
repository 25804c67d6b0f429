"""notebooks/conftest.py: when strict nbval fails on a notebook whose committed outputs were made on
another CPU model, the test run says so and how to refresh them; on the same CPU it stays quiet."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from drnet_lib.results import REPO_ROOT, host_cpu


def _notebook_with_stale_output(path, cpu):
    cell = nbformat.v4.new_code_cell("print(1 + 1)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="3\n")]   # not what it prints
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["drnet"] = {"smoke_outputs_host_cpu": cpu}
    nbformat.write(nb, path)


@pytest.mark.parametrize("made_on, hint", [("Some Other CPU 9000", True), (None, True), ("here", False)])
def test_nbval_failure_names_the_cpu_the_outputs_were_made_on(tmp_path, made_on, hint):
    shutil.copy(REPO_ROOT / "notebooks" / "conftest.py", tmp_path / "conftest.py")
    _notebook_with_stale_output(tmp_path / "stale.ipynb", host_cpu() if made_on == "here" else made_on)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-current-env", "stale.ipynb"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:]            # the stale output fails either way
    assert ("refresh_smoke_notebooks.py" in proc.stdout) == hint, proc.stdout[-2000:]
    if hint:
        assert f"this machine: {host_cpu()}" in proc.stdout
        assert (made_on or "a CPU the notebook does not name") in proc.stdout
