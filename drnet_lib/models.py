"""DrNet networks: content and pose encoders, decoder, scene discriminator, pose LSTM.

All encoders follow the DCGAN pattern of the authors' code (reference/drnet.md §2): a stack of
4x4 stride-2 convolutions, each followed by BatchNorm and LeakyReLU(0.2), that halves the image
until it is 4x4, then a 4x4 "valid" convolution to a ``(B, dim, 1, 1)`` code squashed by
BatchNorm + tanh. Widths double per stage from ``base_width`` and stop at ``8 * base_width``:

    64 px : 64 -> 128 -> 256 -> 512            (4 stages, the authors' dcgan_64)
    128 px: 64 -> 128 -> 256 -> 512 -> 512     (5 stages, the authors' dcgan_128)
    32 px : 64 -> 128 -> 256                   (3 stages, our smaller CPU profile)

Images are in [0, 1]; the decoder ends with a sigmoid. Codes have shape ``(B, dim, 1, 1)``.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from .config import ModelConfig


def stage_widths(image_size: int, base_width: int) -> list[int]:
    """Channel width after each stride-2 stage, from full resolution down to 4x4."""
    n_stages = int(math.log2(image_size)) - 2
    if 2 ** (n_stages + 2) != image_size or n_stages < 1:
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return [base_width * min(2**i, 8) for i in range(n_stages)]


def down_block(c_in: int, c_out: int) -> nn.Sequential:
    """Conv 4x4 / stride 2 (halves H and W) -> BatchNorm -> LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)
    )


def up_block(c_in: int, c_out: int) -> nn.Sequential:
    """Transposed conv 4x4 / stride 2 (doubles H and W) -> BatchNorm -> LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)
    )


class DCGANEncoder(nn.Module):
    """Image ``(B, C, S, S)`` -> code ``(B, dim, 1, 1)`` in (-1, 1), plus the per-stage features.

    ``forward`` returns ``(code, skips)``; ``skips[i]`` is the output of stage ``i`` (full
    resolution first), used by the U-Net decoder when the content encoder has skip connections.
    The pose encoder simply ignores them.
    """

    def __init__(self, channels: int, dim: int, image_size: int, base_width: int, code_bn_affine: bool = True):
        super().__init__()
        widths = stage_widths(image_size, base_width)
        ins = [channels] + widths[:-1]
        self.stages = nn.ModuleList(down_block(i, o) for i, o in zip(ins, widths))
        self.head = nn.Sequential(nn.Conv2d(widths[-1], dim, 4, 1, 0),
                                  nn.BatchNorm2d(dim, affine=code_bn_affine), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return self.head(x), skips


class Decoder(nn.Module):
    """concat(content ``(B, dc, 1, 1)``, pose ``(B, dp, 1, 1)``) -> image ``(B, C, S, S)``.

    With ``skips=True`` (the authors' dcgan_unet) every up-sampling stage also receives the
    content encoder's feature map of the same resolution, concatenated along channels, so each
    stage's input width doubles. The skips always come from the *content* frame.
    """

    def __init__(self, channels: int, content_dim: int, pose_dim: int, image_size: int,
                 base_width: int, skips: bool):
        super().__init__()
        self.use_skips = skips
        widths = stage_widths(image_size, base_width)[::-1]  # deepest first, e.g. 512,256,128,64
        mult = 2 if skips else 1
        self.project = nn.Sequential(  # 1x1 code -> 4x4 feature map
            nn.ConvTranspose2d(content_dim + pose_dim, widths[0], 4, 1, 0),
            nn.BatchNorm2d(widths[0]), nn.LeakyReLU(0.2, inplace=True),
        )
        self.stages = nn.ModuleList(up_block(w * mult, w_next) for w, w_next in zip(widths, widths[1:]))
        self.to_image = nn.Sequential(nn.ConvTranspose2d(widths[-1] * mult, channels, 4, 2, 1), nn.Sigmoid())

    def forward(self, content: torch.Tensor, pose: torch.Tensor,
                skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        h = self.project(torch.cat([content, pose], dim=1))
        if not self.use_skips:
            for stage in self.stages:
                h = stage(h)
            return self.to_image(h)
        if skips is None:
            raise ValueError("this decoder has skip connections: pass the content encoder's skips")
        deepest_first = skips[::-1]
        for stage, skip in zip(self.stages, deepest_first):
            h = stage(torch.cat([h, skip], dim=1))
        return self.to_image(torch.cat([h, deepest_first[-1]], dim=1))


class SceneDiscriminator(nn.Module):
    """C: a pair of pose codes -> probability that they come from the same clip.

    ``Linear(2*pose_dim, w) -> ReLU -> Linear(w, w) -> ReLU -> Linear(w, 1) -> sigmoid``, w = 100.
    Inputs ``(B, pose_dim, 1, 1)`` each; output ``(B,)``.
    """

    def __init__(self, pose_dim: int, width: int = 100):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * pose_dim, width), nn.ReLU(inplace=True),
            nn.Linear(width, width), nn.ReLU(inplace=True),
            nn.Linear(width, 1), nn.Sigmoid(),
        )

    def forward(self, pose_a: torch.Tensor, pose_b: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([pose_a.flatten(1), pose_b.flatten(1)], dim=1)).squeeze(1)


class PoseLSTM(nn.Module):
    """Predicts the next pose code from the current one and the clip's fixed content code.

    Input per step: concat(pose ``(B, dp)``, content ``(B, dc)``) -> Linear embedding (no
    nonlinearity, as in the authors' code) -> ``layers`` stacked LSTM cells of ``hidden`` units
    -> Linear -> tanh, so predictions live in the same (-1, 1) range as the pose encoder.
    """

    def __init__(self, pose_dim: int, content_dim: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.embed = nn.Linear(pose_dim + content_dim, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Sequential(nn.Linear(hidden, pose_dim), nn.Tanh())

    def forward(self, poses: torch.Tensor, content: torch.Tensor, state=None):
        """poses ``(B, T, dp)``, content ``(B, dc)`` -> next poses ``(B, T, dp)``, new state."""
        content = content.unsqueeze(1).expand(-1, poses.shape[1], -1)
        h, state = self.lstm(self.embed(torch.cat([poses, content], dim=2)), state)
        return self.out(h), state


def init_weights(module: nn.Module) -> None:
    """The authors' init: conv/linear weights ~ N(0, 0.02), biases 0; BatchNorm gamma ~ N(1, 0.02).

    The LSTM's own recurrent weights keep PyTorch's default init, as in drnet-py (its init
    function only matched class names containing 'Conv', 'Linear' or 'BatchNorm').
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DrNet(nn.Module):
    """The four networks of DrNet in one container (the LSTM lives apart, see predict.py)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.content_model not in ("dcgan", "dcgan_unet"):
            raise ValueError(f"content_model must be 'dcgan' or 'dcgan_unet', got {cfg.content_model!r}")
        if cfg.pose_model != "dcgan":
            raise ValueError(f"pose_model must be 'dcgan', got {cfg.pose_model!r}")
        self.cfg = cfg
        # content_bn_affine=False fixes the content code's BatchNorm scale at 1 (a deviation used by
        # the cpu profile): otherwise Adam can satisfy the similarity loss by shrinking that scale
        # towards 0 within ~1,000 steps, long before the code has learned what stays constant.
        self.content_encoder = DCGANEncoder(cfg.channels, cfg.content_dim, cfg.image_size, cfg.base_width,
                                            code_bn_affine=cfg.content_bn_affine)
        self.pose_encoder = DCGANEncoder(cfg.channels, cfg.pose_dim, cfg.image_size, cfg.base_width)
        self.decoder = Decoder(cfg.channels, cfg.content_dim, cfg.pose_dim, cfg.image_size,
                               cfg.base_width, skips=cfg.content_model == "dcgan_unet")
        self.scene_discriminator = SceneDiscriminator(cfg.pose_dim, cfg.discriminator_width)
        self.apply(init_weights)

    def encode_content(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, C, S, S)`` -> content code ``(B, dc, 1, 1)`` and skip features (full res first)."""
        return self.content_encoder(x)

    def encode_pose(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` -> pose code ``(B, dp, 1, 1)``."""
        return self.pose_encoder(x)[0]

    def decode(self, content, skips, pose) -> torch.Tensor:
        """Content code (+ skips of the content frame) and a pose code -> image ``(B, C, S, S)``."""
        return self.decoder(content, pose, skips if self.decoder.use_skips else None)


@contextlib.contextmanager
def evaluating(module: nn.Module):
    """Run ``module`` in eval mode under ``no_grad``; every submodule's own train/eval flag is
    restored afterwards (a caller may keep, say, a discriminator in eval mode on purpose)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        for m, mode in modes:
            m.training = mode
