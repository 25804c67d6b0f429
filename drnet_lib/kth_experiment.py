"""The KTH experiment: future frames from ten observed ones, and what each code knows of the action.

Every measurement uses the *test persons* (people DrNet never saw):

* **prediction** (MCNet's 10 observed and 20 scored frames, reference/repro_anchors.md §2.2, but
  not its clip list, deviation K7; :func:`mcnet_clips` builds that list for a diagnostic): for
  ``eval.rollout_clips`` fixed test clips (:func:`test_clips`), the pose LSTM sees ``lstm.n_past``
  frames and generates on; per-step PSNR and SSIM
  (:func:`.frame_metrics.frame_metrics`, scikit-image) of the first ``eval.metric_steps`` generated frames
  against the truth, beside the copy-last-observed-frame baseline;
* **long range**: the same rollouts continue to ``eval.rollout_steps`` frames, far past the end of
  any real clip, so there is no truth to compare with. Two checks need none: the generated frames
  are re-encoded and the action classifier (trained on *real* pose windows, below) names the
  action of the window ending at each of ``eval.rollout_checkpoints`` (``rollout.action_accuracy``),
  and ``rollout.motion_ratio`` (:class:`.frame_metrics.RolloutMotion`) compares how much the generated
  frames change from one to the next with how much real frames do (1 = as lively as real video;
  0 = frozen);
* **classification** on frozen codes of windows of ``lstm.n_past`` consecutive frames (every
  non-overlapping window of every annotated range): the action from the window's pose codes
  (concatenated in time order) and from its first frame's content code, fitted on the training
  persons and scored on the test persons; the person from the same codes, fitted on the test
  persons' even-numbered ranges and scored on their odd ones. Chance (``*_chance``) is always
  answering the training side's most frequent label, scored on the test side
  (:func:`.classification.chance_accuracy`): about 1/6 and 1 / test persons, more where the
  classes are unequal.
  Each with the two-layer classifier and the linear probe of :mod:`.classification`. The person
  once more with each scenario held out in turn (:func:`person_across_scenarios`): what a code
  knows of the person beyond the place where the person was filmed. Beside the codes, the action
  from the frames' own motion (:func:`frame_motion`), what the frames hold without DrNet.

Each prediction also decodes the *true* future poses (the decoder's ceiling) and splits its error
by the pixels that change and those that stay; those measurements, and the decoder's other
diagnostics, are :mod:`.kth_decoder`'s. Reading recorded runs back (what a run changed, seeds
paired, the beta sweep, per-action means) is :mod:`.kth_analysis`'s job; this module measures.
"""

from __future__ import annotations

import numpy as np
import torch

from .classification import chance_accuracy, classify, confusion_shares, fit_classifier
from .config import ExperimentConfig
from .data.kth import ACTIONS, KTHClips
from .data.sweeps import ClipStarts
from .frame_metrics import RolloutMotion, mean_over_chunks, prediction_metrics
from .kth_decoder import ceiling_chunks, clip_error_splits, decode_held_pose, grouped_error_split, scored_as
from .models import evaluating
from .predict import rollout

FIRST_FEW = 3   # "beats copy-last at most steps beyond the first few": steps after this one count


def test_clips(bank: KTHClips, length: int, count: int, seed: int) -> ClipStarts:
    """``count`` fixed clips of ``length`` frames from ``bank`` (at most one per annotated range,
    drawn with ``seed``), so every run and machine scores the same clips. Ranges shorter than
    ``length`` cannot give one."""
    g = torch.Generator().manual_seed(seed)
    lengths = bank.lengths.cpu()
    eligible = torch.nonzero(lengths >= length).flatten()
    if len(eligible) == 0:
        raise ValueError(f"no test range has {length} frames (n_past + eval.metric_steps); "
                         f"the longest has {int(lengths.max())}")
    chosen = eligible[torch.randperm(len(eligible), generator=g)[:count]]
    room = lengths[chosen] - length + 1
    start = (torch.rand(len(chosen), generator=g, dtype=torch.float64) * room).long()
    return ClipStarts(chosen, start).to(bank.device)


# MCNet's test list (reference/repro_anchors.md §2.2) starts a clip every 3 frames of a running or
# jogging range and every T (= the scored steps) frames of the others: fast actions get more clips.
MCNET_DENSE_ACTIONS = ("running", "jogging")
MCNET_DENSE_STRIDE = 3


def mcnet_clips(bank: KTHClips, n_past: int, horizon: int) -> ClipStarts:
    """MCNet's clip list: in every annotated range, the clips of ``n_past + horizon`` frames that
    start every :data:`MCNET_DENSE_STRIDE` frames (running, jogging) or every ``horizon`` frames
    (the other actions), from the range's first frame while the clip fits; in range order.

    MCNet's script loops ``j`` over ``range(start, end - K - T - 1, stride)`` on video frames, with
    the file's 1-indexed range bounds: its first and last clips sit a frame or two from ours. The
    list's point, how many clips each action gets, is kept; those off-by-ones are not.
    """
    length = n_past + horizon
    sequence, start = [], []
    for q, (n, action) in enumerate(zip(bank.lengths.tolist(), bank.action.tolist())):
        stride = MCNET_DENSE_STRIDE if ACTIONS[action] in MCNET_DENSE_ACTIONS else horizon
        starts = range(0, n - length + 1, stride)
        sequence += [q] * len(starts)
        start += starts
    if not sequence:
        raise ValueError(f"no test range has {length} frames (n_past + eval.metric_steps)")
    return ClipStarts(torch.tensor(sequence), torch.tensor(start)).to(bank.device)


def window_starts(bank: KTHClips, window: int) -> ClipStarts:
    """Every non-overlapping window of ``window`` frames of every range, in range order."""
    lengths = bank.lengths.cpu()
    counts = lengths // window
    sequence = torch.repeat_interleave(torch.arange(len(lengths)), counts)
    first = torch.cumsum(counts, 0) - counts
    start = (torch.arange(int(counts.sum())) - torch.repeat_interleave(first, counts)) * window
    return ClipStarts(sequence, start).to(bank.device)


# The frames' own motion, pooled to a coarse grid: a baseline for the action with no DrNet at all.
MOTION_POOL = 4


def frame_motion(frames: torch.Tensor, pool: int = MOTION_POOL) -> torch.Tensor:
    """Where a window moves: the mean absolute difference between its consecutive frames, averaged
    over ``pool`` x ``pool`` pixel blocks. ``(b, T, C, S, S)`` -> ``(b, C * (S // pool) ** 2)``.
    A classifier on it names the action from the frames alone, which tells what the frames hold
    that the pose codes may not."""
    moved = (frames[:, 1:] - frames[:, :-1]).abs().mean(1)             # (b, C, S, S)
    return torch.nn.functional.avg_pool2d(moved, pool).flatten(1)


@torch.no_grad()
def encode_windows(model, bank: KTHClips, window: int, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Frozen codes of every :func:`window_starts` window.

    Returns (N windows): ``pose`` ``(N, window * dp)`` (the window's pose codes in time order),
    ``content`` ``(N, dc)`` (its first frame's), ``frame_motion`` (:func:`frame_motion` of its
    frames, from the same rendering), and ``action``, ``person``, ``scenario``, ``range_index`` ``(N,)``.
    """
    device = next(model.parameters()).device
    windows = window_starts(bank, window)
    times = torch.arange(window, device=bank.device)
    pose, content, motion = [], [], []
    with evaluating(model):
        for start in range(0, len(windows), batch_size):
            frames = bank.render(windows.subset(slice(start, start + batch_size)), times).to(device)
            pose.append(model.encode_pose(frames.flatten(0, 1)).reshape(len(frames), -1).cpu())
            content.append(model.encode_content(frames[:, 0])[0].flatten(1).cpu())
            motion.append(frame_motion(frames).cpu())
    seq = windows.sequence.cpu()
    out = {"pose": torch.cat(pose).numpy(), "content": torch.cat(content).numpy(),
           "frame_motion": torch.cat(motion).numpy()}
    for name in ("action", "person", "scenario", "range_index"):
        out[name] = getattr(bank, name).cpu()[seq].numpy()
    return out


def classification_scores(model, train_bank: KTHClips, test_bank: KTHClips, cfg: ExperimentConfig) -> tuple[dict, object]:
    """Action and person from each code (module docstring), as results keys
    ``classification.{action,person}_from_{pose,content}`` (two-layer classifier) and
    ``probe.…`` (linear), the person from each code with the scored scenario held out
    (``…person_from_{pose,content}_across_scenarios``, :func:`person_across_scenarios`), plus the
    chance levels, and ``classification.action_confusion_from_pose`` (where the two-layer
    action-from-pose classifier's answers go, per true action: :func:`.classification.confusion_shares`);
    and a baseline without DrNet: the same classifier on the windows' :func:`frame_motion`
    (``classification.action_from_frame_motion`` and its ``…confusion…``).
    Also returns the fitted action-from-pose classifier, for the generated frames."""
    e, window = cfg.eval, cfg.lstm.n_past
    train, test = encode_windows(model, train_bank, window), encode_windows(model, test_bank, window)
    odd = test["range_index"] % 2 == 1
    out, fitted = {}, {}
    for kind, prefix in (("mlp", "classification."), ("linear", "probe.")):
        for code in ("pose", "content"):
            fitted[kind, code] = clf = fit_classifier(train[code], train["action"], kind, e.classifier_hidden,
                                                      e.classifier_max_iter, cfg.seed)
            out[f"{prefix}action_from_{code}"] = float(clf.score(test[code], test["action"]))
            out[f"{prefix}person_from_{code}"] = classify(
                test[code][~odd], test["person"][~odd], test[code][odd], test["person"][odd], kind,
                e.classifier_hidden, e.classifier_max_iter, cfg.seed)
    out["classification.action_chance"] = chance_accuracy(train["action"], test["action"])
    out["classification.person_chance"] = chance_accuracy(test["person"][~odd], test["person"][odd])
    out.update(scores_across_scenarios(test, cfg))
    out["classification.windows"] = {"train": len(train["action"]), "test": len(test["action"])}
    out["classification.action_confusion_from_pose"] = confusion_shares(fitted["mlp", "pose"], test["pose"],
                                                                        test["action"], list(ACTIONS))
    # the same classifier on the frames' own motion (no codes): what the frames hold of the action
    from_motion = fit_classifier(train["frame_motion"], train["action"], "mlp", e.classifier_hidden,
                                 e.classifier_max_iter, cfg.seed)
    out["classification.action_from_frame_motion"] = float(from_motion.score(test["frame_motion"], test["action"]))
    out["classification.action_confusion_from_frame_motion"] = confusion_shares(from_motion, test["frame_motion"],
                                                                                test["action"], list(ACTIONS))
    return out, fitted["mlp", "pose"]


def person_across_scenarios(codes: dict[str, np.ndarray], code: str, kind: str, hidden: int = 256,
                            max_iter: int = 200, seed: int = 0) -> tuple[float, float]:
    """The person named from the ``code`` codes of one scenario's windows by a classifier fitted on
    the same persons' *other* scenarios (each scenario held out in turn, pooled over the windows).

    The person split of :func:`classification_scores` (even against odd ranges) has the same videos
    on both sides, so a code that keeps the place (background, where the person stands, the
    clothes) scores as knowing the person. Here the scored scenario's place, and in d3 the
    clothes, were never seen in fitting: what can still name the person is what goes with them
    from one scenario to the next (height, build, gait).

    Args:
        codes: :func:`encode_windows` output (``code``, ``person`` and ``scenario`` used).
        code: ``"pose"`` or ``"content"``; kind, hidden, max_iter, seed: the classifier's.
    Returns:
        ``(accuracy, chance)``, chance by always naming the fitted side's most frequent person.
        Only windows of persons seen in the other scenarios are scored, and a held-out scenario
        whose other scenarios show fewer than two persons is skipped; ``(nan, nan)`` if none is left.
    """
    correct = majority = scored = 0
    for scenario in np.unique(codes["scenario"]):
        held = codes["scenario"] == scenario
        seen = np.unique(codes["person"][~held])
        if len(seen) < 2:
            continue
        scored_mask = held & np.isin(codes["person"], seen)
        clf = fit_classifier(codes[code][~held], codes["person"][~held], kind, hidden, max_iter, seed)
        correct += int((clf.predict(codes[code][scored_mask]) == codes["person"][scored_mask]).sum())
        n = int(scored_mask.sum())
        majority += chance_accuracy(codes["person"][~held], codes["person"][scored_mask]) * n
        scored += n
    return (correct / scored, majority / scored) if scored else (float("nan"), float("nan"))


def scores_across_scenarios(test: dict[str, np.ndarray], cfg: ExperimentConfig) -> dict[str, float]:
    """:func:`person_across_scenarios` from each code with each classifier, as results keys
    ``{classification,probe}.person_from_{pose,content}_across_scenarios`` and
    ``classification.person_chance_across_scenarios``; ``test``: the test persons' windows."""
    e, out = cfg.eval, {}
    for kind, prefix in (("mlp", "classification."), ("linear", "probe.")):
        for code in ("pose", "content"):
            out[f"{prefix}person_from_{code}_across_scenarios"], chance = person_across_scenarios(
                test, code, kind, e.classifier_hidden, e.classifier_max_iter, cfg.seed)
    out["classification.person_chance_across_scenarios"] = chance
    return out


def _summary(per_step: dict[str, list[float]]) -> dict[str, float]:
    """Each per-step curve's mean over the steps (``<key>_mean``), and ``steps_beating_copy_last``:
    the share of the steps after :data:`FIRST_FEW` where DrNet's mean PSNR beats copy-last's."""
    out = {f"{key}_mean": round(float(np.mean(values)), 4) for key, values in per_step.items()}
    later = slice(FIRST_FEW, None)
    out["steps_beating_copy_last"] = float(np.mean(
        np.array(per_step["psnr"][later]) > np.array(per_step["copy_last_psnr"][later])))
    return out


@torch.no_grad()
def predict_and_roll_out(model, lstm, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig,
                         action_classifier, keep: int = 4, chunk: int = 32) -> tuple[dict, dict]:
    """Roll every clip of ``clips`` out to ``eval.rollout_steps`` frames and score it.

    Returns ``(metrics, samples)``. Metrics: per-step ``prediction.{psnr,ssim}``,
    ``prediction.copy_last_{psnr,ssim}``, ``prediction.oracle_{psnr,ssim}`` (decoded from the
    true future poses: the decoder's ceiling) and ``prediction.held_pose_{psnr,ssim}`` (the last
    observed pose held: DrNet predicting no motion), each a dict step -> mean over clips for steps
    1..metric_steps; their means, ``prediction.steps_beating_copy_last`` (share of steps after
    :data:`FIRST_FEW` where DrNet's PSNR is higher), ``prediction.by_action`` (action name -> clips,
    the mean PSNR/SSIM of each of those four, and that share, over that action's clips),
    ``prediction.error_split`` (where the ceiling and copy-last go wrong, :func:`.kth_decoder.ceiling_error_split`'s
    groups, from the same decoded frames), ``rollout.action_accuracy`` and ``rollout.motion_ratio``
    (dicts checkpoint step -> value; module docstring), ``rollout.oracle_motion_ratio`` (the
    ceiling's frames' motion over the truth's) and ``rollout.motion_of_oracle`` (the one over the
    other; :class:`.frame_metrics.RolloutMotion`). ``samples``: the first ``keep`` clips'
    observed, generated and true frames (the truth stops at ``metric_steps``).
    """
    e, window = cfg.eval, cfg.lstm.n_past
    device = next(model.parameters()).device
    horizon = e.metric_steps
    checkpoints = [s for s in e.rollout_checkpoints if window <= s <= e.rollout_steps]
    scores, hits, samples = [], {s: 0.0 for s in checkpoints}, {}
    motion = RolloutMotion(checkpoints, window)
    splits = []   # (action, error_split of one clip's ceiling)
    # the ceiling and standing still are decoded for the whole chunk, like the rollout: with lstm.bn_mode
    # "train" BatchNorm takes its statistics from the batch, and one action's clips alone can be a single clip
    for part, observed, truth, ceilings in ceiling_chunks(model, bank, clips, cfg, chunk):
        generated = rollout(model, lstm, observed, e.rollout_steps, cfg.lstm.bn_mode)
        stills = decode_held_pose(model, observed, horizon, cfg.lstm.bn_mode)
        labels = bank.action[part.sequence].cpu().numpy()
        for action in np.unique(labels):   # scored per action, so the per-action means come for free
            rows = torch.as_tensor(labels == action, device=device)
            ceiling, still = ceilings[rows], stills[rows]
            scores.append((int(action), int(rows.sum()), {
                **prediction_metrics(observed[rows], generated[rows, :horizon], truth[rows]),
                **scored_as("oracle", ceiling, truth[rows]), **scored_as("held_pose", still, truth[rows])}))
            splits += [(int(action), split) for split in clip_error_splits(ceiling, observed[rows], truth[rows])]
        motion.add(generated, truth, ceilings)
        with evaluating(model):
            poses = model.encode_pose(generated.flatten(0, 1)).view(len(part), e.rollout_steps, -1).cpu()
        for s in checkpoints:
            guess = action_classifier.predict(poses[:, s - window:s].flatten(1).numpy())
            hits[s] += float((guess == labels).sum())
        if not samples:
            samples = {"observed": observed[:keep].cpu(), "generated": generated[:keep].cpu(),
                       "truth": truth[:keep].cpu(), "action": labels[:keep]}
    per_step = mean_over_chunks([(n, m) for _, n, m in scores], "")
    metrics = {f"prediction.{key}": {step: v for step, v in enumerate(values, start=1)}
               for key, values in per_step.items()}
    metrics.update({f"prediction.{key}": value for key, value in _summary(per_step).items()})
    metrics["prediction.by_action"] = {}
    for action in sorted({a for a, _, _ in scores}):
        mine = [(n, m) for a, n, m in scores if a == action]
        metrics["prediction.by_action"][ACTIONS[action]] = {
            "clips": sum(n for n, _ in mine), **_summary(mean_over_chunks(mine, ""))}
    metrics["rollout.action_accuracy"] = {s: hits[s] / len(clips) for s in checkpoints}
    metrics.update(motion.metrics())
    metrics["prediction.error_split"] = grouped_error_split(splits)
    return metrics, samples
