"""``drnet bench``: seconds per training iteration and data throughput, as JSON.

For each (experiment, profile) it times one full DrNet iteration (one scene-discriminator step
plus one encoder/decoder step, data generation included) as the median of several after warm-up,
one pose-LSTM iteration, and Moving MNIST batches per second; it counts the FLOPs of one
iteration with ``torch.utils.flop_counter`` and measures the same device's fp32 matmul rate in
the same run, so achieved/peak is a ratio measured together, not a guess. Timings are synced
(``torch.cuda.synchronize``) on GPUs.

**Options a reader turns on knowingly** (``--variants``): ``bf16`` (autocast of the encoders and
decoder, ``train.precision``), ``compile`` (``torch.compile`` of the four networks,
``train.compile``), ``bf16+compile`` and ``cuda_graphs`` (``torch.compile`` in its
``reduce-overhead`` mode, which replays each iteration's network calls as recorded CUDA graphs,
``train.compile_mode``; on a GPU only). Each variant's row carries its ``speedup_vs_fp32``
(timed in alternating blocks with a fp32 trainer, so drift of the machine's speed reaches both
alike) and a ``loss_check``: the same short training run (same seed, same
clips) in fp32 and in the variant, with the mean reconstruction loss of their last iterations,
so the effect on the loss curve is a measured number too. Compilation time is excluded from the
step time (warm-up) and reported as ``first_step_s``.

``channels_last`` and ``nchw`` (the convolutions' memory order forced to NHWC or to NCHW; by
default ``train.channels_last="auto"`` picks NHWC on the CPU and NCHW on a GPU, and every row
says which ran in ``channels_last``), and ``adam_fused`` / ``adam_for_loop`` (the other ways of
executing Adam's update; the default is foreach, ``train.adam``) change only how the same
arithmetic is laid out or scheduled (fused also rounds differently). On a GPU, ``strict_fp32``
turns off the TF32 tensor cores that PyTorch lets cuDNN's convolutions use by default
(``train.conv_tf32 = false``: the authors' fp32 arithmetic), and ``cudnn_benchmark`` lets cuDNN time
its algorithms for each shape (``train.cudnn_benchmark``); both refuse to run elsewhere.
``train.keep_freed_memory`` (:mod:`.cpu_memory`) has no variant: malloc's state is the process's,
so blocks of one setting would run on the heap the other left behind; compare two processes
(``tools/time_authors_drnet.py`` with and without ``--set train.keep_freed_memory=false``).

**The plain yardstick** (``--variants plain``): :class:`.reference_step.PlainIteration`, the same
iteration written the obvious way (graphs for every target, a ``.item()`` per loss), timed beside
the trainer from the same initial weights; its ``loss_check`` trains both for the same steps, so
the row shows what the trainer's shortcuts buy and that they change no loss.
"""

from __future__ import annotations

import copy
import json
import resource
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import PROFILES, get_config
from .predict import LSTMTrainer
from .results import DEFAULT_DATA_ROOT, host_cpu
from .reference_step import PlainIteration
from .runtime import check_compile_mode, resolve_device
from .train import DrNetTrainer


def where_it_ran(device) -> dict:
    """The fields every row carries about where it ran: ``device`` ("cpu" or the GPU's name) and
    ``host_cpu`` (on a GPU the host launches every kernel, so it bounds short iterations too)."""
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "host_cpu": host_cpu()}


def synchronize(device) -> None:
    """Wait for a GPU's queued kernels (a timing must end when they do); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn, device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _alternating_seconds(steps: dict[str, object], device, rounds: int, block: int) -> dict[str, float]:
    """Median seconds of each of several steps, timed in alternating blocks of ``block`` calls
    (A B, then B A, ... for ``rounds`` rounds), so that a drift of the machine's speed (other load,
    clocks) reaches every step alike. Timing one step after the other instead made the same two
    layouts swap places between two runs on the 2-core build machine (about 10 % either way)."""
    times = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            for _ in range(block):
                start = time.perf_counter()
                steps[name]()
                synchronize(device)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_flops_per_s(device, n: int = 2048, repeats: int = 5) -> float:
    """fp32 dense matmul rate of this device (FLOP/s), the practical peak we compare against."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / _median_seconds(lambda: a @ b, device, repeats, warmup=2)


def count_flops(fn) -> int:
    """FLOPs of one call of ``fn`` (forward and backward, as ``torch.utils.flop_counter`` counts them)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def peak_memory_mb(device) -> float:
    """On a GPU, the most memory this configuration's tensors held (the counter is reset per
    configuration). On the CPU, the process's peak resident memory so far: it includes every
    earlier row of the same run, so within one run it can only grow from row to row."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


VARIANTS = {"fp32": {}, "bf16": {"train.precision": "bf16"}, "compile": {"train.compile": True},
            "bf16+compile": {"train.precision": "bf16", "train.compile": True},
            "cuda_graphs": {"train.compile": True, "train.compile_mode": "reduce-overhead"},
            "channels_last": {"train.channels_last": True}, "nchw": {"train.channels_last": False},
            "adam_fused": {"train.adam": "fused"}, "adam_for_loop": {"train.adam": "for-loop"},
            "strict_fp32": {"train.conv_tf32": False}, "cudnn_benchmark": {"train.cudnn_benchmark": True}}
# cuDNN's switches: off a GPU these would time the default iteration under another name
CUDNN_VARIANTS = frozenset({"strict_fp32", "cudnn_benchmark"})
CHOICES = (*VARIANTS, "plain")   # plain is not a configuration: it times reference_step.PlainIteration


def _reconstruction_check(fp32: list[float], variant: list[float], last: int = 10) -> dict:
    """Mean reconstruction loss of the last ``last`` iterations of two equally long runs, and the
    variant's relative difference from fp32."""
    last = min(last, len(fp32))
    out = {"iterations": len(fp32), "fp32_reconstruction": sum(fp32[-last:]) / last,
           "variant_reconstruction": sum(variant[-last:]) / last}
    out["relative_difference"] = out["variant_reconstruction"] / out["fp32_reconstruction"] - 1
    return out


def bench_cfg(experiment: str, profile: str, overrides: dict | None = None):
    """The configuration every bench measurement uses: the clone's data/, as drnet train uses it,
    wherever the bench is started from."""
    return get_config(experiment, profile, overrides=overrides, data_root=str(DEFAULT_DATA_ROOT))


def loss_check(experiment: str, profile: str, device, overrides: dict, iterations: int = 50,
               last: int = 10) -> dict:
    """Train ``iterations`` steps from the same seed in fp32 and with ``overrides``; the mean
    reconstruction loss of the last ``last`` steps of each, and their relative difference."""
    curves = []
    for extra in ({}, overrides):
        cfg = bench_cfg(experiment, profile, {"train.iterations": iterations, "train.log_every": 1, **extra})
        trainer = DrNetTrainer(cfg, device)
        trainer.fit(progress=False)
        curves.append([r["reconstruction"] for r in trainer.history])
    return _reconstruction_check(*curves, last)


def plain_row(experiment: str, profile: str, device, reference: dict, repeats: int = 10, warmup: int = 3,
              loss_iterations: int = 50) -> dict:
    """Train :class:`.PlainIteration` beside the trainer from the same initial weights for
    ``loss_iterations`` steps (``loss_check``), then time its iteration (fp32 configuration)."""
    cfg = bench_cfg(experiment, profile)
    trainer = DrNetTrainer(cfg, device)
    plain = PlainIteration(cfg, trainer.model, trainer.bank)
    ours = [float(trainer.step()[0]) for _ in range(loss_iterations)]
    theirs = [plain.step()[0] for _ in range(loss_iterations)]
    for _ in range(warmup):
        trainer.step(), plain.step()
    seconds = _alternating_seconds({"fp32": trainer.step, "plain": plain.step}, device, *_rounds(repeats))
    step_s = seconds["plain"]
    flops, peak = reference["flops_per_step"], reference["matmul_peak_tflops"]
    return {**reference, "variant": "plain", "first_step_s": None, "peak_memory_mb": None, "train_step_s": round(step_s, 5),
            "achieved_tflops": round(flops / step_s / 1e12, 4),
            "fraction_of_matmul_peak": round(flops / step_s / (peak * 1e12), 4) if peak else None,
            "fp32_step_s": round(seconds["fp32"], 5), "speedup_vs_fp32": round(seconds["fp32"] / step_s, 3),
            "loss_check": _reconstruction_check(ours, theirs)}


def _rounds(repeats: int) -> tuple[int, int]:
    """``(rounds, block)`` for alternating timings of about ``repeats`` calls per step (at least 2
    rounds, so each step is timed both first and second)."""
    rounds = max(2, min(4, repeats // 2))
    return rounds, max(1, -(-repeats // rounds))


def bench_config(experiment: str, profile: str, device, repeats: int = 10, warmup: int = 3,
                 peak_flops: float | None = None, variant: str = "fp32") -> tuple[dict, DrNetTrainer]:
    """One row for one configuration (its own median of ``repeats`` timed steps), and its trainer."""
    cfg = bench_cfg(experiment, profile, VARIANTS[variant])
    trainer = DrNetTrainer(cfg, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    trainer.step()                      # the first step includes compilation, when compiled
    synchronize(device)
    first_step_s = time.perf_counter() - start
    step_s = _median_seconds(trainer.step, device, repeats, warmup)
    flops = count_flops(trainer.step)
    bank, g, B = trainer.bank, trainer.generator, cfg.train.batch_size
    data_s = _median_seconds(lambda: bank.sample_clips(B, g), device, repeats, warmup)
    lstm = LSTMTrainer(cfg, copy.deepcopy(trainer.model), bank)   # it freezes the networks it encodes with
    lstm_s = _median_seconds(lstm.step, device, max(3, repeats // 2), 1)
    return {
        "experiment": experiment, "profile": profile, "variant": variant, "first_step_s": round(first_step_s, 3),
        **where_it_ran(device), "threads": torch.get_num_threads(),
        "batch_size": B, "image_size": cfg.model.image_size, "content_model": cfg.model.content_model,
        "channels_last": trainer.channels_last,
        "train_step_s": round(step_s, 5),
        "lstm_step_s": round(lstm_s, 5),
        "data_batches_per_s": round(1 / data_s, 2),
        "data_clip_length": cfg.data.clip_length,
        "flops_per_step": flops,
        "achieved_tflops": round(flops / step_s / 1e12, 4),
        "matmul_peak_tflops": round(peak_flops / 1e12, 4) if peak_flops else None,
        "fraction_of_matmul_peak": round(flops / step_s / peak_flops, 4) if peak_flops else None,
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }, trainer


def _variant_rows(experiment, profile, device, repeats, peak, variants, loss_iterations):
    """One row per requested variant; fp32 is always timed first, as the reference of the others.
    A variant's ``train_step_s`` and ``speedup_vs_fp32`` come from timing it in alternating blocks
    with a fp32 trainer (``fp32_step_s``: that trainer's median in the same rounds)."""
    reference, fp32 = bench_config(experiment, profile, device, repeats=repeats, peak_flops=peak)
    if "fp32" in variants:
        yield reference
    for v in variants:
        if v == "fp32":
            continue
        if v == "plain":
            yield plain_row(experiment, profile, device, reference, repeats, loss_iterations=loss_iterations)
            continue
        row, trainer = bench_config(experiment, profile, device, repeats=repeats, peak_flops=peak, variant=v)
        seconds = _alternating_seconds({"fp32": fp32.step, v: trainer.step}, device, *_rounds(repeats))
        flops = row["flops_per_step"]
        row.update(train_step_s=round(seconds[v], 5), fp32_step_s=round(seconds["fp32"], 5),
                   speedup_vs_fp32=round(seconds["fp32"] / seconds[v], 3),
                   achieved_tflops=round(flops / seconds[v] / 1e12, 4),
                   fraction_of_matmul_peak=round(flops / seconds[v] / peak, 4) if peak else None)
        del trainer
        row["loss_check"] = loss_check(experiment, profile, device, VARIANTS[v], loss_iterations)
        yield row


def run_bench(experiments=None, profiles=None, device="auto", repeats: int = 10, as_json: bool = True,
              stream=None, variants=("fp32",), loss_iterations: int = 50) -> list[dict]:
    unknown = sorted(set(variants) - set(CHOICES))
    if unknown:
        raise ValueError(f"unknown bench variant(s) {unknown}; choose from {sorted(CHOICES)}")
    stream = stream or sys.stdout          # looked up now: callers (and tests) may redirect it
    device = resolve_device(device)
    for v in variants:   # refuse a variant this device cannot run before timing anything
        check_compile_mode(VARIANTS.get(v, {}).get("train.compile_mode", "default"), device)
        if v in CUDNN_VARIANTS and device.type != "cuda":
            raise ValueError(f"bench variant {v!r} changes only cuDNN's convolutions, which run on a GPU: on "
                             f"{device.type} it would time the default iteration again; use --device cuda")
    experiments = experiments or sorted(PROFILES)
    rows = []
    peak = matmul_flops_per_s(device)
    for e in experiments:
        for p in profiles or ("paper", "cpu"):
            for row in _variant_rows(e, p, device, repeats, peak, variants, loss_iterations):
                rows.append(row)
                if as_json:
                    print(json.dumps(row), file=stream, flush=True)
                else:
                    print(text_row(row), file=stream, flush=True)
    return rows


def text_row(row: dict) -> str:
    """One bench row as a line of labelled figures (``drnet bench --no-json``), e.g.
    ``mnist smoke fp32 (cpu): DrNet 11.3 ms/iteration, LSTM 4.1 ms/iteration, data 513 batches/s,
    0.016 TFLOP/s = 8.6% of this machine's fp32 matmul rate, peak memory 210 MB``; a variant
    adds its speed against the default (fp32) iteration and its loss check."""
    parts = [f"DrNet {row['train_step_s'] * 1000:.1f} ms/iteration"]
    if row.get("lstm_step_s") is not None:
        parts.append(f"pose LSTM {row['lstm_step_s'] * 1000:.1f} ms/iteration")
    parts.append(f"data generation {row['data_batches_per_s']:.0f} batches/s")
    parts.append(f"{row['achieved_tflops']:.3f} TFLOP/s = {row['fraction_of_matmul_peak']:.1%} of this machine's "
                 f"fp32 matrix-product rate")
    if row.get("peak_memory_mb") is not None:
        parts.append(f"peak memory {row['peak_memory_mb']:.0f} MB")
    if row.get("speedup_vs_fp32") is not None:
        parts.append(f"{row['speedup_vs_fp32']:.2f}x the speed of the default fp32 iteration")
    check = row.get("loss_check")
    if check:
        parts.append(f"reconstruction loss after {check['iterations']} iterations "
                     f"{check['relative_difference']:+.1%} against fp32")
    return f"{row['experiment']} {row['profile']} {row['variant']} ({row['device']}): " + ", ".join(parts)


def scaling_rows(experiment: str, profile: str, device="auto", batch_sizes=(16, 32, 64),
                 image_sizes=(64, 128), repeats: int = 5) -> list[dict]:
    """Seconds per DrNet iteration for each (batch size, image size) of one configuration, with
    the time per clip, so how the step scales is read off one table measured in one run."""
    device = resolve_device(device)
    rows = []
    for size in image_sizes:
        for batch in batch_sizes:
            cfg = bench_cfg(experiment, profile, {"train.batch_size": batch, "model.image_size": size})
            trainer = DrNetTrainer(cfg, device)
            step_s = _median_seconds(trainer.step, device, repeats, warmup=2)
            rows.append({"kind": "scaling", "experiment": experiment, "profile": profile,
                         **where_it_ran(device), "threads": torch.get_num_threads(), "image_size": size, "batch_size": batch,
                         "train_step_s": round(step_s, 5), "ms_per_clip": round(1000 * step_s / batch, 3)})
    return rows


def profile_breakdown(experiment: str, profile: str, device="auto", steps: int = 5, top: int = 12) -> dict:
    """Where one DrNet iteration's time goes: ``torch.profiler`` over ``steps`` iterations (after
    two warm-up ones), the ``top`` operators by self time, each with its share of the total."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    device = resolve_device(device)
    trainer = DrNetTrainer(bench_cfg(experiment, profile), device)
    for _ in range(2):
        trainer.step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.step()
        synchronize(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr, 0) > 0]
    total = sum(getattr(e, attr) for e in events)
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    return {"kind": "profile", "experiment": experiment, "profile": profile,
            **where_it_ran(device), "threads": torch.get_num_threads(), "steps": steps,
            "time_per_step_ms": round(total / steps / 1000, 3),
            "top_ops": [{"op": e.key, "share": round(getattr(e, attr) / total, 4), "calls_per_step": e.count / steps}
                        for e in events[:top]]}
