"""The conda environment for readers mirrors pyproject.toml: same packages, same version bounds."""

from __future__ import annotations

import re

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
