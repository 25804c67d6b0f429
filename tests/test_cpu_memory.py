"""Keeping freed memory between iterations on the CPU (drnet_lib/cpu_memory.py): fewer page
faults, the same arithmetic."""

from __future__ import annotations

import resource

import pytest
import torch

from drnet_lib import cpu_memory
from drnet_lib.config import get_config
from drnet_lib.train import DrNetTrainer

glibc = pytest.mark.skipif(cpu_memory._mallopt() is None, reason="the C library is not glibc: nothing to set")


def _page_faults_per_round(rounds: int = 4) -> float:
    """Allocate, write and free a 64 MiB tensor (above any mmap threshold) ``rounds`` times after a
    first round; the minor page faults per round."""
    torch.ones(16 * 2**20)                    # the first round may map new memory either way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        torch.ones(16 * 2**20)                # 64 MiB written, then freed
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds


@glibc
def test_kept_memory_is_reused_without_page_faults():
    try:
        assert cpu_memory.keep_freed_memory(False)
        returned = _page_faults_per_round()
        assert cpu_memory.keep_freed_memory(True)
        kept = _page_faults_per_round()
    finally:
        cpu_memory.keep_freed_memory(True)
    pages = 64 * 2**20 / resource.getpagesize()
    assert returned > 0.5 * pages             # glibc's default: the block is mapped and faulted in again
    assert kept < 0.01 * pages                # kept: the same pages serve the next round


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
