"""DrNet networks against the authors' architectures (reference/drnet.md §2)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from drnet_lib.config import ModelConfig, get_config
from drnet_lib.models import (DCGANEncoder, Decoder, DrNet, PoseLSTM, SceneDiscriminator, SmallMapConvTranspose,
                              WholeMapConv, WholeMapConvTranspose, init_weights, stage_widths)

# The authors' encoder stage widths for nf = 64 (drnet.md §2.1, §2.2); 32 px is our CPU variant.
AUTHOR_WIDTHS = {32: [64, 128, 256], 64: [64, 128, 256, 512], 128: [64, 128, 256, 512, 512]}


def _convs(module, kind=nn.Conv2d):
    return [m for m in module.modules() if isinstance(m, kind)]


# -- whole-map convolutions (the codes' layers, as matrix products) ------------------------------

def _same_sums(ours, reference, x, layout):
    """Outputs and every gradient of ``ours`` (a matmul_conv layer) against ``reference`` (the
    functional convolution on the same weights), in fp64 so that only a wrong sum can differ."""
    ours = ours.double().to(memory_format=layout)
    x = x.double().contiguous(memory_format=layout).requires_grad_(True)
    got = ours(x)
    want = reference(x, ours.weight, ours.bias)
    assert got.shape == want.shape and torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    grad_out = torch.randn_like(want)
    grads_got = torch.autograd.grad(got, (x, ours.weight, ours.bias), grad_out)
    grads_want = torch.autograd.grad(want, (x, ours.weight, ours.bias), grad_out)
    assert all(torch.allclose(a, b, rtol=1e-12, atol=1e-12) for a, b in zip(grads_got, grads_want))
    return got


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("kernel", [4, 3])      # the DCGAN/VGG heads' 4x4, the ResNet head's 3x3
def test_whole_map_conv_computes_the_convolution(layout, kernel):
    torch.manual_seed(0)
    _same_sums(WholeMapConv(6, 5, kernel, 1, 0), nn.functional.conv2d, torch.randn(3, 6, kernel, kernel), layout)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_whole_map_conv_transpose_computes_the_transposed_convolution(layout):
    torch.manual_seed(0)
    out = _same_sums(WholeMapConvTranspose(7, 5, 4, 1, 0), nn.functional.conv_transpose2d,
                     torch.randn(3, 7, 1, 1), layout)
    assert out.is_contiguous(memory_format=layout)   # the next stage gets the layout it runs in


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("size", [1, 4, 5])     # a single pixel (every tap but four off the map), the 4x4 stage, odd
def test_small_map_conv_transpose_computes_the_transposed_convolution(layout, size):
    torch.manual_seed(0)
    reference = lambda x, w, b: nn.functional.conv_transpose2d(x, w, b, stride=2, padding=1)
    out = _same_sums(SmallMapConvTranspose(6, 5), reference, torch.randn(3, 6, size, size), layout)
    assert out.is_contiguous(memory_format=layout)


def test_decoder_uses_the_matrix_product_form_on_its_wide_4x4_stage_only():
    wide = Decoder(3, 16, 4, 64, 64, skips=True)            # the MNIST paper decoder: 1024 channels in at 4x4
    kinds = [type(stage[0]) for stage in wide.stages]
    assert kinds == [SmallMapConvTranspose] + [nn.ConvTranspose2d] * (len(kinds) - 1)
    assert type(wide.to_image[0]) is nn.ConvTranspose2d
    narrow = Decoder(3, 16, 4, 32, 32, skips=True)          # the MNIST cpu decoder: 256 channels in
    assert all(type(stage[0]) is nn.ConvTranspose2d for stage in narrow.stages)


def test_whole_map_layers_keep_the_convolutions_parameters_and_refuse_other_maps():
    conv, ours = nn.Conv2d(6, 5, 4, 1, 0), WholeMapConv(6, 5, 4, 1, 0)
    ours.load_state_dict(conv.state_dict())     # checkpoints written before these layers still load
    with pytest.raises(ValueError, match="expects"):
        ours(torch.randn(2, 6, 8, 8))
    with pytest.raises(ValueError, match="1x1 code"):
        WholeMapConvTranspose(7, 5, 4, 1, 0)(torch.randn(2, 7, 2, 2))


# -- encoders ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64, 128])
def test_encoder_stage_widths_match_the_authors(size):
    enc = DCGANEncoder(channels=3, dim=10, image_size=size, base_width=64)
    convs = _convs(enc)
    stage_convs, head = convs[:-1], convs[-1]
    assert [c.out_channels for c in stage_convs] == AUTHOR_WIDTHS[size]
    assert [c.in_channels for c in stage_convs] == [3] + AUTHOR_WIDTHS[size][:-1]
    for c in stage_convs:  # dcgan_conv: 4x4, stride 2, pad 1
        assert (c.kernel_size, c.stride, c.padding) == ((4, 4), (2, 2), (1, 1))
    # head: Conv(last, d, 4, 1, 0) -> BN -> Tanh
    assert (head.in_channels, head.out_channels) == (AUTHOR_WIDTHS[size][-1], 10)
    assert (head.kernel_size, head.stride, head.padding) == ((4, 4), (1, 1), (0, 0))
    assert isinstance(enc.head[1], nn.BatchNorm2d) and isinstance(enc.head[2], nn.Tanh)
    assert stage_widths(size, 64) == AUTHOR_WIDTHS[size]


@pytest.mark.parametrize("size", [32, 64, 128])
def test_encoder_code_shape_range_and_skips(size):
    torch.manual_seed(0)
    enc = DCGANEncoder(channels=3, dim=7, image_size=size, base_width=4)
    x = torch.rand(5, 3, size, size)
    code, skips = enc(x)
    assert code.shape == (5, 7, 1, 1)
    assert code.abs().max() < 1  # tanh: open interval
    widths = stage_widths(size, 4)
    assert [tuple(s.shape) for s in skips] == [(5, w, size // 2 ** (i + 1), size // 2 ** (i + 1))
                                               for i, w in enumerate(widths)]


@pytest.mark.parametrize("size", [4, 48, 100])
def test_stage_widths_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="power of two"):
        stage_widths(size, 8)


# -- decoders ---------------------------------------------------------------------------------

@pytest.mark.parametrize("content_model", ["dcgan", "dcgan_unet", "vgg_unet"])
@pytest.mark.parametrize("size", [32, 64])
def test_decoder_output_shape_and_range(content_model, size):
    torch.manual_seed(1)
    cfg = ModelConfig(image_size=size, channels=3, content_model=content_model, content_dim=6,
                      pose_dim=3, base_width=4, discriminator_width=8)
    m = DrNet(cfg)
    x = torch.rand(4, 3, size, size)
    content, skips = m.encode_content(x)
    pose = m.encode_pose(x)
    out = m.decode(content, skips, pose)
    assert out.shape == (4, 3, size, size)
    assert out.min() >= 0 and out.max() <= 1
    assert isinstance(m.decoder.to_image[-1], nn.Sigmoid)
    assert m.decoder.use_skips == (content_model != "dcgan")


@pytest.mark.parametrize("content_model", ["dcgan_unet", "vgg_unet"])
def test_unet_decoder_uses_the_content_skips(content_model):
    """With skips, the decoded image depends on the content frame's skip features: every one of
    them, the full-resolution one too (the last thing the vgg_unet decoder concatenates)."""
    torch.manual_seed(2)
    cfg = ModelConfig(image_size=32, content_model=content_model, content_dim=6, pose_dim=3, base_width=4)
    m = DrNet(cfg)   # training mode: BatchNorm scales every feature to unit size (at init, in eval
    x = torch.rand(4, 3, 32, 32)   # mode, the deepest skips are ~1e-7 and vanish in float32)
    content, skips = m.encode_content(x)
    pose = m.encode_pose(x)
    a = m.decode(content, skips, pose)
    for i in range(len(skips)):
        zeroed = [s * 0 if j == i else s for j, s in enumerate(skips)]
        assert not torch.equal(a, m.decode(content, zeroed, pose)), f"skip {i} is ignored"
    if content_model == "vgg_unet":
        assert skips[0].shape[-1] == 32        # full resolution


def _vgg_convs(module) -> list[tuple[int, int]]:
    return [(c.in_channels, c.out_channels) for c in module.modules()
            if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3)]


@pytest.mark.parametrize("size,encoder,decoder", [
    (64,   # drnet.md §2.4, drnet-py vgg_unet_64.py
     [(1, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
      (256, 512), (512, 512), (512, 512)],
     [(1024, 512), (512, 512), (512, 256), (512, 256), (256, 256), (256, 128), (256, 128), (128, 64),
      (128, 64)]),
    (128,  # drnet.md §2.4, drnet-py vgg_unet_128.py
     [(1, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
      (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)],
     [(1024, 512), (512, 512), (512, 512), (1024, 512), (512, 512), (512, 256), (512, 256), (256, 256),
      (256, 128), (256, 128), (128, 64), (128, 64)]),
])
def test_vgg_unet_layers_match_the_authors(size, encoder, decoder):
    m = DrNet(ModelConfig(image_size=size, channels=1, content_model="vgg_unet", content_dim=128, pose_dim=10))
    assert _vgg_convs(m.content_encoder) == encoder
    assert _vgg_convs(m.decoder) == decoder
    head = m.content_encoder.head[0]
    assert (head.in_channels, head.out_channels, head.kernel_size) == (512, 128, (4, 4))
    assert (m.decoder.project[0].in_channels, m.decoder.project[0].out_channels) == (138, 512)
    final = m.decoder.to_image[0]
    assert isinstance(final, nn.ConvTranspose2d) and final.kernel_size == (3, 3) and final.out_channels == 1
    x = torch.rand(2, 1, size, size)
    content, skips = m.encode_content(x)
    assert content.shape == (2, 128, 1, 1)
    assert [s.shape[-1] for s in skips] == [size >> i for i in range(len(skips))]
    assert m.decode(content, skips, m.encode_pose(x)).shape == (2, 1, size, size)


@pytest.mark.parametrize("size,maps,widths", [
    (64, [33, 17, 17, 9, 5, 3, 1], [64, 128, 256, 512]),             # drnet.md §2.5, resnet_64
    (128, [65, 33, 33, 17, 9, 5, 3, 1], [64, 128, 256, 512, 1024]),  # drnet.md §2.5, resnet_128
])
def test_resnet_pose_encoder_matches_the_authors(size, maps, widths):
    m = DrNet(ModelConfig(image_size=size, channels=1, pose_model="resnet", pose_dim=10))
    enc = m.pose_encoder
    stem = enc.stem[0]
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding) == (1, 64, (5, 5), (2, 2), (3, 3))
    x = torch.rand(3, 1, size, size)
    seen = [enc.stem[:3](x).shape[-1], enc.stem(x).shape[-1]]
    h = enc.stem(x)
    for i in range(0, len(enc.stages), 2):                     # two basic blocks per stage
        h = enc.stages[i + 1](enc.stages[i](h))
        seen.append(h.shape[-1])
    code = enc.head(h)
    seen.append(code.shape[-1])
    assert seen == maps
    assert [enc.stages[i].body[0].out_channels for i in range(0, len(enc.stages), 2)] == widths
    # the first block of every later stage halves the map and takes the 1x1 shortcut (option B)
    assert all(isinstance(enc.stages[i].shortcut[0], nn.Conv2d) for i in range(2, len(enc.stages), 2))
    assert isinstance(enc.stages[0].shortcut, nn.Identity)
    assert enc.head[0].kernel_size == (3, 3) and enc.head[0].out_channels == 10
    pose = m.encode_pose(x)
    assert pose.shape == (3, 10, 1, 1) and pose.abs().max() < 1
    content, skips = m.encode_content(x)
    assert m.decode(content, skips, pose).shape == (3, 1, size, size)


@pytest.mark.parametrize("size,ins,outs", [
    (64, [1024, 512, 256], [256, 128, 64]),            # drnet.md §2.3, 64 px
    (128, [1024, 1024, 512, 256], [512, 256, 128, 64]),  # drnet.md §2.3, 128 px
])
def test_unet_decoder_stage_widths_are_doubled(size, ins, outs):
    dec = Decoder(channels=3, content_dim=128, pose_dim=10, image_size=size, base_width=64, skips=True)
    assert dec.project[0].in_channels == 138 and dec.project[0].out_channels == 512
    ups = [s[0] for s in dec.stages]
    assert [u.in_channels for u in ups] == ins
    assert [u.out_channels for u in ups] == outs
    final = dec.to_image[0]
    assert (final.in_channels, final.out_channels) == (128, 3)
    assert (final.kernel_size, final.stride, final.padding) == ((4, 4), (2, 2), (1, 1))


@pytest.mark.parametrize("size,ins,outs", [
    (64, [512, 256, 128], [256, 128, 64]),             # drnet.md §2.1
    (128, [512, 512, 256, 128], [512, 256, 128, 64]),  # drnet.md §2.2
])
def test_plain_decoder_stage_widths(size, ins, outs):
    dec = Decoder(channels=3, content_dim=128, pose_dim=10, image_size=size, base_width=64, skips=False)
    ups = [s[0] for s in dec.stages]
    assert [u.in_channels for u in ups] == ins
    assert [u.out_channels for u in ups] == outs
    assert (dec.to_image[0].in_channels, dec.to_image[0].out_channels) == (64, 3)


def test_unet_decoder_without_skips_raises_a_clear_error():
    dec = Decoder(channels=3, content_dim=6, pose_dim=3, image_size=32, base_width=4, skips=True)
    with pytest.raises(ValueError, match="skip"):
        dec(torch.rand(2, 6, 1, 1), torch.rand(2, 3, 1, 1))


# -- scene discriminator ----------------------------------------------------------------------

def test_scene_discriminator_layers_and_output():
    torch.manual_seed(3)
    c = SceneDiscriminator(pose_dim=10, width=100)
    linears = _convs(c, nn.Linear)
    assert [(l.in_features, l.out_features) for l in linears] == [(20, 100), (100, 100), (100, 1)]
    assert isinstance(c.net[-1], nn.Sigmoid)
    a, b = torch.randn(6, 10, 1, 1) * 5, torch.randn(6, 10, 1, 1) * 5
    p = c(a, b)
    assert p.shape == (6,)
    assert ((p > 0) & (p < 1)).all()
    # the pair is ordered: (a, b) is the concatenation [a, b]
    assert torch.equal(p, c.net(torch.cat([a.flatten(1), b.flatten(1)], 1)).squeeze(1))


def test_drnet_discriminator_width_comes_from_config():
    m = DrNet(ModelConfig(image_size=32, base_width=4, content_dim=6, pose_dim=5, discriminator_width=17))
    assert [l.out_features for l in _convs(m.scene_discriminator, nn.Linear)] == [17, 17, 1]
    assert m.scene_discriminator.net[0].in_features == 10


# -- initialisation ---------------------------------------------------------------------------

def test_init_matches_the_authors():
    """Conv/Linear ~ N(0, 0.02) with zero bias; BatchNorm gamma ~ N(1, 0.02), beta 0 (drnet.md §2.8)."""
    torch.manual_seed(4)
    m = DrNet(ModelConfig())  # paper size: 64 px, nf 64, dcgan_unet
    checked_w, checked_bn = 0, 0
    for name, mod in m.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if mod.bias is not None:
                assert torch.count_nonzero(mod.bias) == 0, name
            w = mod.weight.detach()
            if w.numel() >= 50_000:  # statistics of large layers only
                assert abs(w.std().item() - 0.02) < 0.0005, (name, w.std().item())
                assert abs(w.mean().item()) < 0.0005, (name, w.mean().item())
                checked_w += 1
        elif isinstance(mod, nn.BatchNorm2d):
            assert torch.count_nonzero(mod.bias) == 0, name
            if mod.weight.numel() >= 256:
                assert abs(mod.weight.mean().item() - 1) < 0.005, name
                assert 0.015 < mod.weight.std().item() < 0.025, name
                checked_bn += 1
    assert checked_w >= 10 and checked_bn >= 6


def test_init_weights_ignores_other_modules():
    lstm = nn.LSTM(4, 4)
    before = [p.clone() for p in lstm.parameters()]
    init_weights(lstm)
    assert all(torch.equal(a, b) for a, b in zip(before, lstm.parameters()))


# -- pose LSTM --------------------------------------------------------------------------------

def test_pose_lstm_shapes_range_and_state():
    torch.manual_seed(5)
    lstm = PoseLSTM(pose_dim=5, content_dim=16, hidden=32, layers=2)
    poses, content = torch.randn(3, 7, 5) * 3, torch.randn(3, 16) * 3
    out, (h, c) = lstm(poses, content)
    assert out.shape == (3, 7, 5)
    assert out.abs().max() < 1
    assert h.shape == (2, 3, 32) and c.shape == (2, 3, 32)
    # Stepping one frame at a time with the carried state gives the same predictions (rollout relies on it).
    state, steps = None, []
    for t in range(7):
        o, state = lstm(poses[:, t:t + 1], content, state)
        steps.append(o)
    assert torch.allclose(torch.cat(steps, 1), out, atol=1e-6)


def test_pose_lstm_input_is_pose_then_content():
    lstm = PoseLSTM(pose_dim=5, content_dim=16, hidden=8, layers=1)
    assert lstm.embed.in_features == 21
    with torch.no_grad():
        lstm.embed.weight.zero_()
        lstm.embed.weight[:, :5] = 1  # only the pose part matters now
    poses = torch.randn(2, 3, 5)
    a, _ = lstm(poses, torch.randn(2, 16))
    b, _ = lstm(poses, torch.randn(2, 16))
    assert torch.equal(a, b)


def test_without_the_output_tanh_the_lstm_predicts_what_its_linear_layer_gives():
    torch.manual_seed(6)
    bounded = PoseLSTM(pose_dim=5, content_dim=16, hidden=8, layers=1)
    linear = PoseLSTM(pose_dim=5, content_dim=16, hidden=8, layers=1, output_tanh=False)
    linear.load_state_dict(bounded.state_dict())            # the same weights: checkpoints load either way
    with torch.no_grad():
        linear.out[0].bias.fill_(3.0)
        bounded.out[0].bias.fill_(3.0)
    poses, content = torch.randn(2, 4, 5), torch.randn(2, 16)
    unbounded, _ = linear(poses, content)
    torch.testing.assert_close(bounded(poses, content)[0], torch.tanh(unbounded))
    assert unbounded.max() > 1                              # beyond the pose encoder's range


def test_the_lstm_trainer_builds_its_lstm_with_the_configured_output():
    from drnet_lib.config import get_config
    from drnet_lib.models import DrNet
    from drnet_lib.predict import LSTMTrainer
    from drnet_lib.train import make_bank

    cfg = get_config("mnist", "smoke", overrides={"lstm.output_tanh": False})
    trainer = LSTMTrainer(cfg, DrNet(cfg.model), make_bank(cfg, "train", "cpu"), progress=False)
    assert isinstance(trainer.lstm.out[1], torch.nn.Identity)
    assert cfg.fingerprint("lstm") != get_config("mnist", "smoke").fingerprint("lstm")   # another LSTM's checkpoint


# -- configuration errors ---------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("content_model", "vgg"), ("content_model", "resnet"),
                                         ("pose_model", "vgg")])
def test_unknown_models_raise(field, value):
    cfg = dataclasses.replace(ModelConfig(image_size=32, base_width=4), **{field: value})
    with pytest.raises(ValueError, match=value):
        DrNet(cfg)


def test_content_code_without_learned_batchnorm_scale():
    """content_bn_affine=False: the content code's BatchNorm has no scale to shrink."""
    cfg = get_config("mnist", "smoke", overrides={"model.content_bn_affine": False})
    model = DrNet(cfg.model)
    bn = model.content_encoder.head[1]
    assert not bn.affine and bn.weight is None
    assert model.pose_encoder.head[1].affine  # only the content code is affected
    model.train()
    code, _ = model.encode_content(torch.rand(8, cfg.model.channels, 32, 32))
    pre_tanh = torch.atanh(code.clamp(-0.999999, 0.999999)).flatten(1)
    assert torch.allclose(pre_tanh.var(0, unbiased=False), torch.ones(cfg.model.content_dim), atol=0.05)
