"""DrNet under DistributedDataParallel: 2 CPU processes (gloo) against 1 process, same global batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from drnet_lib import distributed
from drnet_lib.config import get_config
from drnet_lib.results import provenance
from drnet_lib.train import DrNetTrainer, make_train_bank

OVERRIDES = {"train.batch_size": 32, "train.iterations": 8, "train.log_every": 1}


def _config():
    return get_config("mnist", "smoke", overrides=OVERRIDES)


class _NoBatchNorm(torch.nn.Identity):
    """Stands in for ``nn.BatchNorm2d``: without batch statistics, whose per-rank values are the one
    thing that separates 2 processes from 1, the two must compute the same numbers."""

    def __init__(self, channels, affine=True, **kwargs):
        super().__init__()
        self.affine = False


def _without_batch_norm():
    torch.nn.BatchNorm2d = _NoBatchNorm   # models.py looks nn.BatchNorm2d up when it builds a model


def _worker(rank: int, world: int, store: str, out: str, no_batch_norm: bool = False) -> None:
    torch.set_num_threads(1)
    if no_batch_norm:
        _without_batch_norm()
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        cfg = _config()
        trainer = DrNetTrainer(cfg, "cpu", bank=make_train_bank(cfg, "cpu"))
        shown = trainer.bank.render(*_first_batch(trainer))
        trainer.fit(progress=False)
        torch.save({"history": trainer.history, "state": trainer.model.state_dict(), "frames": shown,
                    "provenance": provenance("cpu", trainer.wall_s)}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _first_batch(trainer):
    """The clips this rank renders at the first step (for the no-duplicates check)."""
    g = torch.Generator().manual_seed(trainer.cfg.seed)
    factors = trainer.bank.sample_factors(trainer.cfg.train.batch_size, g, trainer.cfg.data.clip_length)
    return factors.subset(trainer.share), torch.tensor([0])


def test_shares_partition_the_global_batch():
    shares = [distributed.my_share(12, r, 3) for r in range(3)]
    assert [list(range(12))[s] for s in shares] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    with pytest.raises(ValueError, match="divisible"):
        distributed.my_share(10, 0, 3)
    # the discriminator's cross-clip pairs need two clips in the batch's second half, BatchNorm two frames a call
    with pytest.raises(ValueError, match="train.batch_size must be at least 3"):
        distributed.my_share(2, 0, 1)
    with pytest.raises(ValueError, match="leaves 1 clip per process"):
        distributed.my_share(4, 0, 4)


def test_two_processes_follow_the_single_process_trajectory(tmp_path):
    out = str(tmp_path / "rank")
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), out), nprocs=2, join=True)
    ranks = [torch.load(f"{out}.{r}", weights_only=False) for r in range(2)]

    cfg = _config()
    single = DrNetTrainer(cfg, "cpu", bank=make_train_bank(cfg, "cpu"))
    single.fit(progress=False)
    whole_batch = single.bank.render(*_first_batch(single))

    # the two ranks trained on the two halves of the single process's batch: no clip twice
    assert torch.equal(torch.cat([r["frames"] for r in ranks]), whole_batch)
    # DDP keeps the ranks' weights identical (gradients averaged), and they did train
    for name, value in ranks[0]["state"].items():
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(value, ranks[1]["state"][name]), name
    # the same trajectory as one process, up to BatchNorm's per-rank batch statistics
    # (the similarity loss compares BatchNorm-normalised codes: most sensitive, checked on average)
    series = lambda history, key: torch.tensor([row[key] for row in history])
    for key, rtol in (("reconstruction", 0.01), ("discriminator_bce", 0.001)):
        ours, theirs = series(ranks[0]["history"], key), series(single.history, key)
        assert torch.allclose(ours, theirs, rtol=rtol), (key, ours, theirs)
    ours, theirs = series(ranks[0]["history"], "similarity"), series(single.history, "similarity")
    assert abs(ours.mean() / theirs.mean() - 1) < 0.1, (ours, theirs)
    assert ranks[0]["history"] == ranks[1]["history"]                  # logged values are averaged
    assert ranks[0]["provenance"]["processes"] == 2                     # a recorded run says how it ran
    moved = [not torch.equal(a, b) for a, b in zip(ranks[0]["state"].values(), single.model.state_dict().values())]
    assert any(moved)                                                    # not a copy of one process


def test_without_batch_norm_two_processes_compute_what_one_does(tmp_path, monkeypatch):
    """With BatchNorm's per-rank statistics out of the way, 2 processes on halves of the global
    batch must give one process's losses and weights up to float summation order. This is what
    catches a wrong split: ranks drawing their own batches, or the discriminator pairing clips
    within a rank, drift apart by tens of percent within a few iterations, well inside the
    tolerances the test above needs for BatchNorm."""
    out = str(tmp_path / "rank")
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), out, True), nprocs=2, join=True)
    ddp = torch.load(f"{out}.0", weights_only=False)

    monkeypatch.setattr(torch.nn, "BatchNorm2d", _NoBatchNorm)
    torch.set_num_threads(1)
    cfg = _config()
    single = DrNetTrainer(cfg, "cpu", bank=make_train_bank(cfg, "cpu"))
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in single.model.modules())
    single.fit(progress=False)
    for key in ddp["history"][0]:
        ours = torch.tensor([row[key] for row in ddp["history"]])
        theirs = torch.tensor([row[key] for row in single.history])
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-7), (key, ours, theirs)
    # each network's weights as a whole (Adam's normalised steps let a near-zero weight differ in
    # its last digits; a wrong split moves whole networks by tens of percent)
    theirs = single.model.state_dict()
    for net in ("content_encoder", "pose_encoder", "decoder", "scene_discriminator"):
        names = [n for n in theirs if n.startswith(net + ".")]
        diff = torch.cat([(ddp["state"][n] - theirs[n]).flatten() for n in names])
        size = torch.cat([theirs[n].flatten() for n in names])
        assert diff.norm() < 1e-4 * size.norm(), (net, float(diff.norm() / size.norm()))


@pytest.mark.skipif(os.environ.get("WORLD_SIZE") not in (None, "1"), reason="already under torchrun")
def test_a_single_process_never_initialises_torch_distributed():
    assert distributed.init_from_env(torch.device("cpu")) == (0, 1)
    assert not dist.is_initialized()


def test_under_torchrun_a_gpu_index_is_refused_before_any_process_group(monkeypatch):
    # every process takes the GPU of its LOCAL_RANK; cuda:1 would put them all on one GPU
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="'cuda:1' under torchrun: each process takes the GPU of its LOCAL_RANK"):
        distributed.init_from_env(torch.device("cuda:1"))
    assert not dist.is_initialized()
