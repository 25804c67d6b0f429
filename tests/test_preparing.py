"""Several processes preparing the same dataset at once (``drnet reproduce --workers N`` on a fresh
clone): one prepares, the others wait for it and then find the data complete."""

from __future__ import annotations

import multiprocessing
import time

from drnet_lib.data import chairs, registry
from drnet_lib.data.chairs_standin import SIDECAR

fork = multiprocessing.get_context("fork")


def _prepare(root):
    chairs.prepare_chairs("embedded", root, size="ci", progress=False)


def _chair_tree(root):
    return chairs.chairs_dir(chairs.standin_root(root, "ci"))


def test_a_second_process_waits_for_the_first_then_finds_the_data(tmp_path):
    with registry.preparing(tmp_path, "chairs-standin-ci"):      # as if another run were rendering
        child = fork.Process(target=_prepare, args=(tmp_path,))
        child.start()
        time.sleep(1.5)
        assert child.is_alive()                                  # waiting for the lock ...
        assert not _chair_tree(tmp_path).exists()                # ... without writing anything
    child.join(120)
    assert child.exitcode == 0
    assert (_chair_tree(tmp_path) / SIDECAR).is_file()


def test_processes_preparing_at_once_all_succeed(tmp_path):
    children = [fork.Process(target=_prepare, args=(tmp_path,)) for _ in range(3)]
    for c in children:
        c.start()
    for c in children:
        c.join(180)
    assert [c.exitcode for c in children] == [0, 0, 0]
    tree = chairs.load_chairs_tree(chairs.standin_root(tmp_path, "ci"))
    assert len(tree) > 0
