"""The explorers react to their sliders as a reader would see: driven through ipywidgets' API."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from drnet_lib.viz import decode_pairs
from drnet_lib.widgets import PoseWalk, RolloutScrubber, SwapExplorer, frames_to_png


def _png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_frames_to_png_tiles_frames_side_by_side():
    frames = torch.rand(3, 1, 8, 8)
    img = Image.open(io.BytesIO(frames_to_png(frames, scale=2)))
    assert img.size == ((3 * 8 + 2 * 2) * 2, 8 * 2)
    pixels = np.asarray(img)[:, :, 0] / 255.0
    assert np.allclose(pixels[::2, :16:2], frames[0, 0].numpy(), atol=1 / 255)   # first tile, unscaled


def test_swap_explorer_decodes_the_chosen_pair(trained_model, test_bank):
    frames = test_bank.render(test_bank.sample_factors(4, torch.Generator().manual_seed(0)), torch.tensor([0]))[:, 0]
    explorer = SwapExplorer(trained_model, frames, frames)
    first = explorer.image.value
    explorer.content.value = 2
    explorer.pose.value = 3
    assert explorer.image.value != first
    expected = decode_pairs(trained_model, frames[2:3], frames[3:4])[0, 0]
    assert np.allclose(explorer.decoded().numpy(), expected)
    assert explorer.image.value == frames_to_png([frames[2], frames[3], torch.from_numpy(expected)])
    assert explorer.content.max == 3 and explorer.pose.max == 3


def test_pose_walk_ends_equal_the_two_poses(trained_model, test_bank):
    frames = test_bank.render(test_bank.sample_factors(2, torch.Generator().manual_seed(1)), torch.tensor([0, 5]))[0]
    walk = PoseWalk(trained_model, frames[0], frames[0], frames[1])
    at_a = walk.decoded()
    walk.t.value = 1.0
    at_b = walk.decoded()
    assert np.allclose(at_a.numpy(), decode_pairs(trained_model, frames[:1], frames[:1])[0, 0], atol=1e-5)
    assert np.allclose(at_b.numpy(), decode_pairs(trained_model, frames[:1], frames[1:2])[0, 0], atol=1e-5)
    walk.t.value = 0.5
    assert walk.image.value not in (frames_to_png([frames[0], at_a, frames[1]]),
                                    frames_to_png([frames[0], at_b, frames[1]]))


def test_rollout_scrubber_shows_truth_only_while_it_lasts():
    generated, truth = torch.rand(10, 1, 8, 8), torch.rand(4, 1, 8, 8)
    scrub = RolloutScrubber(generated, truth)
    assert _png_size(scrub.image.value)[0] > _png_size(frames_to_png(generated[:1]))[0]   # two tiles
    scrub.step.value = 4
    assert [f.data_ptr() for f in scrub.frames()] == [truth[3].data_ptr(), generated[3].data_ptr()]
    scrub.step.value = 5
    assert len(scrub.frames()) == 1 and torch.equal(scrub.frames()[0], generated[4])
    assert scrub.image.value == frames_to_png([generated[4]])
    assert "no real frame" in scrub.caption.value
    assert scrub.step.max == scrub.play.max == 10
