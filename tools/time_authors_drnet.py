"""Time the authors' own DrNet training iteration (edenton/drnet-py) beside ours, on this CPU or GPU.

    git clone https://github.com/edenton/drnet-py /somewhere/drnet-py
    .venv/bin/python tools/time_authors_drnet.py /somewhere/drnet-py > authors.jsonl
    python tools/time_authors_drnet.py /somewhere/drnet-py --device cuda    # their code as written, on a GPU

This is the side-by-side that issue 7's goal asks for (our iteration at most 0.7x the authors' time
on the same CPU, MNIST configuration: dcgan_unet content 128, dcgan pose 10, 64 px, 3 channels,
batch 100, one discriminator step and one main step). Their code is not part of this repository
and is never edited; this script only runs it.

How their iteration is timed. ``train_drnet.py`` is a script that builds the networks, optimisers
and data loader at import and then trains for ``--niter`` epochs. We run it as ``__main__`` with
``--niter 0``, so it builds everything and trains nothing, and then call their own loop body,
``next(training_batch_generator)`` + ``train_scene_discriminator(x)`` + ``train(x)``, with the
defaults of their HEAD (the configuration above). To run it on a CPU with no GPU and no network,
a few things are replaced from outside, none of which changes what their iteration computes:

* on the CPU only: ``.cuda()`` on modules and tensors returns the object itself and
  ``torch.cuda.FloatTensor`` is the CPU ``FloatTensor`` type (their code calls both inside the
  loop); with ``--device cuda`` their ``.cuda()`` calls run as written;
* ``torchvision`` (it does not install beside the CPU torch used here) is a small stand-in whose
  ``MNIST`` serves our embedded digits at 32 px, so their ``MovingMNIST`` generator runs as written
  in their data-loader worker processes (``--data-threads``, their default 5);
* ``utils.load_dataset`` / ``utils.normalize_data`` are replaced by equivalents for Moving MNIST
  (their generator, and the (B,T,H,W,C) -> T x (B,C,H,W) transpose), because the versions of
  ``utils.py`` differ between commits (an old one lacks ``init_weights``: ours, the same N(0, 0.02)
  initialisation, stands in); modules that only their plotting needs (``scipy.misc``,
  ``progressbar``) are stubbed when missing.

Ours is :class:`drnet_lib.train.DrNetTrainer` on the ``paper`` MNIST configuration (the same
networks, batch and image size), timed in the same process in alternating blocks of iterations
(theirs, ours, theirs, ...), so the ratio is measured under the same conditions. On a GPU each
timed iteration ends with ``torch.cuda.synchronize()`` (both sides), and both run under the same
process-wide cuDNN switches (on the CPU, the same malloc switches: ``train.keep_freed_memory``, both
sides), cuDNN's being PyTorch's defaults (TF32 convolutions on recent GPUs) unless our side's
``--set train.conv_tf32=false`` (both strict fp32) or ``train.cudnn_benchmark=true`` changes them;
the row records ``cudnn_allow_tf32``. Output: one JSON line with both medians and ``ours_over_authors``
(below 1: ours is faster), and ``authors_batch_wait_s``, the median time their iteration waited for
its batch from their loader's workers (part of their iteration; ours makes its batch on the
training device inside its step).

How much faster the same arithmetic could be on this machine. The row also carries the FLOPs of
one iteration of each (``torch.utils.flop_counter`` around their loop body and around ours) and
this CPU's fp32 matmul rate measured in the same run (:func:`drnet_lib.bench.matmul_flops_per_s`),
so each side's share of that rate is a ratio, and ``goal_fraction_of_matmul_peak`` is the share an
iteration at 0.7x the authors' time would need: above 1, no fp32 implementation of this
arithmetic reaches the goal on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import runpy
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
GOAL = 0.7   # issue 7: our iteration at most 0.7x the authors' time at the same arithmetic
sys.path.insert(0, str(REPO))

from drnet_lib.bench import count_flops, matmul_flops_per_s, synchronize, where_it_ran  # noqa: E402
from drnet_lib.cli import RepeatableList, parse_set  # noqa: E402
from drnet_lib.config import get_config  # noqa: E402
from drnet_lib.data.mnist import load_digits  # noqa: E402
from drnet_lib.data.moving_mnist import MovingMNIST  # noqa: E402
from drnet_lib.models import init_weights  # noqa: E402
from drnet_lib.runtime import apply_process_settings  # noqa: E402
from drnet_lib.train import DrNetTrainer  # noqa: E402


class _DigitsAt32px(torch.utils.data.Dataset):
    """Stands in for ``torchvision.datasets.MNIST(root, train, download, transform)`` with the
    transform their MovingMNIST asks for (32 px, tensor in [0, 1]): item -> ``((1, 32, 32), label)``."""

    def __init__(self, root=None, train=True, download=False, transform=None):
        cfg = get_config("mnist", "paper")   # digit_size 32: our loader resizes them as drnet-py does
        images, self.labels = load_digits("embedded", "train" if train else "test")
        self.digits = MovingMNIST(images, self.labels, cfg.data, cfg.model).digits.unsqueeze(1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.digits[index], int(self.labels[index])


def _stub_modules() -> None:
    """Modules their imports need that this environment lacks (torchvision always, the rest only
    if missing); only the names their code touches."""
    transforms = types.SimpleNamespace(Compose=lambda steps: None, Scale=lambda size: None,
                                       Resize=lambda size: None, ToTensor=lambda: None)
    datasets = types.SimpleNamespace(MNIST=_DigitsAt32px)
    torchvision = types.ModuleType("torchvision")
    torchvision.datasets, torchvision.transforms = datasets, transforms
    sys.modules.update({"torchvision": torchvision, "torchvision.datasets": datasets,
                        "torchvision.transforms": transforms})
    for name in ("scipy.misc", "progressbar"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)


def _run_on_cpu() -> None:
    """Their ``.cuda()`` calls and ``torch.cuda.FloatTensor`` buffers, on the CPU."""
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.cuda.FloatTensor = torch.FloatTensor


def _moving_mnist_loaders() -> None:
    """Their Moving MNIST generator behind ``utils.load_dataset`` and the transpose of
    ``utils.normalize_data``, whatever version of ``utils.py`` the checkout has."""
    import utils  # theirs: the checkout is first on sys.path
    from data.moving_mnist import MovingMNIST as TheirMovingMNIST  # theirs, not ours

    def load_dataset(opt):
        make = lambda train: TheirMovingMNIST(train=train, data_root=opt.data_root, seq_len=opt.max_step,
                                         num_digits=2, image_size=opt.image_width)
        return make(True), make(False)

    def normalize_data(opt, dtype, sequence):  # (B, T, H, W, C) -> T tensors (B, C, H, W)
        return list(sequence.permute(1, 0, 4, 2, 3).type(dtype).unbind(0))

    utils.load_dataset, utils.normalize_data = load_dataset, normalize_data
    if not hasattr(utils, "init_weights"):  # older utils.py: the same N(0, 0.02) initialisation, ours
        utils.init_weights = init_weights


def _checkout_commit(checkout: Path) -> str | None:
    """The clone's commit; None when the folder is not the top of its own git repository (files copied
    into a folder inside another repository would otherwise report that repository's commit)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != checkout.resolve():
            return None
        return git("rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a clone of https://github.com/edenton/drnet-py")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where both iterations run (cuda: their .cuda() calls as written); default %(default)s")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up round); default %(default)s")
    parser.add_argument("--block", type=int, default=4, help="iterations of theirs, then of ours, per round; default %(default)s")
    parser.add_argument("--data-threads", type=int, default=5, help="their data-loader workers (their default: 5)")
    parser.add_argument("--set", nargs="*", action=RepeatableList, default=[], metavar="KEY=VALUE",
                        help="settings of our side, as for drnet train (e.g. train.channels_last=false)")
    parser.add_argument("--source", help="how the checkout was obtained, recorded when it is not a git clone")
    parser.add_argument("--log-dir", default="/tmp/drnet_py_logs", help="where their script makes its log folders")
    args = parser.parse_args(argv)
    script = args.checkout / "train_drnet.py"
    if not script.exists():
        parser.error(f"{script} does not exist: pass the folder of a clone of https://github.com/edenton/drnet-py")

    sys.path.insert(0, str(args.checkout))
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this PyTorch sees no CUDA device")
    _stub_modules()
    if args.device == "cpu":
        _run_on_cpu()
    sys.argv = [str(script), "--niter", "0", "--data_threads", str(args.data_threads), "--log_dir", args.log_dir]
    try:
        _moving_mnist_loaders()
        with contextlib.redirect_stdout(sys.stderr):   # their script prints its options: keep stdout JSON only
            theirs = runpy.run_path(str(script), run_name="__main__")   # builds everything, trains 0 epochs
    except ImportError as err:   # a partial copy: their script imports utils.py, models/, data/
        parser.error(f"{script} could not import {err.name or err} ({err}): pass a whole clone of "
                     f"https://github.com/edenton/drnet-py")
    batches = theirs["training_batch_generator"]

    batch_waits = []   # how long each of their iterations waited for its batch (their loader's workers)

    def their_iteration():
        start = time.perf_counter()
        x = next(batches)
        batch_waits.append(time.perf_counter() - start)
        theirs["train_scene_discriminator"](x)
        theirs["train"](x)

    cfg = get_config("mnist", "paper", overrides=parse_set(args.set))
    ours = DrNetTrainer(cfg, args.device)
    device = torch.device(args.device)
    # cuDNN's switches on a GPU (train.conv_tf32, train.cudnn_benchmark) and malloc's on the CPU
    # (train.keep_freed_memory) belong to the process, and our trainer sets them before each of its
    # steps; set them now too, so that their iteration runs under the same ones from the first timed
    # block (e.g. --set train.conv_tf32=false: both strict fp32; train.keep_freed_memory=false: both
    # under glibc's static defaults), and the ratio measures the iterations, not the switches.
    apply_process_settings(cfg.train, device)
    # Blocks of --block iterations, theirs then ours, for --rounds rounds after one warm-up round.
    # Not one iteration each in turn: their data-loader workers refill their queue in the background
    # after each of their iterations, and on a small CPU that work would land in our timings.
    times = {"authors": [], "ours": []}
    for round_ in range(args.rounds + 1):
        for name, step in (("authors", their_iteration), ("ours", ours.step)):
            for _ in range(args.block):
                start = time.perf_counter()
                step()
                synchronize(device)   # a GPU iteration counts until its kernels finish
                if round_ > 0:
                    times[name].append(time.perf_counter() - start)
    authors_s, ours_s = statistics.median(times["authors"]), statistics.median(times["ours"])
    authors_wait_s = statistics.median(batch_waits[args.block:])   # the timed rounds' (the first block warmed up)
    authors_flops, ours_flops = count_flops(their_iteration), count_flops(ours.step)
    peak = matmul_flops_per_s(device)
    opt = theirs["opt"]
    row = {"kind": "authors", "experiment": "mnist", "profile": "paper", **where_it_ran(device),
           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if device.type == "cuda" else None,
           "keep_freed_memory": cfg.train.keep_freed_memory if device.type == "cpu" else None,
           "threads": torch.get_num_threads(), "batch_size": cfg.train.batch_size, "image_size": cfg.model.image_size,
           "authors_config": {k: getattr(opt, k) for k in ("batch_size", "image_width", "channels", "content_model",
                                                           "pose_model", "content_dim", "pose_dim", "max_step")},
           "authors_commit": _checkout_commit(args.checkout), "authors_source": args.source, "authors_data_threads": args.data_threads,
           "authors_step_s": round(authors_s, 5), "ours_step_s": round(ours_s, 5),
           "authors_batch_wait_s": round(authors_wait_s, 5),
           "train_step_s": round(ours_s, 5), "ours_over_authors": round(ours_s / authors_s, 3),
           "authors_flops_per_step": authors_flops, "flops_per_step": ours_flops,
           "matmul_peak_tflops": round(peak / 1e12, 4),
           "authors_fraction_of_matmul_peak": round(authors_flops / authors_s / peak, 4),
           "fraction_of_matmul_peak": round(ours_flops / ours_s / peak, 4),
           "goal_fraction_of_matmul_peak": round(authors_flops / (GOAL * authors_s) / peak, 4),
           "ours_overrides": parse_set(args.set), "ours_channels_last": ours.channels_last,
           "repeats": len(times["ours"]), "block": args.block,
           "torch": torch.__version__}
    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
