"""Which convolutions are slow: every convolution of one DrNet iteration, timed on its own.

``drnet bench --layers`` answers a question the operator breakdown cannot: the profiler says that
nearly all of a CPU iteration is convolution, but not which convolutions run far below the
machine's matrix-multiply rate. Here one iteration is run with a hook on every ``Conv2d`` and
``ConvTranspose2d`` that records the shape it was called with, its memory layout, and whether the
call builds a graph (its backward then runs too) or not (targets and the discriminator step's
pose codes, encoded under ``no_grad``). Each layer is then timed alone on random input of the same
shape and layout: the forward (median of ``repeats``), and forward + backward minus the forward;
its FLOPs are counted by ``torch.utils.flop_counter``. So each layer gets its achieved rate beside
the matmul rate measured in the same run, and the row states what the whole iteration would take
if every convolution ran at that rate (``step_s_if_convs_at_matmul_peak``): the bound that a
better convolution library could reach, with everything else unchanged.

A layer timed alone is not the layer inside the iteration (caches hold other data there), so the
row also carries the iteration's own median (``train_step_s``) to set the sum beside.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .bench import _median_seconds, bench_cfg, count_flops, matmul_flops_per_s, where_it_ran
from .runtime import resolve_device
from .train import DrNetTrainer

CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)


@dataclass
class ConvCall:
    """How one convolution module was called during one iteration."""
    name: str                      # e.g. "decoder.up.1.0"
    module: nn.Module
    input_shape: tuple[int, ...]   # (N, C, H, W)
    channels_last: bool
    needs_input_grad: bool         # False for a network's first layer (frames need no gradient)
    calls_forward_only: int = 0
    calls_with_backward: int = 0


def record_conv_calls(trainer: DrNetTrainer) -> list[ConvCall]:
    """Run one iteration of ``trainer`` with a hook on every convolution; the calls, by module."""
    calls: dict[str, ConvCall] = {}

    def hook_for(name):
        def hook(module, args):
            x = args[0]
            builds_graph = torch.is_grad_enabled() and (x.requires_grad or module.weight.requires_grad)
            if name not in calls:
                calls[name] = ConvCall(name, module, tuple(x.shape),
                                       x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(),
                                       x.requires_grad)
            call = calls[name]
            if tuple(x.shape) != call.input_shape:
                raise RuntimeError(f"{name} was called with two shapes, {call.input_shape} and {tuple(x.shape)}")
            call.needs_input_grad |= builds_graph and x.requires_grad
            if builds_graph:
                call.calls_with_backward += 1
            else:
                call.calls_forward_only += 1
        return hook

    handles = [m.register_forward_pre_hook(hook_for(n)) for n, m in trainer.model.named_modules()
               if isinstance(m, CONVOLUTIONS)]
    try:
        trainer.step()
    finally:
        for h in handles:
            h.remove()
    return list(calls.values())


def time_conv_call(call: ConvCall, device, repeats: int = 5) -> dict:
    """One layer alone: forward and backward milliseconds, FLOPs and achieved GFLOP/s.

    The module is copied, so timing it moves no weight or gradient of the trainer's model."""
    module = copy.deepcopy(call.module).to(device)
    layout = torch.channels_last if call.channels_last else torch.contiguous_format
    x = torch.randn(call.input_shape, device=device).contiguous(memory_format=layout)
    with torch.no_grad():
        forward_s = _median_seconds(lambda: module(x), device, repeats, warmup=2)
        forward_flops = count_flops(lambda: module(x))
    row = {"name": call.name, "type": type(call.module).__name__, "input_shape": list(call.input_shape),
           "weight_shape": list(call.module.weight.shape),
           "calls_forward_only": call.calls_forward_only, "calls_with_backward": call.calls_with_backward,
           "forward_ms": round(1000 * forward_s, 3), "forward_flops": forward_flops,
           "forward_gflops_per_s": round(forward_flops / forward_s / 1e9, 1)}
    backward_s, backward_flops = 0.0, 0
    if call.calls_with_backward:
        x_grad = x.clone().requires_grad_(call.needs_input_grad)
        grad_out = torch.randn_like(module(x_grad))

        def forward_backward():
            module(x_grad).backward(grad_out)
            module.zero_grad(set_to_none=True)   # as the trainer's optimizers do: no accumulation

        backward_s = max(_median_seconds(forward_backward, device, repeats, warmup=2) - forward_s, 1e-9)
        backward_flops = count_flops(forward_backward) - forward_flops
        row.update(backward_ms=round(1000 * backward_s, 3), backward_flops=backward_flops,
                   backward_gflops_per_s=round(backward_flops / backward_s / 1e9, 1))
    calls = call.calls_forward_only + call.calls_with_backward
    row["ms_per_step"] = round(1000 * (calls * forward_s + call.calls_with_backward * backward_s), 3)
    row["flops_per_step"] = calls * forward_flops + call.calls_with_backward * backward_flops
    return row


def layer_breakdown(experiment: str, profile: str, device="auto", repeats: int = 5) -> dict:
    """One row: every convolution of one iteration of (experiment, profile) timed alone (``layers``,
    slowest per step first), the iteration's own median, the matmul rate, and what the iteration
    would take with every convolution at that rate."""
    device = resolve_device(device)
    trainer = DrNetTrainer(bench_cfg(experiment, profile), device)
    for _ in range(2):
        trainer.step()
    step_s = _median_seconds(trainer.step, device, repeats, warmup=0)
    calls = record_conv_calls(trainer)
    peak = matmul_flops_per_s(device)
    layers = sorted((time_conv_call(c, device, repeats) for c in calls), key=lambda r: -r["ms_per_step"])
    for r in layers:
        r["fraction_of_matmul_peak"] = round(r["flops_per_step"] / (r["ms_per_step"] / 1000) / peak, 3)
    conv_s = sum(r["ms_per_step"] for r in layers) / 1000
    conv_flops = sum(r["flops_per_step"] for r in layers)
    return {"kind": "layers", "experiment": experiment, "profile": profile, **where_it_ran(device),
            "threads": torch.get_num_threads(), "channels_last": trainer.channels_last,
            "train_step_s": round(step_s, 5), "matmul_peak_tflops": round(peak / 1e12, 4),
            "conv_s_per_step": round(conv_s, 5), "conv_flops_per_step": conv_flops,
            "conv_fraction_of_matmul_peak": round(conv_flops / conv_s / peak, 4),
            "step_s_if_convs_at_matmul_peak": round(max(step_s - conv_s, 0.0) + conv_flops / peak, 5),
            "layers": layers}
