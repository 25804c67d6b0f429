"""What ships beside the code: the conda environment for readers mirrors pyproject.toml (same packages,
same version bounds), and every committed notebook is valid nbformat with cell ids."""

from __future__ import annotations

import re
import subprocess
import warnings

import nbformat
import pytest

from drnet_lib.results import REPO_ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _requirements(lines) -> dict[str, str]:
    """``{"name": "specifier"}`` with names normalised as pip does (lower case, - for _ and .)."""
    out = {}
    for line in lines:
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)$", line)
        out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2).replace(" ", "")
    return out


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = _requirements(project["dependencies"] + project["optional-dependencies"]["dev"])
    pip_lines = []
    in_pip = False
    for line in (REPO_ROOT / "environment.yml").read_text().splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if stripped.strip() == "- pip:":
            in_pip = True
        elif in_pip and stripped.strip().startswith("- ") and stripped.strip() != "- -e .":
            pip_lines.append(stripped.strip()[2:])
    assert _requirements(pip_lines) == wanted


def _tracked_notebooks() -> list:
    """Paths of the notebooks git tracks (results' executed notebooks included)."""
    listed = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=REPO_ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [REPO_ROOT / name for name in listed.stdout.split()]


def test_every_committed_notebook_is_valid_and_has_cell_ids():
    """nbformat 4.5 wants an id on every cell; a cell pasted in by hand without one makes every
    book build warn, and nbformat says it will become an error."""
    for path in _tracked_notebooks():
        name = path.relative_to(REPO_ROOT)
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # MissingIDFieldWarning and friends become errors, named below
            try:
                with open(path, encoding="utf-8") as f:
                    nb = nbformat.read(f, as_version=nbformat.NO_CONVERT)
                nbformat.validate(nb)
            except (Warning, nbformat.ValidationError) as err:
                pytest.fail(f"{name}: {type(err).__name__}: {str(err)[:200]}")
        if (nb.nbformat, nb.nbformat_minor) >= (4, 5):
            missing = [i for i, cell in enumerate(nb.cells) if "id" not in cell]
            assert not missing, f"{name}: cells {missing} have no id"
