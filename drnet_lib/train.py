"""DrNet training: one scene-discriminator step, then one joint encoder/decoder step, per batch.

Each iteration draws one batch of clips and renders only the frames it uses (per clip):

    column 0  x_c   content frame (frame 0 of the clip)
    column 1  x_c'  similarity target (content code of another frame, no gradient)
    column 2  x_p   reconstruction target; its pose code gets the adversarial gradient
    column 3  x_p'  partner pose for the adversarial term (same clip, no gradient)
    column 4  x_d   second frame of the discriminator's pair (first one is column 0)

``pair_sampling="random"`` draws columns 1-4 independently and uniformly from frames
``1 .. clip_length-1`` (the paper's random offsets, as the Lua code and early drnet-py do);
``"fixed"`` uses frames 0, 1, 2, 3 and a discriminator pair (0, 1), as drnet-py HEAD does.

Training resumes from the last checkpoint with no lost work: the checkpoint holds the networks,
the four optimisers, the data generator's RNG state and the loss history, so on the CPU an
interrupted run and an uninterrupted one end with identical weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.optim.swa_utils import update_bn

from . import distributed, losses
from .config import ExperimentConfig
from .data.moving_mnist import MovingMNIST
from .data.mnist import load_digits
from .data.norb import load_norb
from .data.chairs import load_chairs
from .data.kth import KTHClips, load_kth
from .data.sweeps import SweepVideos, chair_sweeps, norb_sweeps
from .loop import ResumableLoop, make_adam
from .models import DrNet
from .predict import check_bn_mode
from .results import run_name
from .runtime import apply_process_settings, check_compile_mode, check_conv_tf32, resolve_device, uses_channels_last
from .runtime import note_paper_profile_on_cpu  # noqa: F401 - the notebooks import it from here

# The clip sources DrNet trains on: Moving MNIST draws its clips; NORB, the chairs and KTH sample them
# from stored frames. All three answer sample_factors, render and sample_clips the same way.
ClipSource = MovingMNIST | SweepVideos | KTHClips
LR_SCHEDULES = ("constant", "cosine")                           # train.lr_schedule
LOSS_NAMES = ("reconstruction", "similarity", "pose_adversarial", "discriminator_bce", "discriminator_accuracy")


def make_bank(cfg: ExperimentConfig, split: str, device, progress: bool = False) -> ClipSource:
    """The clip source of ``split`` ("train" or "test") for the configured experiment and data:
    Moving MNIST over that split's digits, turntable sweeps of that split's NORB toys or chairs,
    or the annotated action ranges of that split's KTH persons. ``progress``: the loaders' bars (downloading,
    generating, converting: minutes on first use for KTH or the chairs; loading a cache: a moment)."""
    if cfg.experiment == "kth":
        return load_kth(cfg.data.source, split, cfg.data.root, size=cfg.data.standin_size,
                        image_size=cfg.model.image_size, scheme=cfg.data.split_scheme,
                        clip_length=cfg.data.clip_length, device=device, progress=progress)
    if cfg.experiment == "suncg":
        tree = load_chairs(cfg.data.source, cfg.data.root, size=cfg.data.standin_size, progress=progress)
        return chair_sweeps(tree, split, cfg.model.image_size, device)
    if cfg.experiment == "norb":
        norb_split = load_norb(cfg.data.source, split, cfg.data.root, size=cfg.data.standin_size,
                               progress=progress)  # files are made once, by norb.prepare
        return norb_sweeps(norb_split, cfg.model.image_size, device)
    images, labels = load_digits(cfg.data.source, split, cfg.data.root)
    return MovingMNIST(images, labels, cfg.data, cfg.model, device)


def make_train_bank(cfg: ExperimentConfig, device, progress: bool = False) -> ClipSource:
    return make_bank(cfg, "train", device, progress)


def make_test_bank(cfg: ExperimentConfig, device, progress: bool = False) -> ClipSource:
    return make_bank(cfg, "test", device, progress)


PAIR_SAMPLING = ("random", "fixed")


def check_pair_sampling(mode: str) -> None:
    if mode not in PAIR_SAMPLING:
        raise ValueError(f"train.pair_sampling must be 'random' or 'fixed', got {mode!r}")


def sample_frame_times(batch: int, clip_length: int, mode: str, generator: torch.Generator,
                       device) -> torch.Tensor:
    """``(B, 5)`` frame indices for the columns described in the module docstring."""
    check_pair_sampling(mode)
    if mode == "random":
        times = torch.randint(1, clip_length, (batch, 5), generator=generator, device=device)
        times[:, 0] = 0
        return times
    return torch.tensor([0, 1, 2, 3, 1], device=device).expand(batch, 5)


def check_bn_refresh_batches(batches, allow_zero: bool = True) -> None:
    """``lstm.bn_refresh_batches`` must be a whole number of batches (0: no refresh, where allowed)."""
    if not isinstance(batches, int) or isinstance(batches, bool) or batches < (0 if allow_zero else 1):
        least = "0 (no refresh) or more" if allow_zero else "at least 1"
        raise ValueError(f"lstm.bn_refresh_batches must be a whole number of batches, {least}; got {batches!r}")


class DrNetTrainer(ResumableLoop):
    """Owns the networks, optimisers, data generator and history of one DrNet run."""

    name = "DrNet"
    log_names = LOSS_NAMES
    checkpoint_sections = ("experiment", "seed", "model", "data", "train")   # not lstm, eval: they do not train it
    length_setting = "train.iterations"

    def __init__(self, cfg: ExperimentConfig, device="auto", bank: ClipSource | None = None):
        self.cfg = cfg
        self.device = resolve_device(device)
        torch.manual_seed(cfg.seed)  # weight init
        self.model = DrNet(cfg.model).to(self.device)
        self.channels_last = uses_channels_last(cfg.train.channels_last, self.device)
        if self.channels_last:  # weights in NHWC: each convolution then runs on NHWC activations
            self.model.to(memory_format=torch.channels_last)
        self.bank = bank if bank is not None else make_train_bank(cfg, self.device)
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed)
        t = cfg.train
        adam = lambda params: make_adam(params, t.lr, t.beta1, t.adam)
        m = self.model
        self.optimizers = {
            "content_encoder": adam(m.content_encoder.parameters()),
            "pose_encoder": adam(m.pose_encoder.parameters()),
            "decoder": adam(m.decoder.parameters()),
            "scene_discriminator": adam(m.scene_discriminator.parameters()),
        }
        self.modules = {"drnet": self.model}
        # Under torchrun each rank trains on its share of the global batch (see distributed.py);
        # a single process has rank 0 of 1 and calls the networks themselves.
        self.rank, self.world = distributed.rank_and_world()
        self.share = distributed.my_share(t.batch_size, self.rank, self.world)
        self.nets = distributed.wrap({name: getattr(m, name) for name in self.optimizers}, self.device, self.world)
        if t.precision not in ("fp32", "bf16"):
            raise ValueError(f"train.precision must be 'fp32' or 'bf16', got {t.precision!r}")
        check_pair_sampling(t.pair_sampling)   # here, not at the first batch: before a --no-resume run starts over
        check_compile_mode(t.compile_mode, self.device)
        check_conv_tf32(t.conv_tf32)
        if t.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"train.lr_schedule must be one of {LR_SCHEDULES}, got {t.lr_schedule!r}")
        if not isinstance(t.keep_freed_memory, bool):
            raise ValueError(f"train.keep_freed_memory must be true or false, got {t.keep_freed_memory!r}")
        if t.compile:
            self.nets = {name: torch.compile(net, mode=t.compile_mode) for name, net in self.nets.items()}
        # CUDA graphs replay every network call into memory they own and, left alone, guess that a call
        # made with no backward pending starts a new iteration, freeing the last one's outputs: the
        # discriminator step's two no-grad pose calls would then overwrite each other. Marking where each
        # iteration starts (torch.compiler.cudagraph_mark_step_begin) replaces that guess.
        self.marks_cuda_graph_steps = t.compile and t.compile_mode == "reduce-overhead"
        self.iterations, self.log_every, self.checkpoint_every = t.iterations, t.log_every, t.checkpoint_every
        self.iteration, self.wall_s, self.history = 0, 0.0, []

    @classmethod
    def length_shapes_steps(cls, cfg: ExperimentConfig) -> bool:
        """A step size that falls to zero at ``train.iterations`` depends on it; the authors' constant one does not."""
        return cfg.train.lr_schedule != "constant"

    # -- one iteration -------------------------------------------------------------------------
    def _pose(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets["pose_encoder"](x)[0]

    def _autocast(self):
        """bf16 autocast around the encoders and decoder when ``train.precision == "bf16"``;
        the discriminator and every loss always run in fp32 (their inputs are cast back)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.precision == "bf16")

    def discriminator_step(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Train C on detached pose codes of frames (0, d): over the global batch, the first half
        are same-clip pairs, the second half pair each clip with another clip of the second half
        (a derangement). Returns this rank's BCE and accuracy (tensors)."""
        b = frames.shape[0]
        B = b * self.world
        with torch.no_grad(), self._autocast():
            pose_a = self._pose(frames[:, 0]).float()
            pose_b = distributed.gather(self._pose(frames[:, 4]).float(), self.world)  # (B, ...) all ranks'
        half = B // 2
        partner = torch.cat([torch.arange(half, device=self.device),
                             half + losses.derangement(B - half, self.generator, self.device)])
        is_same = (torch.arange(B, device=self.device) < half).float()[self.share]
        prob = self.nets["scene_discriminator"](pose_a, pose_b[partner[self.share]])
        bce = losses.discriminator_loss(prob, is_same)
        opt = self.optimizers["scene_discriminator"]
        opt.zero_grad(set_to_none=True)
        bce.backward()
        opt.step()
        accuracy = ((prob.detach() > 0.5).float() == is_same).float().mean()
        return bce.detach(), accuracy

    def main_step(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One joint step of E_c, E_p and D on rec + alpha*sim + beta*adv; C is held fixed."""
        m, t, nets = self.model, self.cfg.train, self.nets
        # Encoded in the authors' order (x_c, x_c', x_p, x_p'): in training mode every call also
        # moves BatchNorm's running statistics, so the order shows in the stored statistics.
        with self._autocast():
            content, skips = nets["content_encoder"](frames[:, 0])
            with torch.no_grad():  # targets: no graph is built for them (same values as .detach())
                content_target = nets["content_encoder"](frames[:, 1])[0]
            pose = self._pose(frames[:, 2])
            with torch.no_grad():
                pose_partner = self._pose(frames[:, 3])
            decoded = nets["decoder"](content, pose, skips if m.decoder.use_skips else None)
        # (in fp32 each .float() returns the tensor itself)
        content, content_target, pose, pose_partner = (x.float() for x in (content, content_target, pose, pose_partner))
        rec = losses.reconstruction_loss(decoded.float(), frames[:, 2])
        sim = losses.similarity_loss(content, content_target)
        loss = rec + t.similarity_weight * sim
        # C is used frozen here, unwrapped: it is not trained by this term (and DDP must not
        # wait for gradients of it)
        if t.adversarial_weight > 0:
            m.scene_discriminator.requires_grad_(False)
            adv = losses.pose_adversarial_loss(m.scene_discriminator(pose, pose_partner))
            m.scene_discriminator.requires_grad_(True)
            loss = loss + t.adversarial_weight * adv
        else:  # beta = 0: the ablation without the adversarial loss; still log C's view
            with torch.no_grad():
                adv = losses.pose_adversarial_loss(m.scene_discriminator(pose, pose_partner))
        names = ("content_encoder", "pose_encoder", "decoder")
        for n in names:
            self.optimizers[n].zero_grad(set_to_none=True)
        loss.backward()
        for n in names:
            self.optimizers[n].step()
        return rec.detach(), sim.detach(), adv.detach()

    def step(self) -> torch.Tensor:
        """One iteration; returns the 5 logged quantities as one device tensor (no host sync)."""
        apply_process_settings(self.cfg.train, self.device)
        if self.marks_cuda_graph_steps:
            torch.compiler.cudagraph_mark_step_begin()
        self.set_learning_rate()
        factors, times = self.sample_batch(self.generator)             # the global batch's clips
        frames = self.bank.render(factors.subset(self.share), times[self.share])  # (b, 5, C, H, W), b = B / ranks
        self.model.train()
        d_bce, d_acc = self.discriminator_step(frames)                 # C first, as the authors do
        rec, sim, adv = self.main_step(frames)
        return distributed.mean_over_ranks(torch.stack([rec, sim, adv, d_bce, d_acc]), self.world)

    def learning_rate(self, iteration: int) -> float:
        """Adam's step size for 0-based ``iteration``: ``train.lr`` throughout (the authors'), or with
        ``train.lr_schedule = "cosine"`` a half cosine from ``train.lr`` down towards 0 at ``train.iterations``.
        A function of the iteration alone, so a resumed run continues the schedule exactly."""
        t = self.cfg.train
        if t.lr_schedule == "constant":
            return t.lr
        return t.lr * 0.5 * (1 + math.cos(math.pi * iteration / t.iterations))

    def set_learning_rate(self) -> None:
        """All four optimisers at :meth:`learning_rate` of the iteration about to run."""
        lr = self.learning_rate(self.iteration)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr

    def sample_batch(self, generator: torch.Generator):
        """One global batch: ``train.batch_size`` clips (the bank's factors) and the 5 frame times
        of each, ``(B, 5)``, as ``train.pair_sampling`` picks them."""
        B, T = self.cfg.train.batch_size, self.cfg.data.clip_length
        factors = self.bank.sample_factors(B, generator, T)
        return factors, sample_frame_times(B, T, self.cfg.train.pair_sampling, generator, self.device)

    # -- after training ------------------------------------------------------------------------
    def training_batches(self, batches: int):
        """``batches`` frame batches ``(B, 5, C, H, W)`` drawn as :meth:`step` draws them, from their
        own generator seeded with the run's seed (the training generator, which a resume needs, is untouched)."""
        generator = torch.Generator(self.device).manual_seed(self.cfg.seed)
        for _ in range(batches):
            yield self.bank.render(*self.sample_batch(generator))

    def refresh_bn_statistics(self, batches: int, model: DrNet | None = None) -> None:
        """Replace every BatchNorm's running mean and variance by their plain average over
        ``batches`` training batches at the current weights (torch.optim.swa_utils.update_bn).
        ``model``: another DrNet to refresh on this trainer's batches, e.g. a frozen copy of its
        model (default: the trainer's own).

        Why: in eval mode BatchNorm normalises with running averages that training updated with
        momentum 0.1, i.e. mostly over its last few iterations' calls, each made at slightly older
        weights; while the weights still move (a constant learning rate), those statistics do not
        quite match what the final layers produce, and the mismatch shows in decoded frames, e.g.
        as a brightness offset. The calls are those of one training iteration (E_p on frames 0 and
        4 for C, then E_c on frames 0 and 1, E_p on 2 and 3, and D), so each layer averages over
        the inputs it saw in training. Deterministic: the batches come from a generator seeded with
        the run's seed, so repeating the refresh gives the same statistics.
        The checkpoint on disk keeps the training's own running averages (a resume continues from those).
        """
        check_bn_refresh_batches(batches, allow_zero=False)
        update_bn(self.training_batches(batches), _TrainingCalls(self.model if model is None else model))


class _TrainingCalls(torch.nn.Module):
    """One training iteration's network calls on a frame batch ``(B, 5, C, H, W)``, without
    gradients: what :meth:`DrNetTrainer.refresh_bn_statistics` passes each batch through."""

    def __init__(self, model: DrNet):
        super().__init__()
        self.model = model

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> None:
        m = self.model
        m.encode_pose(frames[:, 0]), m.encode_pose(frames[:, 4])      # C's step
        content, skips = m.encode_content(frames[:, 0])
        m.encode_content(frames[:, 1])
        pose = m.encode_pose(frames[:, 2])
        m.encode_pose(frames[:, 3])
        m.decode(content, skips, pose)


def train_drnet(cfg: ExperimentConfig, device="auto", checkpoint_path: str | Path | None = None,
                resume: bool = True, progress: bool = True, bank=None) -> DrNetTrainer:
    """Train (or finish training) DrNet for ``cfg``; returns the trainer with the final weights.

    With ``resume=True`` and an existing checkpoint, training continues where it stopped; a run
    whose checkpoint is already complete returns at once. ``bank`` reuses a clip source already
    in memory (two runs on the same data need not load it twice). With
    ``lstm.bn_refresh_batches > 0`` the returned model's BatchNorm statistics are recomputed for
    its final weights (:meth:`DrNetTrainer.refresh_bn_statistics`), after the last checkpoint.
    """
    check_bn_refresh_batches(cfg.lstm.bn_refresh_batches)   # the pose LSTM's settings: before training, not after it
    check_bn_mode(cfg.lstm.bn_mode)
    if bank is None:   # made here, not by the trainer, so that a first-use conversion shows its progress
        bank = make_train_bank(cfg, resolve_device(device), progress)
    trainer = DrNetTrainer(cfg, device, bank=bank).run(checkpoint_path, resume, progress)
    if cfg.lstm.bn_refresh_batches:
        trainer.refresh_bn_statistics(cfg.lstm.bn_refresh_batches)
    return trainer


def checkpoint_paths(cfg: ExperimentConfig, checkpoint_dir="checkpoints",
                     tag: str | None = None) -> tuple[Path, Path]:
    """Where a run keeps its DrNet and LSTM checkpoints: ``<dir>/<profile>/<experiment>[_<tag>]_seed<k>/``."""
    run = Path(checkpoint_dir) / cfg.profile / run_name(cfg.experiment, cfg.seed, tag)
    return run / "drnet.pt", run / "lstm.pt"
