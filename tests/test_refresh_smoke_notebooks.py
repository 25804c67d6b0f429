"""tools/refresh_smoke_notebooks.py rewrites a source notebook only after a finished run."""

from __future__ import annotations

import importlib.util

import nbformat
import pytest

from drnet_lib.results import REPO_ROOT


def load_tool():
    spec = importlib.util.spec_from_file_location("refresh_smoke_notebooks",
                                                  REPO_ROOT / "tools" / "refresh_smoke_notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def notebook(path, body: str) -> bytes:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path.read_bytes()


def test_a_failing_notebook_is_left_as_it_was(tmp_path):
    tool = load_tool()
    path = tmp_path / "broken.ipynb"
    before = notebook(path, "raise RuntimeError('broken')")
    with pytest.raises(Exception, match="broken"):
        tool.refresh(path)
    assert path.read_bytes() == before                    # papermill used to write into the source as it went
    assert [p.name for p in tmp_path.iterdir()] == ["broken.ipynb"]


def test_a_finished_notebook_is_replaced_with_its_outputs_and_no_run_metadata(tmp_path):
    tool = load_tool()
    path = tmp_path / "ok.ipynb"
    notebook(path, "print(6 * 7)")
    tool.main([str(path)])
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].outputs[0]["text"] == "42\n"
    assert "papermill" not in nb.metadata and "smoke_outputs_host_cpu" in nb.metadata["drnet"]
    assert [p.name for p in tmp_path.iterdir()] == ["ok.ipynb"]


def test_usage_and_a_missing_path(tmp_path, capsys):
    tool = load_tool()
    with pytest.raises(SystemExit):
        tool.main(["--help"])
    assert "usage:" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no notebook at"):
        tool.main([str(tmp_path / "missing.ipynb")])
