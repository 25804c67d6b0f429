"""Loaded by `pytest --nbval notebooks/` (make test): when a smoke notebook's outputs differ, say
whether the committed outputs were made on another kind of CPU.

The smoke outputs depend on the processor (oneDNN's convolutions round differently from one CPU
model to the next, and thirty training iterations amplify it), so a strict nbval failure on a new
machine is often that and nothing else. ``tools/refresh_smoke_notebooks.py`` records the CPU in
each notebook's metadata (``drnet.smoke_outputs_host_cpu``); this hook compares it with the CPU
running the tests and prints what to do, beside the failures.
"""

from __future__ import annotations

import json
from pathlib import Path

from drnet_lib.results import host_cpu

METADATA_KEY = "smoke_outputs_host_cpu"


def recorded_host_cpu(notebook: Path) -> str | None:
    """The CPU a notebook's committed outputs were made on, if the refresh tool recorded it."""
    return json.loads(notebook.read_text()).get("metadata", {}).get("drnet", {}).get(METADATA_KEY)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    failed = {Path(str(report.fspath)) for report in terminalreporter.stats.get("failed", [])}
    notebooks = sorted(p for p in failed if p.suffix == ".ipynb")
    if not notebooks:
        return
    here = host_cpu()
    elsewhere = {str(p.name): recorded_host_cpu(p) for p in notebooks}
    if all(cpu == here for cpu in elsewhere.values()):
        return   # made on this kind of CPU: the differences are real
    terminalreporter.section("smoke outputs and this CPU")
    for name, cpu in elsewhere.items():
        terminalreporter.write_line(f"{name}: committed outputs made on {cpu or 'a CPU the notebook does not name'}; "
                                    f"this machine: {here}")
    terminalreporter.write_line(
        "Smoke outputs depend on the CPU model. If only numbers differ and the notebooks are otherwise unchanged, "
        "refresh them on the machine that runs CI: .venv/bin/python tools/refresh_smoke_notebooks.py notebooks/*.ipynb")
