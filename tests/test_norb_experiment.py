"""The NORB experiment's scoring: which classifier's accuracy lands under which results key.

NORB's Table-1 numbers are ``classification.*`` (the two-layer MLP) and ``probe.*`` (the linear
probe); a swap between the two would mislabel the chapter's headline numbers without failing
anything else, so these tests pin the mapping and the claim keys it feeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from drnet_lib import classification
from drnet_lib import norb_experiment as ne
from drnet_lib.claims import NORB_CLAIMS
from drnet_lib.config import get_config

from conftest import untrained_run


def _codes(content: np.ndarray, pose: np.ndarray, category: np.ndarray) -> dict[str, np.ndarray]:
    """An ``encode_sweeps``-shaped dict of given codes (score_variant reads content, pose, category)."""
    return {"content": content, "pose": pose, "category": category}


def test_score_variant_puts_each_classifier_of_each_code_under_its_own_name(monkeypatch):
    """A stub classifier answers a distinct accuracy per (code, kind): each must come back under
    exactly that code and kind, and flat_metrics must put mlp under classification.* and linear
    under probe.*."""
    cfg = get_config("norb", "smoke")
    # code identity is read back from the codes' values: content rows are all 1, pose rows all 2
    train = _codes(np.ones((6, 3)), np.full((6, 2), 2.0), np.array([0, 0, 0, 1, 2, 3]))
    test = _codes(np.ones((5, 3)), np.full((5, 2), 2.0), np.array([1, 1, 1, 0, 2]))
    banks = {"train": object(), "test": object()}
    monkeypatch.setattr(ne, "encode_sweeps", lambda model, bank: train if bank is banks["train"] else test)
    answers = {("content", "mlp"): 0.11, ("content", "linear"): 0.22, ("pose", "mlp"): 0.33, ("pose", "linear"): 0.44}
    seen = []

    def labelled_classify(x_train, y_train, x_test, y_test, kind, hidden, max_iter, seed):
        code = {1.0: "content", 2.0: "pose"}[float(x_train[0, 0])]
        # the classifier must be fitted on training codes and scored on test codes of the same code
        assert len(x_train) == 6 and len(x_test) == 5 and float(x_test[0, 0]) == float(x_train[0, 0])
        assert (hidden, max_iter, seed) == (cfg.eval.classifier_hidden, cfg.eval.classifier_max_iter, cfg.seed)
        seen.append((code, kind))
        return answers[code, kind]

    monkeypatch.setattr(classification, "classify", labelled_classify)
    scores = ne.score_variant(cfg, None, banks["train"], banks["test"])

    assert sorted(seen) == sorted(answers)
    assert {code: scores[code] for code in ("content", "pose")} == {
        "content": {"mlp": 0.11, "linear": 0.22}, "pose": {"mlp": 0.33, "linear": 0.44}}
    # chance answers the majority *training* class (0), 1 of the 5 test labels; the test split's own
    # majority (1) would give 0.6
    assert scores["chance"] == pytest.approx(0.2)
    assert ne.flat_metrics(scores, "adv") == {
        "classification.adv.content": 0.11, "probe.adv.content_to_category": 0.22,
        "classification.adv.pose": 0.33, "probe.adv.pose_to_category": 0.44}
    assert ne.flat_metrics(scores) == {
        "classification.content": 0.11, "probe.content_to_category": 0.22,
        "classification.pose": 0.33, "probe.pose_to_category": 0.44}


def test_classification_keys_carry_the_mlp_that_reads_a_code_the_linear_probe_cannot():
    """With the real classifiers: a content code whose categories are concentric rings (no line
    separates them) is read by the MLP and not by the linear probe, so classification.content
    (MLP) must be high and probe.content_to_category (linear) low; a noise pose code stays low."""
    rng = np.random.default_rng(0)

    def rings(n):
        category = rng.integers(0, 5, n)
        angle = rng.uniform(0, 2 * np.pi, n)
        radius = category + 1 + rng.normal(0, 0.1, n)
        return _codes(np.c_[radius * np.cos(angle), radius * np.sin(angle)], rng.normal(size=(n, 3)), category)

    train, test = rings(2000), rings(500)
    cfg = get_config("norb", "smoke", overrides={"eval.classifier_hidden": 64, "eval.classifier_max_iter": 300})
    scores = classification.category_scores(train, test, cfg.eval.classifier_hidden, cfg.eval.classifier_max_iter,
                                            cfg.seed)
    metrics = ne.flat_metrics(scores)
    assert metrics["classification.content"] > 0.9
    assert metrics["probe.content_to_category"] < 0.5
    # pose is noise: neither classifier should name the category much above chance (0.2)
    assert metrics["classification.pose"] < 0.35 and metrics["probe.pose_to_category"] < 0.35


def test_the_chapters_two_variants_provide_every_norb_claim_key():
    """The chapter records flat_metrics of the "adv" and "noadv" variants; every NORB claim reads
    one of those keys, so a renamed key would silently drop a claim from the verdicts."""
    scores = {"content": {"mlp": 0.9, "linear": 0.8}, "pose": {"mlp": 0.3, "linear": 0.2}}
    metrics = {**ne.flat_metrics(scores, "adv"), **ne.flat_metrics(scores, "noadv")}
    missing = [c.key for c in NORB_CLAIMS if c.key not in metrics]
    assert not missing
    # and the classification claims are about the MLP (Table 1's two-layer classifier)
    assert all(metrics[c.key] == scores[c.key.split(".")[-1]]["mlp"] for c in NORB_CLAIMS
               if c.key.startswith("classification."))


def test_recorded_metrics_of_a_norb_run_scores_one_unnamed_variant(tmp_path, monkeypatch):
    """``drnet train --record`` on NORB (record.recorded_metrics) trains one variant: it records
    score_variant's accuracies without a variant infix (classification.{content,pose}, probe.*,
    classification.chance), scored on the test split."""
    from drnet_lib.record import recorded_metrics

    cfg, trainer = untrained_run("norb", tmp_path)
    bank = trainer.bank
    calls = []
    real_score_variant = ne.score_variant

    def spy(cfg_, model_, train_bank, test_bank):   # the real scoring, its answer kept
        calls.append((train_bank, test_bank, real_score_variant(cfg_, model_, train_bank, test_bank)))
        return calls[-1][2]

    monkeypatch.setattr(ne, "score_variant", spy)
    metrics = recorded_metrics(cfg, trainer, None)
    ((train_bank, test_bank, scores),) = calls
    # scored on the training bank's codes against the held-out instances of the test split
    assert train_bank is bank and test_bank is not bank
    assert set(test_bank.instance.tolist()).isdisjoint(bank.instance.tolist())
    expected = {**ne.flat_metrics(scores), "classification.chance": scores["chance"]}
    assert {k: metrics[k] for k in expected} == expected
    assert not any(k.startswith(("classification.adv", "classification.noadv")) for k in metrics)
