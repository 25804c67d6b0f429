"""Interactive explorers (ipywidgets) for a trained DrNet: swap codes, walk between poses, scrub
a rollout.

Each explorer is a small class holding its sliders and one ``ipywidgets.Image`` (PNG bytes), and
redraws the image whenever a slider moves; ``.widget`` is what a notebook displays. The image is
decoded on demand from the model (no matplotlib), so it stays responsive on a CPU. Without a
live kernel (the static book) widgets show nothing: the chapters also show figures and
JavaScript animations of the same things.

Tests drive them through the widgets' Python API: set ``slider.value``, read ``image.value``.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
import torch
from PIL import Image

from .chairs_experiment import interpolate_pose
from .viz import decode_pairs, frame_to_rgb


def frames_to_png(frames, scale: int = 3) -> bytes:
    """Frames ``(C, H, W)`` in [0, 1], side by side with a 2-pixel white gap, enlarged ``scale``
    times (nearest neighbour, so pixels stay sharp), as PNG bytes."""
    tiles = [frame_to_rgb(f) for f in frames]
    h = max(t.shape[0] for t in tiles)
    gap = np.ones((h, 2, 3))
    row = np.concatenate([part for t in tiles for part in (t, gap)][:-1], axis=1)
    img = Image.fromarray((row * 255).round().astype(np.uint8))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


class SwapExplorer:
    """Pick a content frame and a pose frame; see both and the frame decoded from their codes.

    Args:
        model: a DrNet (``encode_content``, ``encode_pose``, ``decode``).
        content_frames: ``(N, C, H, W)`` frames offered as content (with their skips).
        pose_frames: ``(M, C, H, W)`` frames offered as pose.
    """

    def __init__(self, model, content_frames: torch.Tensor, pose_frames: torch.Tensor):
        self.model, self.content_frames, self.pose_frames = model, content_frames, pose_frames
        self.content = widgets.IntSlider(0, 0, len(content_frames) - 1, description="content")
        self.pose = widgets.IntSlider(0, 0, len(pose_frames) - 1, description="pose")
        self.image = widgets.Image(format="png")
        for slider in (self.content, self.pose):
            slider.observe(lambda _: self.redraw(), names="value")
        caption = widgets.Label("content frame | pose frame | decoded from both")
        self.widget = widgets.VBox([self.content, self.pose, self.image, caption])
        self.redraw()

    def decoded(self) -> torch.Tensor:
        """The current swap, ``(C, H, W)``."""
        c, p = self.content.value, self.pose.value
        pair = decode_pairs(self.model, self.content_frames[c:c + 1], self.pose_frames[p:p + 1])
        return torch.from_numpy(pair[0, 0])

    def redraw(self) -> None:
        c, p = self.content.value, self.pose.value
        self.image.value = frames_to_png([self.content_frames[c], self.pose_frames[p], self.decoded()])


class PoseWalk:
    """Slide along the straight line between two pose codes, decoded with one content frame.

    Args:
        model: a DrNet.
        content_frame: ``(C, H, W)``, the content (and skips) kept fixed.
        pose_a, pose_b: ``(C, H, W)`` frames whose pose codes are the ends of the walk.
    """

    def __init__(self, model, content_frame: torch.Tensor, pose_a: torch.Tensor, pose_b: torch.Tensor):
        self.model, self.content_frame = model, content_frame
        self.ends = (pose_a, pose_b)
        self.t = widgets.FloatSlider(0.0, min=0.0, max=1.0, step=0.05, description="a → b")
        self.image = widgets.Image(format="png")
        self.t.observe(lambda _: self.redraw(), names="value")
        caption = widgets.Label("pose frame a | decoded at the slider's point | pose frame b")
        self.widget = widgets.VBox([self.t, self.image, caption])
        self.redraw()

    def decoded(self) -> torch.Tensor:
        """The frame decoded at ``(1 - t) * pose(a) + t * pose(b)``: ``(C, H, W)``."""
        return interpolate_pose(self.model, self.content_frame, *self.ends, at=[self.t.value])[0]

    def redraw(self) -> None:
        self.image.value = frames_to_png([self.ends[0], self.decoded(), self.ends[1]])


class RolloutScrubber:
    """Step through a rollout (with play and pause), the real frame beside it while there is one.

    Args:
        generated: ``(T, C, H, W)`` predicted frames (index k = step k + 1).
        truth: ``(T', C, H, W)`` real frames aligned with them, ``T' <= T``, or None.
    """

    def __init__(self, generated: torch.Tensor, truth: torch.Tensor | None = None, fps: int = 10):
        self.generated, self.truth = generated, truth
        self.step = widgets.IntSlider(1, 1, len(generated), description="step")
        self.play = widgets.Play(value=1, min=1, max=len(generated), interval=int(1000 / fps))
        widgets.jslink((self.play, "value"), (self.step, "value"))
        self.image = widgets.Image(format="png")
        self.step.observe(lambda _: self.redraw(), names="value")
        self.caption = widgets.Label()
        self.widget = widgets.VBox([widgets.HBox([self.play, self.step]), self.image, self.caption])
        self.redraw()

    def frames(self) -> list[torch.Tensor]:
        """What is shown at the current step: ``[generated]`` or ``[real, generated]``."""
        k = self.step.value - 1
        if self.truth is not None and k < len(self.truth):
            return [self.truth[k], self.generated[k]]
        return [self.generated[k]]

    def redraw(self) -> None:
        shown = self.frames()
        self.image.value = frames_to_png(shown)
        self.caption.value = (f"step {self.step.value}: real | generated" if len(shown) == 2
                              else f"step {self.step.value}: generated (no real frame this far)")
