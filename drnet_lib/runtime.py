"""Where and how a run executes: the device, and the process-wide switches a training step sets.

None of this is DrNet: it picks the device (:func:`resolve_device`), says when the ``paper``
profile is about to run on a CPU, and holds the performance settings that change how the same
arithmetic is executed (cuDNN's TF32 and autotuner, malloc's trimming on the CPU, the convolutions'
memory order, torch.compile's mode), and :func:`cpu_threads`, which a measurement on saved
checkpoints uses to compute with the thread count its run recorded. :mod:`.train` uses them and re-exports the ones the notebooks
import from it (``resolve_device``, ``note_paper_profile_on_cpu``).
"""

from __future__ import annotations

import contextlib
import sys

import torch
from threadpoolctl import threadpool_limits

from . import cpu_memory
from .config import ExperimentConfig, TrainConfig, get_config

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")   # torch.compile's modes (train.compile_mode)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> cuda if available, else cpu; "cpu", "cuda" or "cuda:<k>" as given, if PyTorch can
    use it here. A device name PyTorch does not know, or a GPU it cannot see, raises ValueError
    naming the setting and what to use instead (rather than a traceback from deep in torch)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:<index>") from None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = ("this PyTorch was built without CUDA" if torch.version.cuda is None
                   else "PyTorch sees no CUDA GPU on this machine")
            raise ValueError(f"device {device!r} asked for, but {why} (torch {torch.__version__}): "
                             f"use device auto or cpu")
        if chosen.index is not None and chosen.index >= count:
            raise ValueError(f"device {device!r} asked for, but PyTorch sees {count} GPU(s) "
                             f"(cuda:0 to cuda:{count - 1})")
    elif chosen.type != "cpu" and not (chosen.type == "mps" and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} is not supported here: use auto, cpu or cuda")
    return chosen


def note_paper_profile_on_cpu(cfg: ExperimentConfig, device) -> None:
    """Say so (on stderr) when the ``paper`` profile, the authors' setting for a GPU, is about to
    train on a CPU, where it takes days; the run goes on (it can be stopped and resumed)."""
    if cfg.profile == "paper" and torch.device(device).type == "cpu":
        full = get_config(cfg.experiment, "paper").train.iterations
        length = (f"its {full:,} DrNet iterations take days on a CPU" if cfg.train.iterations >= full else
                  f"this run's {cfg.train.iterations:,} of its {full:,} DrNet iterations at the paper's size are "
                  f"slow on a CPU")
        print(f"note: the paper profile is the authors' setting for a GPU: {length}. The cpu profile is the "
              f"one made for a CPU. Going on; the run can be stopped and resumed.", file=sys.stderr)


def check_compile_mode(mode: str, device: torch.device) -> None:
    """Refuse an unknown ``train.compile_mode``, and CUDA graphs (``reduce-overhead``) off a GPU
    instead of letting torch.compile run without them under their name."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"train.compile_mode must be one of {list(COMPILE_MODES)}, got {mode!r}")
    if mode == "reduce-overhead" and device.type != "cuda":
        raise ValueError(f"train.compile_mode 'reduce-overhead' needs a GPU: the CUDA graphs it records "
                         f"need a GPU to run on (device here: {device}); use 'default' on {device.type}")


# What this process allowed before any trainer touched it: PyTorch's default (TF32 allowed) unless
# the reader changed it first. train.conv_tf32 = "pytorch" restores it.
_PROCESS_CUDNN_TF32 = torch.backends.cudnn.allow_tf32


def check_conv_tf32(setting) -> None:
    if setting not in ("pytorch", True, False):
        raise ValueError(f"train.conv_tf32 must be 'pytorch', true or false, got {setting!r}")


def apply_cudnn_settings(t: TrainConfig) -> None:
    """Set cuDNN's process-wide switches to this run's ``train.conv_tf32`` and
    ``train.cudnn_benchmark``. The trainer calls it before each step on a GPU, because the switches
    belong to the process, not to a trainer (the bench alternates trainers with other settings in
    one process); what runs after training (the LSTM, the measurements) keeps the last values.
    The trainer checks ``train.conv_tf32`` once, when it is built (:func:`check_conv_tf32`)."""
    torch.backends.cudnn.allow_tf32 = _PROCESS_CUDNN_TF32 if t.conv_tf32 == "pytorch" else t.conv_tf32
    torch.backends.cudnn.benchmark = bool(t.cudnn_benchmark)


def apply_process_settings(t: TrainConfig, device: torch.device) -> None:
    """The process-wide switches of ``device`` from this run's settings: cuDNN's on a GPU
    (:func:`apply_cudnn_settings`), malloc's on the CPU (``train.keep_freed_memory``,
    :mod:`.cpu_memory`). The trainer calls it before each step; the authors' timing tool once, so
    that both iterations run under the same switches."""
    if device.type == "cuda":
        apply_cudnn_settings(t)
    else:
        cpu_memory.keep_freed_memory(t.keep_freed_memory)


def uses_channels_last(setting: bool | str, device: torch.device) -> bool:
    """Whether the convolutions run in NHWC order (``train.channels_last``: ``"auto"``, true or false).

    ``"auto"`` picks NHWC on the CPU, where oneDNN's NHWC kernels made every profile's iteration
    faster on both CPUs measured (results/perf/bench_cpu*_profiles_layout.jsonl), and keeps NCHW on
    a GPU: on one H200, NHWC made the KTH paper iteration faster but the MNIST one slower, in one
    run each (results/perf/bench_cuda_h200_variants.jsonl), too little to change the default. Either
    layout computes the same sums; only the order of the float additions differs.
    """
    if setting == "auto":
        return device.type == "cpu"
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"train.channels_last must be 'auto', true or false, got {setting!r}")


@contextlib.contextmanager
def cpu_threads(threads: int):
    """Compute with ``threads`` CPU threads inside the block, torch's and numpy's BLAS alike
    (scikit-learn's classifiers fit slightly differently with another count, so a measurement
    repeats a run's scores only with the run's), then restore torch's previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)
