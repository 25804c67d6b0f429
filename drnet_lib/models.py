"""DrNet networks: content and pose encoders, decoder, scene discriminator, pose LSTM.

All encoders follow the DCGAN pattern of the authors' code (reference/drnet.md §2): a stack of
4x4 stride-2 convolutions, each followed by BatchNorm and LeakyReLU(0.2), that halves the image
until it is 4x4, then a 4x4 "valid" convolution to a ``(B, dim, 1, 1)`` code squashed by
BatchNorm + tanh. Widths double per stage from ``base_width`` and stop at ``8 * base_width``:

    64 px : 64 -> 128 -> 256 -> 512            (4 stages, the authors' dcgan_64)
    128 px: 64 -> 128 -> 256 -> 512 -> 512     (5 stages, the authors' dcgan_128)
    32 px : 64 -> 128 -> 256                   (3 stages, our smaller CPU profile)

The content encoder may instead be the authors' VGG-UNet (``content_model="vgg_unet"``,
drnet-py ``vgg_unet_64/128``, §2.4): VGG16-style blocks of 3x3 convolutions at *full*
resolution and below, max-pooled down to 4x4, with a mirrored decoder that upsamples (nearest)
and receives every block's output as a skip, the full-resolution one included. The pose encoder
may instead be the authors' ResNet-18 (``pose_model="resnet"``, drnet-py ``resnet_64/128``, §2.5).

Images are in [0, 1]; the decoder ends with a sigmoid. Codes have shape ``(B, dim, 1, 1)``.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from .config import ModelConfig
from .matmul_conv import SMALL_MAP_MIN_CHANNELS, SmallMapConvTranspose, WholeMapConv, WholeMapConvTranspose


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


def up_block(c_in: int, c_out: int, small_maps: bool = False) -> nn.Sequential:
    """Transposed conv 4x4 / stride 2 (doubles H and W) -> BatchNorm -> LeakyReLU(0.2).
    ``small_maps``: the same convolution as a matrix product (the 4x4 stage; matmul_conv.py)."""
    conv = SmallMapConvTranspose(c_in, c_out) if small_maps else nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


class DCGANEncoder(nn.Module):
    """Image ``(B, C, S, S)`` -> code ``(B, dim, 1, 1)`` in (-1, 1), plus the per-stage features.

    ``forward`` returns ``(code, skips)``; ``skips[i]`` is the output of stage ``i``, at ``S /
    2**(i+1)`` pixels (every stage halves the map, so the finest skip is at half the image's
    resolution), used by the U-Net decoder when the content encoder has skip connections. The pose
    encoder simply ignores them.
    """

    def __init__(self, channels: int, dim: int, image_size: int, base_width: int, code_bn_affine: bool = True):
        super().__init__()
        widths = stage_widths(image_size, base_width)
        ins = [channels] + widths[:-1]
        self.stages = nn.ModuleList(down_block(i, o) for i, o in zip(ins, widths))
        self.head = nn.Sequential(WholeMapConv(widths[-1], dim, 4, 1, 0),
                                  nn.BatchNorm2d(dim, affine=code_bn_affine), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return self.head(x), skips


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with BatchNorm, added to the input (through a
    1x1 convolution + BatchNorm when the stride or width changes, drnet-py's shortcut), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out))
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNetPoseEncoder(nn.Module):
    """The authors' ResNet-18 pose encoder (drnet-py ``resnet_64/128``, reference/drnet.md §2.5):
    image ``(B, C, S, S)`` -> code ``(B, dim, 1, 1)`` in (-1, 1).

    A 5x5 stride-2 stem (padding 3) -> BatchNorm -> ReLU -> 3x3 max-pool, then stages of two basic
    blocks: the first at the stem's width, each next one stride 2 and twice as wide, until the map
    is 3x3; a 3x3 "valid" convolution -> BatchNorm -> tanh makes the code. At 64 px the maps are
    33 -> 17 -> 17 -> 9 -> 5 -> 3 -> 1 with widths 64, 128, 256, 512 (``base_width`` 64); 128 px
    adds a stage (1024); 32 px has one fewer. ``forward`` returns ``(code, [])``, like
    :class:`DCGANEncoder` without skips.
    """

    def __init__(self, channels: int, dim: int, image_size: int, base_width: int):
        super().__init__()
        n_down = int(math.log2(image_size)) - 3           # stride-2 stages after the first: 3 at 64 px
        if 2 ** (n_down + 3) != image_size or n_down < 1:
            raise ValueError(f"the ResNet pose encoder needs image_size a power of two >= 16, got {image_size}")
        widths = [base_width * 2**i for i in range(n_down + 1)]
        self.stem = nn.Sequential(nn.Conv2d(channels, widths[0], 5, 2, 3), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages = []
        for i, width in enumerate(widths):
            c_in, stride = (widths[0], 1) if i == 0 else (widths[i - 1], 2)
            stages += [BasicBlock(c_in, width, stride), BasicBlock(width, width, 1)]
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(WholeMapConv(widths[-1], dim, 3, 1, 0), nn.BatchNorm2d(dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.head(self.stages(self.stem(x))), []


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
            WholeMapConvTranspose(content_dim + pose_dim, widths[0], 4, 1, 0),
            nn.BatchNorm2d(widths[0]), nn.LeakyReLU(0.2, inplace=True),
        )
        # stage 0 (4x4 maps) as a matrix product where it was measured faster: from 512 channels in
        # (every paper profile, KTH's cpu one); the narrower cpu profiles' stage 0 was slower that way
        self.stages = nn.ModuleList(
            up_block(w * mult, w_next, small_maps=i == 0 and w * mult >= SMALL_MAP_MIN_CHANNELS)
            for i, (w, w_next) in enumerate(zip(widths, widths[1:])))
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


# -- VGG-UNet (the authors' vgg_unet_64 / vgg_unet_128) -------------------------------------------

def vgg_layer(c_in: int, c_out: int) -> nn.Sequential:
    """Conv 3x3 / stride 1 (keeps H and W) -> BatchNorm -> LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


def vgg_blocks(image_size: int, base_width: int) -> list[tuple[int, int]]:
    """``(width, layers)`` of each VGG block, full resolution first, down to the 8x8 one.

    64 px: (64, 2) (128, 2) (256, 3) (512, 3); 128 px adds (512, 3): VGG16's blocks, one block per
    resolution from the image's down to 8x8 (a max-pool follows each, the last one gives 4x4).
    """
    widths = stage_widths(image_size, base_width)   # one width per halving: the same ladder as DCGAN
    return [(w, 2 if i < 2 else 3) for i, w in enumerate(widths)]


class VGGUNetEncoder(nn.Module):
    """Image ``(B, C, S, S)`` -> code ``(B, dim, 1, 1)`` in (-1, 1), and every block's output.

    ``skips[i]`` is block ``i``'s output at ``S / 2**i`` pixels (finest first): the first skip
    has the image's own resolution, where :class:`DCGANEncoder`'s finest is at half of it.
    """

    def __init__(self, channels: int, dim: int, image_size: int, base_width: int, code_bn_affine: bool = True):
        super().__init__()
        blocks, c_in = [], channels
        for width, layers in vgg_blocks(image_size, base_width):
            blocks.append(nn.Sequential(vgg_layer(c_in, width), *(vgg_layer(width, width) for _ in range(layers - 1))))
            c_in = width
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(WholeMapConv(c_in, dim, 4, 1, 0), nn.BatchNorm2d(dim, affine=code_bn_affine), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for block in self.blocks:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        return self.head(x), skips


class VGGUNetDecoder(nn.Module):
    """concat(content, pose) ``(B, dc + dp, 1, 1)`` + the content frame's skips -> image.

    From 4x4, each stage upsamples (nearest), concatenates the skip of that resolution and runs
    the mirror of its encoder block: ``vgg(2w, w)``, ``layers - 2`` times ``vgg(w, w)`` and
    ``vgg(w, w_next)`` down to the next block's width; at full resolution the last layer is a
    3x3 transposed conv to the image's channels and a sigmoid.
    """

    use_skips = True

    def __init__(self, channels: int, content_dim: int, pose_dim: int, image_size: int, base_width: int):
        super().__init__()
        blocks = vgg_blocks(image_size, base_width)[::-1]        # deepest first
        self.project = nn.Sequential(
            WholeMapConvTranspose(content_dim + pose_dim, blocks[0][0], 4, 1, 0),
            nn.BatchNorm2d(blocks[0][0]), nn.LeakyReLU(0.2, inplace=True),
        )
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        stages = []
        for (width, layers), (next_width, _) in zip(blocks[:-1], blocks[1:]):
            stages.append(nn.Sequential(vgg_layer(2 * width, width), *(vgg_layer(width, width) for _ in range(layers - 2)),
                                        vgg_layer(width, next_width)))
        first_width = blocks[-1][0]
        stages.append(vgg_layer(2 * first_width, first_width))
        self.stages = nn.ModuleList(stages)
        self.to_image = nn.Sequential(nn.ConvTranspose2d(first_width, channels, 3, 1, 1), nn.Sigmoid())

    def forward(self, content: torch.Tensor, pose: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        if skips is None:
            raise ValueError("the vgg_unet decoder has skip connections: pass the content encoder's skips")
        h = self.project(torch.cat([content, pose], dim=1))
        for stage, skip in zip(self.stages, skips[::-1]):
            h = stage(torch.cat([self.up(h), skip], dim=1))
        return self.to_image(h)


class SceneDiscriminator(nn.Module):
    """C: a pair of pose codes -> probability that they come from the same clip.

    ``Linear(2*pose_dim, w) -> ReLU -> Linear(w, w) -> ReLU -> Linear(w, 1) -> sigmoid``, w =
    ``model.discriminator_width`` (100 in the authors' code).
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
    ``output_tanh=False`` (``lstm.output_tanh``) drops that tanh: the predictions are the Linear
    layer's, unbounded (a diagnostic; the state dicts of the two are the same).
    """

    def __init__(self, pose_dim: int, content_dim: int, hidden: int = 256, layers: int = 2,
                 output_tanh: bool = True):
        super().__init__()
        self.embed = nn.Linear(pose_dim + content_dim, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Sequential(nn.Linear(hidden, pose_dim), nn.Tanh() if output_tanh else nn.Identity())

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
        if cfg.content_model not in ("dcgan", "dcgan_unet", "vgg_unet"):
            raise ValueError(f"content_model must be 'dcgan', 'dcgan_unet' or 'vgg_unet', got {cfg.content_model!r}")
        if cfg.pose_model not in ("dcgan", "resnet"):
            raise ValueError(f"pose_model must be 'dcgan' or 'resnet', got {cfg.pose_model!r}")
        self.cfg = cfg
        # content_bn_affine=False fixes the content code's BatchNorm scale at 1 and its shift at 0 (a diagnostic option,
        # tried in book/mnist_discussion.md; no profile sets it, so every profile keeps the authors'
        # learned scale): with the scale learned, Adam can satisfy the similarity loss by shrinking
        # it towards 0 within ~1,000 steps, long before the code has learned what stays constant.
        # (registration order fixes the order init_weights draws in: content, pose, decoder, C)
        vgg = cfg.content_model == "vgg_unet"
        self.content_encoder = (VGGUNetEncoder if vgg else DCGANEncoder)(
            cfg.channels, cfg.content_dim, cfg.image_size, cfg.base_width, code_bn_affine=cfg.content_bn_affine)
        self.pose_encoder = (ResNetPoseEncoder if cfg.pose_model == "resnet" else DCGANEncoder)(
            cfg.channels, cfg.pose_dim, cfg.image_size, cfg.base_width)
        if vgg:
            self.decoder = VGGUNetDecoder(cfg.channels, cfg.content_dim, cfg.pose_dim, cfg.image_size, cfg.base_width)
        else:
            self.decoder = Decoder(cfg.channels, cfg.content_dim, cfg.pose_dim, cfg.image_size,
                                   cfg.base_width, skips=cfg.content_model == "dcgan_unet")
        self.scene_discriminator = SceneDiscriminator(cfg.pose_dim, cfg.discriminator_width)
        self.apply(init_weights)

    def encode_content(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, C, S, S)`` -> content code ``(B, dc, 1, 1)`` and skip features (finest first)."""
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
