"""Keeping freed memory between iterations on the CPU (drnet_lib/cpu_memory.py): fewer page
faults, the same arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from drnet_lib import cpu_memory
from drnet_lib.config import get_config
from drnet_lib.train import DrNetTrainer

glibc = pytest.mark.skipif(cpu_memory._mallopt() is None, reason="the C library is not glibc: nothing to set")


# The trainer's own iteration, counted in a fresh interpreter per setting. Not one big tensor
# allocated and freed in a loop: torch asks for 64-byte-aligned blocks, glibc's memalign requests a
# little more than the block just freed, and unless that block merges with a neighbour the heap
# grows instead (seen: 3 rounds in 4 faulted in full). And not in this process: what earlier tests
# left in its heap decides where the next big block lands (CI failed on test order alone).
_FAULTS_PER_STEP = """
import json, resource, sys
from drnet_lib.config import get_config
from drnet_lib.train import DrNetTrainer
trainer = DrNetTrainer(get_config("mnist", "cpu", overrides={"train.keep_freed_memory": sys.argv[1] == "on"}), "cpu")
faults = []
for _ in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    trainer.step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(faults))
"""


def _trainer_page_faults_per_step(setting: str) -> float:
    """Mean minor page faults of the MNIST cpu-profile iteration, steps 5-16 (after the heap has
    grown to the iteration's peak), in a new process with ``train.keep_freed_memory`` = ``setting``."""
    done = subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP, setting], capture_output=True, text=True,
                          check=True)
    faults = json.loads(done.stdout.strip().splitlines()[-1])
    return sum(faults[4:]) / len(faults[4:])


@glibc
def test_kept_memory_is_reused_without_page_faults():
    returned = _trainer_page_faults_per_step("off")
    kept = _trainer_page_faults_per_step("on")
    assert returned > 500                     # glibc's default: big blocks are mapped and faulted in again
    assert kept < 0.1 * returned              # kept: last iteration's pages serve this one


@glibc
def test_trainer_sets_its_own_value_before_each_step():
    keep, give_back = (DrNetTrainer(get_config("mnist", "smoke", overrides={"train.keep_freed_memory": v}), "cpu")
                       for v in (True, False))
    give_back.step()
    assert cpu_memory._current is False
    keep.step()
    assert cpu_memory._current is True


def test_the_setting_changes_no_number():
    torch.use_deterministic_algorithms(True)
    try:
        losses = []
        for keep in (True, False):
            trainer = DrNetTrainer(get_config("mnist", "smoke", overrides={"train.keep_freed_memory": keep}), "cpu")
            losses.append(torch.stack([trainer.step() for _ in range(3)]))
    finally:
        torch.use_deterministic_algorithms(False)
        cpu_memory.keep_freed_memory(True)
    assert torch.equal(*losses)


def test_a_bad_value_is_refused():
    with pytest.raises(ValueError, match="train.keep_freed_memory"):
        DrNetTrainer(get_config("mnist", "smoke", overrides={"train.keep_freed_memory": "yes"}), "cpu")


def test_the_setting_does_not_orphan_checkpoints():
    on, off = (get_config("mnist", "smoke", overrides={"train.keep_freed_memory": v}) for v in (True, False))
    assert on.fingerprint("train") == off.fingerprint("train")
