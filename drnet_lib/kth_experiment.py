"""The KTH experiment: future frames from ten observed ones, and what each code knows of the action.

Every measurement uses the *test persons* (people DrNet never saw):

* **prediction** (MCNet's 10 observed and 20 scored frames, reference/repro_anchors.md §2.2, but
  not its clip list: deviation K7): for ``eval.rollout_clips`` fixed test clips (:func:`test_clips`),
  the pose LSTM sees ``lstm.n_past`` frames and generates on; per-step PSNR and SSIM
  (:func:`.evaluate.frame_metrics`, scikit-image) of the first ``eval.metric_steps`` generated frames
  against the truth, beside the copy-last-observed-frame baseline;
* **long range**: the same rollouts continue to ``eval.rollout_steps`` frames, far past the end of
  any real clip, so there is no truth to compare with. Two checks need none: the generated frames
  are re-encoded and the action classifier (trained on *real* pose windows, below) names the
  action of the window ending at each of ``eval.rollout_checkpoints`` (``rollout.action_accuracy``),
  and ``rollout.motion_ratio`` compares how much the generated frames change from one to the next
  with how much real frames do (1 = as lively as real video; 0 = frozen);
* **classification** on frozen codes of windows of ``lstm.n_past`` consecutive frames (every
  non-overlapping window of every annotated range): the action from the window's pose codes
  (concatenated in time order) and from its first frame's content code, fitted on the training
  persons and scored on the test persons (chance 1/6); the person from the same codes, fitted on
  the test persons' even-numbered ranges and scored on their odd ones (chance 1 / test persons).
  Each with the two-layer classifier and the linear probe of :mod:`.classification`. The person
  once more with each scenario held out in turn (:func:`person_across_scenarios`): what a code
  knows of the person beyond the place where the person was filmed.

Reading recorded runs back (what a run changed, seeds paired, the beta sweep, per-action means)
is :mod:`.kth_analysis`'s job; this module measures.
"""

from __future__ import annotations

import numpy as np
import torch

from .classification import chance_accuracy, classify, fit_classifier
from .config import ExperimentConfig
from .data.kth import ACTIONS, KTHClips
from .data.sweeps import ClipStarts
from .evaluate import frame_metrics, mean_over_chunks, prediction_metrics
from .models import evaluating
from .predict import rollout, set_bn_mode

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


def window_starts(bank: KTHClips, window: int) -> ClipStarts:
    """Every non-overlapping window of ``window`` frames of every range, in range order."""
    lengths = bank.lengths.cpu()
    counts = lengths // window
    sequence = torch.repeat_interleave(torch.arange(len(lengths)), counts)
    first = torch.cumsum(counts, 0) - counts
    start = (torch.arange(int(counts.sum())) - torch.repeat_interleave(first, counts)) * window
    return ClipStarts(sequence, start).to(bank.device)


@torch.no_grad()
def encode_windows(model, bank: KTHClips, window: int, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Frozen codes of every :func:`window_starts` window.

    Returns (N windows): ``pose`` ``(N, window * dp)`` (the window's pose codes in time order),
    ``content`` ``(N, dc)`` (its first frame's), and ``action``, ``person``, ``scenario``,
    ``range_index`` ``(N,)``.
    """
    device = next(model.parameters()).device
    windows = window_starts(bank, window)
    times = torch.arange(window, device=bank.device)
    pose, content = [], []
    with evaluating(model):
        for start in range(0, len(windows), batch_size):
            frames = bank.render(windows.subset(slice(start, start + batch_size)), times).to(device)
            pose.append(model.encode_pose(frames.flatten(0, 1)).reshape(len(frames), -1).cpu())
            content.append(model.encode_content(frames[:, 0])[0].flatten(1).cpu())
    seq = windows.sequence.cpu()
    out = {"pose": torch.cat(pose).numpy(), "content": torch.cat(content).numpy()}
    for name in ("action", "person", "scenario", "range_index"):
        out[name] = getattr(bank, name).cpu()[seq].numpy()
    return out


def classification_scores(model, train_bank: KTHClips, test_bank: KTHClips, cfg: ExperimentConfig) -> tuple[dict, object]:
    """Action and person from each code (module docstring), as results keys
    ``classification.{action,person}_from_{pose,content}`` (two-layer classifier) and
    ``probe.…`` (linear), the person from each code with the scored scenario held out
    (``…person_from_{pose,content}_across_scenarios``, :func:`person_across_scenarios`), plus the
    chance levels. Also returns the fitted action-from-pose
    classifier, for the generated frames."""
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


@torch.no_grad()
def decode_true_poses(model, observed: torch.Tensor, truth: torch.Tensor, bn_mode: str) -> torch.Tensor:
    """The decoder's ceiling: the frames decoded from the *true* future pose codes, with content
    and skips from the last observed frame (as in a rollout), the best any pose predictor could do
    with this encoder and decoder. ``observed`` ``(B, n_past, C, H, W)``, ``truth`` ``(B, T, C, H, W)``
    -> ``(B, T, C, H, W)``; the model's train/eval flag is restored."""
    was_training = model.training
    set_bn_mode(model, bn_mode)
    content, skips = model.encode_content(observed[:, -1])
    T = truth.shape[1]
    poses = model.encode_pose(truth.flatten(0, 1))
    decoded = model.decode(content.repeat_interleave(T, 0), [s.repeat_interleave(T, 0) for s in skips], poses)
    model.train(was_training)
    return decoded.view_as(truth)


def _oracle_metrics(ceiling: torch.Tensor, truth: torch.Tensor) -> dict[str, np.ndarray]:
    """PSNR/SSIM of :func:`decode_true_poses`' frames. Keys ``oracle_psnr``, ``oracle_ssim``, each ``(T,)``."""
    scores = frame_metrics(ceiling, truth)
    return {"oracle_psnr": scores["psnr"], "oracle_ssim": scores["ssim"]}


def _summary(per_step: dict[str, list[float]]) -> dict[str, float]:
    """Each per-step curve's mean over the steps (``<key>_mean``), and ``steps_beating_copy_last``:
    the share of the steps after :data:`FIRST_FEW` where DrNet's mean PSNR beats copy-last's."""
    out = {f"{key}_mean": round(float(np.mean(values)), 4) for key, values in per_step.items()}
    later = slice(FIRST_FEW, None)
    out["steps_beating_copy_last"] = float(np.mean(
        np.array(per_step["psnr"][later]) > np.array(per_step["copy_last_psnr"][later])))
    return out


def _motion(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute change between consecutive frames ``(B, T, C, S, S)`` -> ``(B, T-1)``."""
    return (frames[:, 1:] - frames[:, :-1]).abs().flatten(2).mean(-1)


@torch.no_grad()
def predict_and_roll_out(model, lstm, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig,
                         action_classifier, keep: int = 4, chunk: int = 32) -> tuple[dict, dict]:
    """Roll every clip of ``clips`` out to ``eval.rollout_steps`` frames and score it.

    Returns ``(metrics, samples)``. Metrics: per-step ``prediction.{psnr,ssim}``,
    ``prediction.copy_last_{psnr,ssim}`` and ``prediction.oracle_{psnr,ssim}`` (decoded from the
    true future poses: the decoder's ceiling; dicts step -> mean over clips, steps 1..metric_steps),
    their means, ``prediction.steps_beating_copy_last`` (share of steps after :data:`FIRST_FEW`
    where DrNet's PSNR is higher), ``prediction.by_action`` (action name -> clips, mean PSNR/SSIM of
    DrNet, copy-last and the ceiling, and that share, over that action's clips),
    ``prediction.error_split`` (where the ceiling and copy-last go wrong, :func:`ceiling_error_split`'s
    groups, from the same decoded frames), ``rollout.action_accuracy`` and ``rollout.motion_ratio``
    (dicts checkpoint step -> value; module docstring). ``samples``: the first ``keep`` clips'
    observed, generated and true frames (the truth stops at ``metric_steps``).
    """
    e, n_past, window = cfg.eval, cfg.lstm.n_past, cfg.lstm.n_past
    device = next(model.parameters()).device
    horizon = e.metric_steps
    checkpoints = [s for s in e.rollout_checkpoints if window <= s <= e.rollout_steps]
    scores, hits, motion, real_motion, samples = [], {s: 0.0 for s in checkpoints}, {s: [] for s in checkpoints}, [], {}
    splits = []   # (action, error_split of one clip's ceiling)
    for start in range(0, len(clips), chunk):
        part = clips.subset(slice(start, start + chunk))
        observed = bank.render(part, torch.arange(n_past, device=bank.device)).to(device)
        truth = bank.render(part, torch.arange(n_past, n_past + horizon, device=bank.device)).to(device)
        generated = rollout(model, lstm, observed, e.rollout_steps, cfg.lstm.bn_mode)
        labels = bank.action[part.sequence].cpu().numpy()
        for action in np.unique(labels):   # scored per action, so the per-action means come for free
            rows = torch.as_tensor(labels == action, device=device)
            ceiling = decode_true_poses(model, observed[rows], truth[rows], cfg.lstm.bn_mode)
            scores.append((int(action), int(rows.sum()), {
                **prediction_metrics(observed[rows], generated[rows, :horizon], truth[rows]),
                **_oracle_metrics(ceiling, truth[rows])}))
            splits += [(int(action), split) for split in _clip_splits(ceiling, observed[rows], truth[rows])]
        real_motion.append(_motion(truth).cpu())
        with evaluating(model):
            poses = model.encode_pose(generated.flatten(0, 1)).view(len(part), e.rollout_steps, -1).cpu()
        for s in checkpoints:
            guess = action_classifier.predict(poses[:, s - window:s].flatten(1).numpy())
            hits[s] += float((guess == labels).sum())
            motion[s].append(_motion(generated[:, s - window:s]).cpu())
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
    real = float(torch.cat(real_motion).mean())
    metrics["rollout.action_accuracy"] = {s: hits[s] / len(clips) for s in checkpoints}
    metrics["rollout.motion_ratio"] = {s: float(torch.cat(motion[s]).mean()) / real for s in checkpoints}
    metrics["prediction.error_split"] = _grouped_error_split(splits)
    return metrics, samples


# The stand-in's actions, as KTH groups them: the person crosses the field, or stays on the spot
# and moves the arms (where the last observed frame is nearly the next one).
MOVING = ("walking", "jogging", "running")
IN_PLACE = ("boxing", "handwaving", "handclapping")
assert sorted(MOVING + IN_PLACE) == sorted(ACTIONS), "every action belongs to one group"


def action_group(action: int) -> str:
    """``"moving"`` or ``"in place"``: the group of the action with index ``action`` in :data:`ACTIONS`."""
    return "moving" if ACTIONS[action] in MOVING else "in place"


# A pixel "changes" when it moves by more than this from the last observed frame to the true one
# (intensities in [0, 1]); below it the difference is the video's noise and compression.
CHANGE_THRESHOLD = 0.05


def error_split(decoded: torch.Tensor, last: torch.Tensor, truth: torch.Tensor,
                threshold: float = CHANGE_THRESHOLD) -> dict[str, float]:
    """Where two guesses of the future frames go wrong: the pixels that change from the last
    observed frame to the true one (``|truth - last| > threshold``) and the ones that stay.

    Args:
        decoded: ``(B, T, C, H, W)`` frames to score (e.g. the decoder's ceiling).
        last: ``(B, C, H, W)`` the last observed frame (the copy-last guess).
        truth: ``(B, T, C, H, W)`` the true future frames.
    Returns:
        ``changing_share`` (fraction of pixels that change) and, for ``decoded`` and ``copy_last``,
        their squared error summed over the ``static`` and over the ``changing`` pixels, each
        divided by *all* pixels: the two parts add up to the mean squared error.
    """
    last = last.unsqueeze(1).expand_as(truth)
    changing = (truth - last).abs() > threshold
    n = truth.numel()
    out = {"changing_share": float(changing.sum()) / n}
    for name, guess in (("decoded", decoded), ("copy_last", last)):
        err = (guess - truth) ** 2
        out[f"{name}_static"] = float(err[~changing].sum()) / n
        out[f"{name}_changing"] = float(err[changing].sum()) / n
    return out


def ceiling_error_split(model, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig, chunk: int = 32
                        ) -> dict[str, dict[str, float]]:
    """:func:`error_split` of the decoder's ceiling (:func:`decode_true_poses`) against copy-last,
    over the first ``eval.metric_steps`` predicted steps of ``clips``: for ``all`` clips and the
    :data:`MOVING` and :data:`IN_PLACE` actions' clips (every clip has as many pixels, so a group's
    value is the mean over its clips)."""
    splits = []
    for part, observed, truth, ceiling in _ceiling_chunks(model, bank, clips, cfg, chunk):
        splits += zip(bank.action[part.sequence].tolist(), _clip_splits(ceiling, observed, truth))
    return _grouped_error_split(splits)


def _ceiling_chunks(model, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig, chunk: int):
    """``clips`` in chunks of ``chunk``: ``(part, observed, truth, ceiling)``, the observed
    ``(b, n_past, ...)`` and true ``(b, eval.metric_steps, ...)`` frames on the model's device and
    the frames decoded from the true poses (:func:`decode_true_poses`)."""
    device = next(model.parameters()).device
    n_past, horizon = cfg.lstm.n_past, cfg.eval.metric_steps
    for start in range(0, len(clips), chunk):
        part = clips.subset(slice(start, start + chunk))
        observed = bank.render(part, torch.arange(n_past, device=bank.device)).to(device)
        truth = bank.render(part, torch.arange(n_past, n_past + horizon, device=bank.device)).to(device)
        yield part, observed, truth, decode_true_poses(model, observed, truth, cfg.lstm.bn_mode)


def _clip_splits(ceiling: torch.Tensor, observed: torch.Tensor, truth: torch.Tensor) -> list[dict[str, float]]:
    """:func:`error_split` of each clip: ``ceiling``/``truth`` ``(B, T, C, H, W)``, ``observed`` ``(B, n_past, ...)``."""
    return [error_split(ceiling[i:i + 1], observed[i:i + 1, -1], truth[i:i + 1]) for i in range(len(truth))]


def _grouped_error_split(splits: list[tuple[int, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per-clip ``(action index, split)`` pairs averaged over ``all`` clips and over the :data:`MOVING`
    and :data:`IN_PLACE` actions' clips (every clip has as many pixels, so the mean over clips is
    the group's value); groups without clips are left out."""
    groups = {"all": [s for _, s in splits],
              **{g: [s for a, s in splits if action_group(a) == g] for g in ("moving", "in place")}}
    return {group: {key: float(np.mean([s[key] for s in rows])) for key in rows[0]}
            for group, rows in groups.items() if rows}



def _scenario_groups(bank: KTHClips, part: ClipStarts) -> list[tuple[int, str]]:
    """Each clip's ``(scenario, action group)``: the groups the by-scenario measurements report."""
    return [(int(d), action_group(a))
            for d, a in zip(bank.scenario[part.sequence].tolist(), bank.action[part.sequence].tolist())]


def ceiling_by_scenario(model, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig, chunk: int = 32
                        ) -> dict[str, dict[str, dict[str, float]]]:
    """The decoder's ceiling (:func:`decode_true_poses`) and copy-last per scenario and action group:
    whether the ceiling's deficit on the in-place clips depends on the place (the stand-in's d1-d3
    are textured outdoor scenes, d2 zooming; d4 is a flat indoor wall).

    Returns ``{"d<k>": {"moving" | "in place": {"clips", "oracle_psnr_mean", "oracle_ssim_mean",
    "copy_last_psnr_mean", "copy_last_ssim_mean"}}}``: means over the first ``eval.metric_steps``
    predicted steps and over the group's clips of ``clips``; groups without clips are left out.
    """
    groups: dict[tuple[int, str], list] = {}
    for part, observed, truth, ceiling in _ceiling_chunks(model, bank, clips, cfg, chunk):
        keys = _scenario_groups(bank, part)
        for key in set(keys):
            rows = torch.tensor([k == key for k in keys], device=ceiling.device)
            m = prediction_metrics(observed[rows], ceiling[rows], truth[rows])   # its psnr/ssim: the ceiling's
            groups.setdefault(key, []).append((int(rows.sum()), {
                "oracle_psnr": m["psnr"], "oracle_ssim": m["ssim"],
                "copy_last_psnr": m["copy_last_psnr"], "copy_last_ssim": m["copy_last_ssim"]}))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (d, group), chunks in sorted(groups.items()):
        per_step = mean_over_chunks(chunks, "")
        out.setdefault(f"d{d}", {})[group] = {"clips": sum(n for n, _ in chunks),
                                              **{f"{k}_mean": float(np.mean(v)) for k, v in per_step.items()}}
    return out


@torch.no_grad()
def self_reconstruction_by_scenario(model, bank: KTHClips, clips: ClipStarts, cfg: ExperimentConfig,
                                    chunk: int = 32) -> dict[str, dict[str, dict[str, float]]]:
    """The decoder redrawing the frame it was given: each clip's last observed frame decoded from
    its *own* content code, skips and pose code (BatchNorm as ``lstm.bn_mode``), per scenario and
    action group. No pose is transferred and none predicted, so this bounds the ceiling
    (:func:`decode_true_poses`) from above and tells the autoencoder's fidelity from the rest.

    Returns ``{"d<k>": {"moving" | "in place": {"clips", "self_psnr_mean", "offset_mean",
    "offset_share"}}}``: mean PSNR (:func:`frame_metrics`), the mean signed brightness offset of
    the decoded frame (decoded - true averaged over its pixels, intensities in [0, 1]) and the share
    of the squared error that this per-frame offset accounts for (mean offset² / mean MSE).
    """
    device = next(model.parameters()).device
    was_training = model.training
    set_bn_mode(model, cfg.lstm.bn_mode)
    groups: dict[tuple[int, str], list] = {}
    for start in range(0, len(clips), chunk):
        part = clips.subset(slice(start, start + chunk))
        frame = bank.render(part, torch.tensor([cfg.lstm.n_past - 1], device=bank.device)).to(device)[:, 0]
        content, skips = model.encode_content(frame)
        decoded = model.decode(content, skips, model.encode_pose(frame))
        psnr = frame_metrics(decoded[None], frame[None])["psnr"]   # the frames as the steps of one clip: one PSNR each
        offset = (decoded - frame).flatten(1).mean(1).tolist()
        mse = ((decoded - frame) ** 2).flatten(1).mean(1).tolist()
        for i, key in enumerate(_scenario_groups(bank, part)):
            groups.setdefault(key, []).append((psnr[i], offset[i], mse[i]))
    model.train(was_training)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (d, group), rows in sorted(groups.items()):
        psnr, offset, mse = (np.array(col) for col in zip(*rows))
        out.setdefault(f"d{d}", {})[group] = {"clips": len(rows), "self_psnr_mean": float(psnr.mean()),
                                              "offset_mean": float(offset.mean()),
                                              "offset_share": float((offset ** 2).mean() / mse.mean())}
    return out
