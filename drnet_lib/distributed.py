"""DrNet on several processes (``torchrun``): DistributedDataParallel with one global batch.

How a DrNet iteration is shared out (see :class:`.train.DrNetTrainer`):

* **Data.** Every rank seeds its generator with the run's seed and draws the *global* batch's
  clips and frame times (indices only, cheap); each rank then renders and trains on its own
  contiguous slice (:func:`my_share`). No two ranks see the same clip, and the union of the
  slices is exactly the batch a single process with the same seed would draw.
* **Scene discriminator.** Its pairs are defined on the global batch (the first half same-clip
  pairs, the second half a derangement of the second half), so each rank gathers every rank's
  detached partner pose codes (:func:`gather`) and picks its partners by global index.
* **Gradients.** The four networks are wrapped in ``DistributedDataParallel`` (gradients
  averaged over ranks = the gradient of the global-batch mean loss, since every rank has the same
  number of clips). In the main step the discriminator is used frozen, through the unwrapped
  module, so DDP never waits for gradients that are not computed.
* **BatchNorm** uses each rank's own batch statistics (as DDP does by default; SyncBatchNorm
  needs a GPU), the one thing that separates N processes from one: with BatchNorm taken out,
  2 processes give one process's losses and weights up to float summation order (the test does
  that). With it, the curves agree closely over the first steps and then drift apart as any two
  runs whose arithmetic differs do. Running statistics are not synchronised; rank 0's are saved.
* **Logging and checkpoints.** Logged values are averaged over ranks; only rank 0 writes
  checkpoints, results and progress bars.

Run it with ``torchrun --nproc_per_node=N -m drnet_lib.cli train ...`` (gloo for ``--device
cpu``, NCCL on GPUs, each process on the GPU of its ``LOCAL_RANK``). The results record the number
of processes (``provenance.processes``). A single process (no ``torchrun``) never touches
``torch.distributed``.
"""

from __future__ import annotations

import inspect
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


# BatchNorm buffers stay per rank (not synchronised at every forward); newer PyTorch renamed the
# switch (and still syncs once at construction, harmless here: every rank starts from one seed).
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
                   else {"broadcast_buffers": False})


def init_from_env(device: torch.device) -> tuple[int, int]:
    """Join the process group ``torchrun`` describes in the environment; ``(rank, world size)``.

    Without ``torchrun`` (no ``WORLD_SIZE`` or 1) nothing is initialised and ``(0, 1)`` returned.
    The backend follows the training ``device`` (NCCL for a GPU, gloo otherwise): a CPU run on a
    GPU machine must not hand CPU tensors to NCCL. On GPUs each process takes the GPU of its
    ``LOCAL_RANK``, so a GPU index (``cuda:1``) is refused.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        on_gpu = device.type == "cuda"
        if on_gpu:
            if device.index is not None:
                raise ValueError(f"device {str(device)!r} under torchrun: each process takes the GPU of its "
                                 f"LOCAL_RANK; use device cuda (or auto)")
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if on_gpu else "gloo")
    return dist.get_rank(), dist.get_world_size()


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (``(0, 1)`` when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def my_share(global_batch: int, rank: int, world: int) -> slice:
    """The contiguous slice of a global batch that ``rank`` trains on."""
    if global_batch < 3:
        # the scene discriminator pairs each clip of the batch's second half with another clip of
        # that half (two clips at least), and BatchNorm needs more than one frame per call
        raise ValueError(f"train.batch_size must be at least 3 (the scene discriminator's cross-clip pairs "
                         f"need two clips in the second half of the batch), got {global_batch}")
    if global_batch % world:
        raise ValueError(f"train.batch_size ({global_batch}) must be divisible by the number of "
                         f"processes ({world}); each trains on an equal share of the global batch")
    size = global_batch // world
    if size < 2:
        raise ValueError(f"train.batch_size ({global_batch}) over {world} processes leaves {size} clip per "
                         "process; BatchNorm needs at least 2 frames per call")
    return slice(rank * size, (rank + 1) * size)


def wrap(nets: dict[str, nn.Module], device: torch.device, world: int) -> dict[str, nn.Module]:
    """The networks to call in a training step: DDP wrappers when ``world > 1``, else themselves."""
    if world <= 1:
        return dict(nets)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return {name: DistributedDataParallel(net, device_ids=ids, **_NO_BUFFER_SYNC)
            for name, net in nets.items()}


def gather(x: torch.Tensor, world: int) -> torch.Tensor:
    """Every rank's ``x`` concatenated in rank order along dim 0 (``x`` itself when ``world == 1``)."""
    if world <= 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def mean_over_ranks(x: torch.Tensor, world: int) -> torch.Tensor:
    """The mean of ``x`` over ranks (``x`` itself when ``world == 1``)."""
    if world <= 1:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / world
