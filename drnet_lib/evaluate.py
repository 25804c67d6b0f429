"""Evaluation of a trained Moving MNIST DrNet: linear-probe leakage, a digit judge, swaps, rollouts.

Everything here measures a frozen model; nothing updates it. The pieces follow
reference/repro_anchors.md §5.1-5.2:

* **Probe leakage matrix** (§5.1): linear probes from the content code and the pose code to each
  ground-truth factor of Moving MNIST (the class of each digit, the pixel centre of each digit).
  Good disentanglement means content -> identity high, pose -> identity near chance (0.1),
  pose -> position high, content -> position low.
* **Judge** (§5.2): a small CNN trained with full supervision on real frames from the *training*
  digits, then frozen, that names the digit drawn in one colour channel. It scores swaps
  D(E_c(x_a), E_p(x_b)) (should show a's digits at b's positions) and long rollouts (digits should
  stay recognisable at t = 100, 500).

Scores of predicted frames shared by every experiment (PSNR, SSIM, the rollouts' motion) are in
:mod:`.frame_metrics`.

Frames are ``(..., C, S, S)`` float in [0, 1]; digit ``d`` of a clip lives in channel ``d``.
"""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from .classification import chance_accuracy, fitted, linear_probe, ridge_r2
from .data.moving_mnist import ClipFactors, MovingMNIST
from .models import evaluating



# -- helpers --------------------------------------------------------------------------------------
def _device_of(module: nn.Module, default) -> torch.device:
    """The device of a module's first parameter (or ``default`` for parameter-free modules)."""
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device(default)


def _as_times(times, device) -> torch.Tensor:
    return torch.as_tensor(times, dtype=torch.int64, device=device).reshape(-1)


# -- 1. codes for the probes ----------------------------------------------------------------------
def encode_clips(model: nn.Module, bank: MovingMNIST, factors: ClipFactors, times,
                 batch_size: int = 256) -> dict[str, np.ndarray]:
    """Codes and ground-truth factors of the frames ``times`` of every clip, as numpy arrays.

    Args:
        times: ``(K,)`` frame indices, the same for every clip.
        batch_size: clips rendered and encoded at once.
    Returns (rows clip-major: row ``i * K + k`` is clip ``i`` at ``times[k]``; N = len(factors)):
        ``content`` (N*K, dc), ``content_pooled_skips`` (N*K, dc + sum of skip widths),
        ``pose`` (N*K, dp), ``labels`` (N*K, D) int digit classes, ``centers`` (N*K, D*2) digit
        centres (row, col per digit) in pixels, ``clip`` (N*K,) the clip index of each row.
    """
    times = _as_times(times, bank.device)
    device = _device_of(model, bank.device)
    parts: dict[str, list] = {k: [] for k in ("content", "content_pooled_skips", "pose")}
    with evaluating(model):
        for start in range(0, len(factors), batch_size):
            chunk = factors.subset(slice(start, start + batch_size))
            x = bank.render(chunk, times).flatten(0, 1).to(device)       # (b*K, C, S, S)
            content, skips = model.encode_content(x)
            content = content.flatten(1)
            # Global average pool of each skip map: what a U-Net decoder could read content from
            # besides the code itself, so leakage through the skips is probed too.
            pooled = [s.mean(dim=(2, 3)) for s in skips]
            parts["content"].append(content.cpu())
            parts["content_pooled_skips"].append(torch.cat([content] + pooled, dim=1).cpu())
            parts["pose"].append(model.encode_pose(x).flatten(1).cpu())
    out = {k: torch.cat(v).numpy() for k, v in parts.items()}
    K = len(times)
    out["labels"] = factors.labels.cpu().repeat_interleave(K, dim=0).numpy()
    out["centers"] = bank.centers(factors, times).flatten(2).flatten(0, 1).cpu().numpy()
    out["clip"] = np.repeat(np.arange(len(factors)), K)
    return out


# -- 2. linear probes -----------------------------------------------------------------------------
def probe_identity(x_train, labels_train, x_test, labels_test) -> float:
    """Mean over digit slots of the test accuracy of the linear probe (labels ``(N, slots)``)."""
    accuracies = [fitted(linear_probe(), x_train, labels_train[:, d]).score(x_test, labels_test[:, d])
                  for d in range(labels_train.shape[1])]
    return float(np.mean(accuracies))


def probe_position(x_train, centers_train, x_test, centers_test) -> float:
    """Test R² of the ridge probe (:func:`.classification.ridge_r2`) over all D*2 centre coordinates."""
    return ridge_r2(x_train, centers_train, x_test, centers_test)


def fit_probes(train: dict, test: dict, content_has_skips: bool) -> dict[str, float]:
    """Linear probes fitted on ``train`` codes, scored on ``test`` codes (dicts as encode_clips).

    Identity: logistic regression per digit slot, accuracy averaged over slots (chance about 0.1;
    ``probe.identity_chance`` is the test accuracy of always naming the most frequent training
    class). Position: ridge regression on all centre coordinates, R² (0 = no better than the mean).

    What counts as the *content code* depends on the decoder: with skip connections
    (``content_has_skips``) the decoder receives the content frame's feature maps as well as the
    vector, so ``probe.content_*`` probes the vector concatenated with the globally pooled skip
    features; without skips it is the vector alone. ``probe.content_vector_*`` always probes the
    vector alone, ``probe.pose_*`` the pose code.
    BLAS runs single-threaded: the problems are small (10k x 300 takes seconds), and threaded
    BLAS competing with a training run on the same cores was measured ~3x slower.
    """
    out = {}
    reps = {"content": "content_pooled_skips" if content_has_skips else "content",
            "content_vector": "content", "pose": "pose"}
    with threadpool_limits(limits=1):
        for name, key in reps.items():
            out[f"probe.{name}_to_identity"] = probe_identity(
                train[key], train["labels"], test[key], test["labels"])
            out[f"probe.{name}_to_position_r2"] = probe_position(
                train[key], train["centers"], test[key], test["centers"])
    out["probe.identity_chance"] = chance_accuracy(train["labels"], test["labels"])
    return out


# -- 3. the judge ---------------------------------------------------------------------------------
class DigitJudge(nn.Module):
    """Single-channel frame ``(B, 1, S, S)`` -> 10 digit logits ``(B, 10)``.

    Three 3x3 conv stages (BatchNorm, ReLU, 2x2 max-pool after the first two) then a global max
    pool, so the answer does not depend on where the digit is; works for any S >= 16.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True),
        )
        self.classify = nn.Linear(4 * w, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x).amax(dim=(2, 3)))


def judge_examples(bank: MovingMNIST, batch: int, generator: torch.Generator):
    """One random frame of ``batch`` fresh clips, split per digit channel.

    Returns ``(batch*D, 1, S, S)`` frames and ``(batch*D,)`` labels. Each digit's channel keeps
    the occlusion by the digit in front, as at test time.
    """
    factors = bank.sample_factors(batch, generator)
    t = torch.randint(factors.positions.shape[1], (batch, 1), generator=generator, device=bank.device)
    frames = bank.render(factors, t)[:, 0, :bank.num_digits]            # (B, D, S, S)
    return frames.reshape(-1, 1, *frames.shape[-2:]), factors.labels.reshape(-1)


def train_judge(bank: MovingMNIST, iterations: int, batch_size: int, generator: torch.Generator,
                device="cpu", progress: bool = False, width: int = 32) -> DigitJudge:
    """Train a DigitJudge on real frames of ``bank`` (the TRAIN digits); returned in eval mode.

    ``batch_size`` clips per step (so ``batch_size * D`` single-channel examples); Adam lr 1e-3.
    The initial weights are drawn from a seed taken from ``generator``, so the result depends on
    ``generator`` alone and the global torch RNG is left untouched.
    """
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=bank.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        judge = DigitJudge(width).to(device)
    opt = torch.optim.Adam(judge.parameters(), lr=1e-3)
    judge.train()
    for _ in tqdm(range(iterations), desc="judge", disable=not progress):
        x, y = judge_examples(bank, batch_size, generator)
        loss = F.cross_entropy(judge(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return judge.eval()


def judge_predict(judge: nn.Module, frames: torch.Tensor, num_digits: int,
                  batch_size: int = 1024) -> torch.Tensor:
    """The judge's class for each digit channel: frames ``(N, C, S, S)`` -> ``(N, D)`` int64 (CPU)."""
    device = _device_of(judge, "cpu")
    N, S = frames.shape[0], frames.shape[-1]
    singles = frames[:, :num_digits].reshape(N * num_digits, 1, S, S)
    preds = []
    with evaluating(judge):
        for start in range(0, len(singles), batch_size):
            preds.append(judge(singles[start:start + batch_size].to(device)).argmax(1).cpu())
    return torch.cat(preds).view(N, num_digits)


def judge_accuracy(judge: nn.Module, bank: MovingMNIST, factors: ClipFactors, times,
                   batch_size: int = 256, occluded: bool = True) -> float:
    """Judge accuracy on real frames ``times`` ``(K,)`` of every clip, mean over digits and frames.

    ``occluded=True`` scores the frames as rendered (a digit behind the other loses the pixels
    they share); ``occluded=False`` scores every digit drawn unoccluded (each slot rendered as the
    front digit in turn), i.e. the judge's accuracy on a clean digit wherever it sits.
    """
    times = _as_times(times, bank.device)
    correct, total = 0, 0
    for start in range(0, len(factors), batch_size):
        chunk = factors.subset(slice(start, start + batch_size))
        truth = chunk.labels.cpu().repeat_interleave(len(times), dim=0)
        if occluded:
            pred = judge_predict(judge, bank.render(chunk, times).flatten(0, 1), bank.num_digits)
        else:
            pred = torch.stack([judge_predict(judge, bank.render(_in_front(chunk, d), times).flatten(0, 1),
                                              bank.num_digits)[:, d] for d in range(bank.num_digits)], dim=1)
        correct += int((pred == truth).sum())
        total += truth.numel()
    return correct / total


def _in_front(factors: ClipFactors, d: int) -> ClipFactors:
    """The same clips with digit slot ``d`` drawn in front of the others."""
    return ClipFactors(factors.digit_index, factors.labels, factors.positions, torch.full_like(factors.front, d))


# -- 4. swaps -------------------------------------------------------------------------------------
def channel_centroids(frames: torch.Tensor, num_digits: int):
    """Intensity centroid (row, col) in pixels of each digit channel: ``(N, C, S, S)`` -> ``(N, D, 2)``.

    The channel's median is subtracted first (clamped at 0) so that a uniform haze from a blurry
    decoder does not pull the centroid to the middle; on real frames the median is 0 and this is
    the plain intensity centroid. A channel with no mass left gets the image centre, and is
    flagged in the returned ``(N, D)`` bool ``empty`` mask.
    """
    x = frames[:, :num_digits].float()
    x = (x - x.flatten(2).median(dim=2).values[..., None, None]).clamp(min=0)
    S = x.shape[-1]
    coords = torch.arange(S, dtype=x.dtype, device=x.device)
    mass = x.sum(dim=(2, 3))
    empty = mass <= 1e-6
    safe = torch.where(empty, torch.ones_like(mass), mass)
    rows = (x.sum(dim=3) * coords).sum(dim=2) / safe
    cols = (x.sum(dim=2) * coords).sum(dim=2) / safe
    cent = torch.stack([rows, cols], dim=-1)
    return torch.where(empty[..., None], torch.full_like(cent, (S - 1) / 2), cent), empty


def sample_swap_pairs(n_clips: int, pairs: int, length: int, generator: torch.Generator):
    """Random clip pairs (a, b) with a != b and a random frame in each: four ``(pairs,)`` int64."""
    if n_clips < 2:
        raise ValueError("swaps need at least two clips")
    dev = generator.device
    a = torch.randint(n_clips, (pairs,), generator=generator, device=dev)
    b = (a + torch.randint(1, n_clips, (pairs,), generator=generator, device=dev)) % n_clips  # != a
    t_a = torch.randint(length, (pairs,), generator=generator, device=dev)
    t_b = torch.randint(length, (pairs,), generator=generator, device=dev)
    return a, b, t_a, t_b


def swap_scores(model: nn.Module, bank: MovingMNIST, factors: ClipFactors, judge: nn.Module,
                pairs: int, generator: torch.Generator, batch_size: int = 256) -> dict[str, float]:
    """Decode D(E_c(x_a), skips(x_a), E_p(x_b)) for random pairs of different test clips.

    Returns ``swap.identity_accuracy`` (judge names a's digit, per slot), ``swap.identity_follows_b``
    (judge names b's digit: content leaking through the pose code; slots where a and b hold the
    same class count in both), ``swap.position_error_px`` (mean distance between each channel's
    centroid, see channel_centroids, and b's digit centre at t_b), ``swap.empty_channel_fraction``,
    and two reference values on real frames: ``swap.identity_accuracy_real`` (judge on x_a, the
    ceiling) and ``swap.position_error_px_real`` (centroid of x_b vs its centre: the floor of the
    measure, nonzero because a digit's ink centroid is not its box centre).
    """
    D, T = bank.num_digits, factors.positions.shape[1]
    a, b, t_a, t_b = (v.to(bank.device) for v in sample_swap_pairs(len(factors), pairs, T, generator))
    device = _device_of(model, bank.device)
    swaps, real_a, real_b = [], [], []
    with evaluating(model):
        for s in range(0, pairs, batch_size):
            sl = slice(s, s + batch_size)
            x_a = bank.render(factors.subset(a[sl]), t_a[sl, None])[:, 0]
            x_b = bank.render(factors.subset(b[sl]), t_b[sl, None])[:, 0]
            content, skips = model.encode_content(x_a.to(device))
            swaps.append(model.decode(content, skips, model.encode_pose(x_b.to(device))).cpu())
            real_a.append(x_a.cpu()); real_b.append(x_b.cpu())
    swaps, real_a, real_b = torch.cat(swaps), torch.cat(real_a), torch.cat(real_b)
    label_a, label_b = factors.labels.cpu()[a.cpu()], factors.labels.cpu()[b.cpu()]
    target = bank.centers(factors.subset(b), t_b[:, None])[:, 0].cpu()      # (P, D, 2)
    pred = judge_predict(judge, swaps, D)
    cent, empty = channel_centroids(swaps, D)
    cent_real, _ = channel_centroids(real_b, D)
    return {
        "swap.identity_accuracy": float((pred == label_a).float().mean()),
        "swap.identity_follows_b": float((pred == label_b).float().mean()),
        "swap.position_error_px": float((cent - target).norm(dim=-1).mean()),
        "swap.empty_channel_fraction": float(empty.float().mean()),
        "swap.identity_accuracy_real": float((judge_predict(judge, real_a, D) == label_a).float().mean()),
        "swap.position_error_px_real": float((cent_real - target).norm(dim=-1).mean()),
    }


# -- 5. long rollouts -----------------------------------------------------------------------------
def rollout_identity(judge: nn.Module, frames: torch.Tensor, labels: torch.Tensor,
                     steps: list[int]) -> dict[int, float]:
    """Judge accuracy of digit identity at 1-indexed steps of generated sequences.

    Args:
        frames: ``(N, T, C, S, S)`` generated frames; step ``s`` is ``frames[:, s - 1]``.
        labels: ``(N, D)`` the true digit classes of each clip.
    Returns ``{s: accuracy}``, accuracy averaged over clips and digit slots.
    """
    labels = torch.as_tensor(labels).cpu()
    out = {}
    for s in steps:
        if not 1 <= s <= frames.shape[1]:
            raise ValueError(f"step {s} outside 1..{frames.shape[1]}")
        pred = judge_predict(judge, frames[:, s - 1], labels.shape[1])
        out[int(s)] = float((pred == labels).float().mean())
    return out
