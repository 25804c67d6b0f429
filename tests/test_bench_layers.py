"""drnet bench --layers: every convolution of one iteration, called as the iteration calls it."""

import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from drnet_lib import cli
from drnet_lib.bench_layers import record_conv_calls, time_conv_call
from drnet_lib.config import get_config
from drnet_lib.train import DrNetTrainer


def _calls(experiment="mnist"):
    trainer = DrNetTrainer(get_config(experiment, "smoke"), "cpu")
    return trainer, {c.name: c for c in record_conv_calls(trainer)}


def test_calls_follow_the_iteration():
    """Pose encoder: the discriminator step's two codes and the main step's partner code are encoded
    without a graph, one code with it; content encoder: the target without, the content with;
    decoder: once, with. A network's first layer needs no input gradient (frames are data)."""
    trainer, calls = _calls()
    by_net = {}
    for c in calls.values():
        by_net.setdefault(c.name.split(".")[0], set()).add((c.calls_forward_only, c.calls_with_backward))
    assert by_net == {"pose_encoder": {(3, 1)}, "content_encoder": {(1, 1)}, "decoder": {(0, 1)}}
    first = {n: next(c for c in calls.values() if c.name.startswith(n)) for n in ("pose_encoder", "content_encoder")}
    assert not any(c.needs_input_grad for c in first.values())
    assert all(c.needs_input_grad for c in calls.values() if c.name.startswith("decoder"))
    # inner layers see the trainer's layout (frames come in as data, in NCHW; a 1x1 map has no layout)
    assert all(c.channels_last == trainer.channels_last for c in calls.values() if c.needs_input_grad and c.input_shape[-1] > 1)


def test_layer_flops_add_up_to_the_iterations_flops():
    """Per layer: forward FLOPs once per call, backward FLOPs once per graph-building call. Their sum
    must be all the FLOPs the counter sees in a whole iteration but the scene discriminator's few
    (its three small linear layers: well under 0.1 % of the smoke iteration)."""
    trainer, calls = _calls()
    rows = [time_conv_call(c, torch.device("cpu"), repeats=1) for c in calls.values()]
    with FlopCounterMode(display=False) as counter:
        trainer.step()                        # the next iteration: same shapes, same calls
    share = sum(r["flops_per_step"] for r in rows) / counter.get_total_flops()
    assert 0.999 < share <= 1
    assert all(r["forward_ms"] > 0 and r["ms_per_step"] >= r["forward_ms"] for r in rows)
    assert all(("backward_ms" in r) == (r["calls_with_backward"] > 0) for r in rows)


def test_timing_a_layer_moves_no_weight_of_the_model():
    trainer, calls = _calls()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in trainer.model.parameters()]
    for c in calls.values():
        time_conv_call(c, torch.device("cpu"), repeats=1)
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad) for g, p in zip(grads, trainer.model.parameters()))


def test_cli_layers_row(capsys):
    assert cli.main(["bench", "--experiments", "mnist", "--profiles", "smoke", "--device", "cpu", "--layers"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert row["kind"] == "layers" and row["train_step_s"] > 0
    per_step = [r["ms_per_step"] for r in row["layers"]]
    assert per_step == sorted(per_step, reverse=True)
    assert abs(sum(per_step) / 1000 - row["conv_s_per_step"]) < 1e-3
    assert 0 < row["step_s_if_convs_at_matmul_peak"]
    # the smoke decoder is too narrow for SmallMapConvTranspose (models.Decoder)
    assert {"Conv2d", "ConvTranspose2d", "WholeMapConv", "WholeMapConvTranspose"} == {r["type"] for r in row["layers"]}
