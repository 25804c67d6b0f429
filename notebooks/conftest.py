"""Loaded by `pytest --nbval notebooks/` (make test): smoke outputs made on another kind of CPU.

The smoke outputs depend on the processor (oneDNN's convolutions round differently from one CPU
model to the next, and thirty training iterations amplify it: an AMD EPYC and an Intel Xeon print
different losses from the first iterations on). ``tools/refresh_smoke_notebooks.py`` records the
CPU in each notebook's metadata (``drnet.smoke_outputs_host_cpu``). On that kind of CPU nbval
compares every output exactly. On another, every cell still runs and must not raise, and its
outputs are still compared, with the numbers in them masked: the same lines, words, tables and
verdicts, not the same digits. The run says so in its summary, with the command that makes the
outputs this machine's own. CI runs on machines of either kind, and which one is not ours to pick.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from drnet_lib.results import host_cpu

METADATA_KEY = "smoke_outputs_host_cpu"
# a number as printed (integers, decimals, exponents, thousands separators), for another CPU's outputs
NUMBER = r"[-+]?(?:\d[\d,]*)?\.?\d+(?:[eE][-+]?\d+)?"
_masked: dict[str, str | None] = {}      # notebook name -> the CPU its outputs were made on


@functools.lru_cache(maxsize=None)     # read once per notebook, not once per cell
def recorded_host_cpu(notebook: Path) -> str | None:
    """The CPU a notebook's committed outputs were made on, if the refresh tool recorded it."""
    return json.loads(notebook.read_text()).get("metadata", {}).get("drnet", {}).get(METADATA_KEY)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """After nbval's notebook setup (which loads the sanitizers), mask numbers in the outputs of a
    notebook whose committed outputs were made on another CPU model."""
    yield
    notebook = item.parent
    if not hasattr(notebook, "sanitize_patterns") or NUMBER in notebook.sanitize_patterns:
        return
    made_on = recorded_host_cpu(Path(str(notebook.fspath)))
    if made_on != host_cpu():
        notebook.sanitize_patterns[NUMBER] = "NUMBER"
        _masked[Path(str(notebook.fspath)).name] = made_on


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _masked:
        return
    terminalreporter.section("smoke outputs made on another CPU")
    for name, cpu in sorted(_masked.items()):
        terminalreporter.write_line(f"{name}: outputs made on {cpu or 'a CPU the notebook does not name'}, "
                                    f"this machine is {host_cpu()}: compared with their numbers masked")
    terminalreporter.write_line("A failure above is then more than rounding. To compare every digit on this CPU, "
                                "make the outputs its own: .venv/bin/python tools/refresh_smoke_notebooks.py "
                                "notebooks/*.ipynb")
