"""Chairs as turntable sweeps, and the chairs experiment's measurements on known inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drnet_lib import chairs_experiment as ce
from drnet_lib.data.chairs import ChairsTree
from drnet_lib.data.sweeps import ClipStarts, chair_sweeps


@pytest.fixture
def tree():
    """10 chairs x 2 elevations x 12 azimuths of 8x8 RGB noise (distinct views)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 2, 12, 8, 8, 3), dtype=np.uint8)
    return ChairsTree(images, tuple(f"chair{i:02d}" for i in range(10)), ("020", "030"), None)


def test_chair_sweeps_split_by_sorted_id_and_keep_views_in_order(tree):
    train, test = chair_sweeps(tree, "train", 8), chair_sweeps(tree, "test", 8)
    assert len(train) == 8 * 2 and len(test) == 2 * 2
    assert set(train.chair.tolist()) == set(range(8)) and set(test.chair.tolist()) == {8, 9}
    s = 3                                           # chair 9, elevation 1
    assert (int(test.chair[s]), int(test.elevation[s])) == (9, 1)
    frames = test.frames[s].permute(0, 2, 3, 1).numpy()                # (A, H, W, C)
    assert np.array_equal(frames, tree.images[9, 1])
    with pytest.raises(ValueError, match="unknown split"):
        chair_sweeps(tree, "validation", 8)


def test_nearest_azimuth_finds_the_true_views(tree):
    bank = chair_sweeps(tree, "test", 8)
    factors = ClipStarts(torch.tensor([0, 3]), torch.tensor([5, 11]))
    truth = bank.render(factors, torch.arange(6))
    sweeps = bank.render(ClipStarts(factors.sequence, torch.zeros(2, dtype=torch.long)), torch.arange(12))
    found = ce.nearest_azimuth(truth, sweeps)
    assert found.tolist() == [[5, 6, 7, 8, 9, 10], [11, 0, 1, 2, 3, 4]]


def test_azimuth_probe_reads_the_angle_from_an_informative_code():
    rng = np.random.default_rng(0)
    az = rng.integers(0, 36, 400)
    informative = np.c_[ce.azimuth_circle(az, 36), rng.normal(size=(400, 3)) * 0.1]
    noise = rng.normal(size=(400, 5))
    assert ce.azimuth_r2(informative[:300], az[:300], informative[300:], az[300:], 36) > 0.95
    assert ce.azimuth_r2(noise[:300], az[:300], noise[300:], az[300:], 36) < 0.1
    # no jump at the wrap: 350 and 0 degrees are neighbours on the circle
    near = ce.azimuth_circle(np.array([35, 0]), 36)
    assert np.linalg.norm(near[0] - near[1]) < 0.2


def test_identity_probe_generalises_to_unseen_views_only_when_the_code_names_the_chair():
    rng = np.random.default_rng(1)
    chair = np.repeat(np.arange(6), 36)
    azimuth = np.tile(np.arange(36), 6)
    named = np.eye(6)[chair] * 3 + rng.normal(size=(216, 6)) * 0.3
    assert ce.identity_accuracy(named, chair, azimuth) > 0.95
    assert ce.identity_accuracy(rng.normal(size=(216, 6)), chair, azimuth) < 0.4
