"""Pose codes' size, smoothness and predicted motion (drnet_lib.code_motion, tools/mnist_remeasure.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from drnet_lib import cli
from drnet_lib.code_motion import code_statistics, motion_kept, step_lengths
from drnet_lib.results import REPO_ROOT


def _walks(clips=64, steps=50, dims=6, seed=0):
    """Smooth trajectories: random walks of small steps, each clip from its own start."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(clips, 1, dims, generator=g) + 0.05 * torch.randn(clips, steps, dims, generator=g).cumsum(1)


def test_scaling_the_codes_scales_their_size_but_not_their_smoothness():
    codes = _walks()
    small, large = code_statistics(codes), code_statistics(3 * codes)
    for key in ("spread", "clip_spread", "step"):
        assert large[key] == pytest.approx(3 * small[key], rel=1e-5)
    for key in ("step_over_clip_spread", "autocorrelation"):
        assert large[key] == pytest.approx(small[key], rel=1e-5)
    assert small["autocorrelation"] > 0.8 and small["step_over_clip_spread"] < 0.5


def test_codes_pushed_towards_the_end_of_tanh_s_range_show_an_offset_and_a_flatter_slope():
    g = torch.Generator().manual_seed(2)
    centred = torch.tanh(0.3 * torch.randn(50, 20, 4, generator=g))
    pushed = torch.tanh(2.0 + 0.3 * torch.randn(50, 20, 4, generator=g))
    a, b = code_statistics(centred), code_statistics(pushed)
    assert a["offset"] < 0.05 and b["offset"] > 0.9
    assert a["tanh_slope"] > 0.9 and b["tanh_slope"] < 0.15
    assert b["dimension_sd"] < a["dimension_sd"]            # the same spread before tanh, squeezed at its end
    assert code_statistics(torch.full((2, 3, 4), 0.5))["tanh_slope"] == pytest.approx(0.75)


def test_codes_drawn_independently_have_no_autocorrelation_and_step_about_root_two_spreads():
    g = torch.Generator().manual_seed(1)
    s = code_statistics(torch.randn(200, 100, 8, generator=g))
    assert abs(s["autocorrelation"]) < 0.05
    assert s["step_over_clip_spread"] == pytest.approx(math.sqrt(2), rel=0.05)
    assert s["spread"] == pytest.approx(math.sqrt(8), rel=0.05)     # unit variance in each of 8 dimensions


def test_step_lengths_start_from_the_held_code_and_motion_kept_averages_a_window_per_checkpoint():
    held = torch.zeros(2, 3)
    predicted = torch.tensor([[1.0, 0, 0], [1.0, 2, 0], [1.0, 2, 0]]).expand(2, 3, 3)
    assert step_lengths(predicted, held).tolist() == [[1.0, 2.0, 0.0]] * 2
    ratio = [1.0, 2.0, 0.0, 4.0]
    assert motion_kept(ratio, (1, 2, 4), window=2) == {"1": 1.0, "2": 1.5, "4": 2.0}


def test_mnist_remeasure_records_the_pose_codes_of_a_recorded_run(tmp_path):
    results = tmp_path / "results" / "smoke" / "mnist_short_seed0.json"
    ckpt = tmp_path / "ckpt" / "smoke" / "mnist_short_seed0" / "drnet.pt"
    args = ["train", "--experiment", "mnist", "--profile", "smoke", "--device", "cpu",
            "--checkpoint-dir", str(tmp_path / "ckpt"), "--results-dir", str(tmp_path / "results"),
            "--record", "short", "--set", "train.iterations=4", "lstm.iterations=4"]
    assert cli.main(args) == 0

    def remeasure(*pairs):
        return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "mnist_remeasure.py"), *pairs,
                               "--results-dir", str(tmp_path / "results")], capture_output=True, text=True)

    # a misspelt file stops the tool before it measures anything, naming the file
    done = remeasure(f"{results}={ckpt.with_name('drent.pt')}")
    assert done.returncode == 2 and "drent.pt" in done.stderr
    done = remeasure(f"{results}={ckpt}")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "results" / "smoke" / "mnist_pose_codes.json").read_text())
    entry = record["runs"]["mnist_short_seed0"]
    cfg = json.loads(results.read_text())["config"]
    assert entry["iteration"] == 4 and entry["clips"] == min(cfg["eval"]["rollout_clips"], cfg["data"]["test_clips"])
    assert len(entry["step_ratio"]) == cfg["eval"]["rollout_steps"]
    assert list(entry["motion_kept"]) == [str(s) for s in cfg["eval"]["rollout_checkpoints"]]
    assert set(entry["true"]) == {"spread", "clip_spread", "step", "step_over_clip_spread", "autocorrelation",
                                  "offset", "dimension_sd", "tanh_slope"}
    assert entry["provenance"]["device"].startswith("cpu") and "pose-code space" in record["what"]
