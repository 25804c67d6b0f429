"""Future-frame prediction: a pose LSTM on frozen DrNet encoders, and rollouts of any length.

Training (teacher forcing, as both official codes): for a clip of ``n_past + n_future`` frames,
the LSTM sees the true pose code of frame t and the clip's content code and predicts the pose of
frame t+1; the loss is the per-step MSE summed over *all* transitions, conditioning steps included
(drnet-py). The content code comes from the last observed frame (frame ``n_past - 1``).

Rollout: the observed frames are fed in with their true poses; from then on each predicted pose
is fed back. Every frame is decoded from the fixed content code (and skips) of the last observed
frame and the predicted pose, so identity can only drift if the pose drifts out of distribution.

Departures from the authors (listed in the deviations table): the frozen encoders run BatchNorm
in eval mode by default (the authors leave them in train mode: ``lstm.bn_mode="train"``
reproduces that), and the LSTM's ``(B, pose_dim)`` output is compared with pose codes of the same
shape (flattened ``(B, T, pose_dim)``) and reshaped to the encoder's ``(B, pose_dim, 1, 1)`` only
for decoding: drnet-py's MSE of a ``(B, P)`` output against ``(B, P, 1, 1)`` codes silently
broadcast to ``(B, P, B, P)`` on PyTorch >= 0.4.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import ExperimentConfig
from .data.moving_mnist import MovingMNIST
from .loop import ResumableLoop, make_adam
from .models import DrNet, PoseLSTM, evaluating, init_weights

if TYPE_CHECKING:   # (train imports this module: the alias is named for readers and checkers only)
    from .train import ClipSource


def check_bn_mode(bn_mode: str) -> None:
    if bn_mode not in ("eval", "train"):
        raise ValueError(f"lstm.bn_mode must be 'eval' or 'train', got {bn_mode!r}")


def set_bn_mode(model: DrNet, bn_mode: str) -> None:
    """BatchNorm of the frozen DrNet uses running stats ("eval") or batch stats ("train")."""
    check_bn_mode(bn_mode)
    model.train(bn_mode == "train")


@contextlib.contextmanager
def frozen_with_bn_mode(model: DrNet, bn_mode: str):
    """``with frozen_with_bn_mode(model, mode):`` the DrNet under ``no_grad`` with BatchNorm as
    :func:`set_bn_mode` says; its train/eval flag is restored afterwards. Its weights stay as they
    are, but with ``"train"`` every forward pass moves BatchNorm's running statistics (as the
    authors' frozen encoders do)."""
    was_training = model.training
    set_bn_mode(model, bn_mode)
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def encode_sequence(model: DrNet, frames: torch.Tensor, content_index: int):
    """frames ``(B, T, C, H, W)`` -> poses ``(B, T, dp)``, content ``(B, dc, 1, 1)`` and its skips
    from frame ``content_index``."""
    B, T = frames.shape[:2]
    poses = model.encode_pose(frames.flatten(0, 1)).view(B, T, -1)
    content, skips = model.encode_content(frames[:, content_index])
    return poses, content, skips


@torch.no_grad()
def encode_frame_table(model: DrNet, frames: torch.Tensor, batch_size: int = 512,
                       progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose and content codes of every frame of a clip source's table, BatchNorm in eval mode.

    Args:
        frames: ``(N, C, S, S)`` uint8 (a bank's ``frame_table``).
        progress: a bar over the frames (tens of thousands of 128 px KTH frames take minutes on a CPU).
    Returns:
        ``(poses (N, dp), contents (N, dc))`` float on the frames' device.
    """
    poses, contents = [], []
    starts = range(0, len(frames), batch_size)
    with evaluating(model):
        for start in tqdm(starts, desc="encoding frames for the LSTM", unit="batch", disable=not progress, leave=False):
            x = frames[start:start + batch_size].float() / 255.0
            poses.append(model.encode_pose(x).flatten(1))
            contents.append(model.encode_content(x)[0].flatten(1))
    return torch.cat(poses), torch.cat(contents)


def make_lstm(cfg: ExperimentConfig) -> PoseLSTM:
    """The pose LSTM that ``cfg`` describes (its sizes and output), with fresh weights."""
    return PoseLSTM(cfg.model.pose_dim, cfg.model.content_dim, cfg.lstm.hidden, cfg.lstm.layers, cfg.lstm.output_tanh)


class LSTMTrainer(ResumableLoop):
    """Trains a :class:`PoseLSTM` on pose codes of a frozen DrNet (the model passed in is frozen
    for good: its parameters stop requiring gradients).

    With frozen encoders in eval-mode BatchNorm, a frame's codes never change, so for clip
    sources that hold a table of frames (NORB, chairs, KTH: ``frame_table``/``frame_index``) the
    codes of every frame are computed once and each step gathers them: the same numbers as
    encoding every clip again (same clips, same RNG draws), without re-running the encoders on
    ``batch x (n_past + n_future)`` frames per step. ``cache_codes=False`` re-encodes (the test
    that both agree uses it). Moving MNIST draws new frames every step and always encodes.
    """

    name = "pose LSTM"
    log_names = ("pose_mse",)
    # the DrNet's sections as well: an LSTM is trained on the codes of one trained DrNet
    checkpoint_sections = ("experiment", "seed", "model", "data", "train", "lstm")
    length_setting = "lstm.iterations"   # (DrNet's train.iterations counts: it names the DrNet trained on)
    # DrNet's checkpoint beside it may be the right one: only the LSTM has to go
    refusal_fix = ("delete it to train the pose LSTM again on this DrNet with these settings, or use another "
                   "checkpoint folder")

    def __init__(self, cfg: ExperimentConfig, model: DrNet, bank: ClipSource, cache_codes: bool = True,
                 progress: bool = False):
        c = cfg.lstm
        self.cfg, self.model, self.bank = cfg, model, bank
        # DrNet is frozen from here on (the caller's model too: its parameters stop requiring
        # gradients, and its BatchNorm stays in the LSTM's mode); a bad bn_mode fails here, first
        set_bn_mode(model, c.bn_mode)
        model.requires_grad_(False)
        self.device = next(model.parameters()).device
        self.code_table = None
        if cache_codes and c.bn_mode == "eval" and hasattr(bank, "frame_table"):
            self.code_table = encode_frame_table(model, bank.frame_table, progress=progress)
        # seed + 1: the LSTM's draws (its init, its clips) differ from the DrNet's of the same seed
        torch.manual_seed(cfg.seed + 1)
        self.lstm = make_lstm(cfg).to(self.device)
        self.lstm.embed.apply(init_weights)   # the authors init the Linear layers only
        self.lstm.out.apply(init_weights)
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed + 1)
        self.modules = {"lstm": self.lstm}
        self.optimizers = {"lstm": make_adam(self.lstm.parameters(), c.lr, c.beta1, cfg.train.adam)}
        self.iterations, self.log_every, self.checkpoint_every = c.iterations, c.log_every, c.checkpoint_every
        self.iteration, self.wall_s, self.history = 0, 0.0, []

    def step(self) -> torch.Tensor:
        c = self.cfg.lstm
        length = c.n_past + c.n_future
        if self.code_table is not None:   # the same clips as sample_clips draws, codes looked up
            factors = self.bank.sample_factors(c.batch_size, self.generator, length)
            rows = self.bank.frame_index(factors, torch.arange(length, device=self.device))
            poses, content = self.code_table[0][rows], self.code_table[1][rows[:, c.n_past - 1]]
        else:
            set_bn_mode(self.model, c.bn_mode)  # callers may have switched modes between steps
            frames, _ = self.bank.sample_clips(c.batch_size, self.generator, length)
            poses, content, _ = encode_sequence(self.model, frames, c.n_past - 1)
        self.lstm.train()
        predicted, _ = self.lstm(poses[:, :-1], content.flatten(1))
        # Sum over transitions of the per-step mean squared error (drnet-py's loss, unbroadcast).
        loss = F.mse_loss(predicted, poses[:, 1:], reduction="none").mean(dim=(0, 2)).sum()
        opt = self.optimizers["lstm"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return (loss.detach() / (poses.shape[1] - 1)).unsqueeze(0)  # logged: mean per-step MSE


def finished_lstm(cfg: ExperimentConfig, path) -> PoseLSTM:
    """A run's trained pose LSTM from its checkpoint, in eval mode, on the CPU; refused by name
    when the checkpoint belongs to another configuration or stopped before ``lstm.iterations``."""
    state = LSTMTrainer.read_finished_checkpoint(cfg, path)
    lstm = make_lstm(cfg)
    lstm.load_state_dict(state["modules"]["lstm"])
    return lstm.eval()


def train_lstm(cfg: ExperimentConfig, model: DrNet, bank: ClipSource, checkpoint_path=None,
               resume: bool = True, progress: bool = True, cache_codes: bool = True) -> LSTMTrainer:
    """Train (or finish training) the pose LSTM; returns the trainer holding ``.lstm``."""
    return LSTMTrainer(cfg, model, bank, cache_codes, progress).run(checkpoint_path, resume, progress)


@torch.no_grad()
def predict_poses(model: DrNet, lstm: PoseLSTM, observed: torch.Tensor, steps: int,
                  bn_mode: str = "eval") -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The pose LSTM's prediction in code space: ``steps`` pose codes after the observed frames.

    The LSTM reads the observed frames' pose codes (teacher-forced), then feeds each prediction
    back as its next input; the content code of the last observed frame conditions every step.

    Args:
        observed: ``(B, n_past, C, H, W)`` real frames.
    Returns:
        ``(poses (B, steps, dp), content (B, dc, 1, 1), skips)``: pose i is the prediction for time
        n_past + i; content and skips (the content encoder's feature maps) are the last observed
        frame's, what a rollout decodes every pose with. The models' train/eval flags are restored;
        no autograd graph is built.
    """
    with frozen_with_bn_mode(model, bn_mode):
        poses, content, skips = encode_sequence(model, observed, observed.shape[1] - 1)
    content_vec = content.flatten(1)
    with evaluating(lstm):
        predicted, state = lstm(poses, content_vec)       # teacher-forced through the observed frames
        pose = predicted[:, -1:]                          # prediction for frame n_past
        future = [pose]
        for _ in range(steps - 1):
            pose, state = lstm(pose, content_vec, state)
            future.append(pose)
    return torch.cat(future, dim=1), content, skips


@torch.no_grad()
def rollout(model: DrNet, lstm: PoseLSTM, observed: torch.Tensor, steps: int,
            bn_mode: str = "eval") -> torch.Tensor:
    """Generate ``steps`` frames after the observed ones: :func:`predict_poses`, each decoded with
    the last observed frame's content and skips.

    Args:
        observed: ``(B, n_past, C, H, W)`` real frames.
    Returns:
        ``(B, steps, C, H, W)`` generated frames; frame i is the prediction for time n_past + i.
    """
    poses, content, skips = predict_poses(model, lstm, observed, steps, bn_mode)
    with frozen_with_bn_mode(model, bn_mode):
        # one step at a time: 500 steps of a batch never sit in the decoder's activations at once
        frames = [model.decode(content, skips, poses[:, i].reshape(len(poses), -1, 1, 1)) for i in range(steps)]
    return torch.stack(frames, dim=1)


def decode_pose_codes(model, content: torch.Tensor, skips: list[torch.Tensor], poses: torch.Tensor,
                      bn_mode: str) -> torch.Tensor:
    """Every pose code of a sequence decoded with one frame's content code and skips, as a
    prediction decodes. ``content`` ``(B, dc, 1, 1)`` and its skips, ``poses`` ``(B, T, dp)`` ->
    ``(B, T, C, H, W)``; the model's train/eval flag is restored."""
    B, T = poses.shape[:2]
    with frozen_with_bn_mode(model, bn_mode):
        decoded = model.decode(content.repeat_interleave(T, 0), [s.repeat_interleave(T, 0) for s in skips],
                               poses.reshape(B * T, -1, 1, 1))
    return decoded.view(B, T, *decoded.shape[1:])


def decode_true_poses(model, observed: torch.Tensor, truth: torch.Tensor, bn_mode: str) -> torch.Tensor:
    """The decoder's ceiling: the frames decoded from the *true* future pose codes, with content
    and skips from the last observed frame (as in a rollout), the best any pose predictor could do
    with this encoder and decoder. ``observed`` ``(B, n_past, C, H, W)``, ``truth`` ``(B, T, C, H, W)``
    -> ``(B, T, C, H, W)``; the model's train/eval flag is restored."""
    with frozen_with_bn_mode(model, bn_mode):
        content, skips = model.encode_content(observed[:, -1])
        poses = model.encode_pose(truth.flatten(0, 1)).view(*truth.shape[:2], -1)
    return decode_pose_codes(model, content, skips, poses, bn_mode)


def rollout_metrics(model: DrNet, lstm: PoseLSTM, bank: MovingMNIST, factors, judge, cfg: ExperimentConfig,
                    keep: int = 4, chunk: int = 25) -> tuple[dict, dict]:
    """Roll out ``eval.rollout_steps`` frames from ``lstm.n_past`` observed ones for every clip of
    ``factors`` (in chunks, so 500 steps of 100 clips never sit in memory at once) and score them.

    Returns ``(metrics, samples)``: ``rollout.identity_accuracy`` (judge, at ``eval.rollout_checkpoints``),
    ``rollout.motion_ratio`` (at the same steps, over the ``lstm.n_past`` frames ending there:
    :class:`.frame_metrics.RolloutMotion`, against the true frames' motion over the scored steps),
    ``rollout.oracle_motion_ratio`` (the same for the true poses decoded: the decoder's own ceiling)
    and ``rollout.motion_of_oracle`` (the first over the second, per step),
    per-step ``rollout.psnr``/``rollout.ssim`` over the first ``eval.metric_steps`` predicted frames
    and the same for the copy-last-observed-frame baseline; ``samples`` holds the first ``keep``
    clips' observed, generated and true frames for figures.
    """
    from .evaluate import rollout_identity
    from .frame_metrics import RolloutMotion, mean_over_chunks, prediction_metrics

    e, n_past = cfg.eval, cfg.lstm.n_past
    # scored steps: within the rollout and within the clips' known future
    horizon = min(e.metric_steps, e.rollout_steps, factors.positions.shape[1] - n_past)
    truth_times = torch.arange(n_past, n_past + horizon)
    hits = {s: [] for s in e.rollout_checkpoints}
    frame_scores, samples = [], {}
    motion = RolloutMotion(e.rollout_checkpoints, n_past)
    for start in range(0, len(factors), chunk):
        part = factors.subset(slice(start, start + chunk))
        observed = bank.render(part, torch.arange(n_past))
        generated = rollout(model, lstm, observed, e.rollout_steps, cfg.lstm.bn_mode)
        truth = bank.render(part, truth_times)
        for s, acc in rollout_identity(judge, generated, part.labels, list(e.rollout_checkpoints)).items():
            hits[s].append(acc * len(part))
        frame_scores.append((len(part), prediction_metrics(observed, generated[:, :horizon], truth)))
        motion.add(generated, truth, decode_true_poses(model, observed, truth, cfg.lstm.bn_mode))
        if not samples:
            samples = {"observed": observed[:keep].cpu(), "generated": generated[:keep].cpu(),
                       "truth": truth[:keep].cpu()}
    n = len(factors)
    metrics = {"rollout.identity_accuracy": {s: sum(v) / n for s, v in hits.items()},
               **motion.metrics(),
               **mean_over_chunks(frame_scores, "rollout.")}
    return metrics, samples
