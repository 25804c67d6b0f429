"""Classifiers on frozen DrNet codes: what does each code know about the object?

The paper's NORB table ("Table 1"; number and values recalled, not read) trains a two-layer classifier to name
the object category from the content code and from the pose code of a frozen DrNet, with and
without the adversarial loss. A good factorisation gives high accuracy from content and chance
(0.2) from pose. We fit both classifiers on codes of the *training* instances and score them on
the *test* instances (different toys), so the score is about the category, not the instance:

* ``mlp``: one hidden ReLU layer (the paper's "two-layer classifier"; width and schedule are ours,
  the paper does not give them), scikit-learn's MLPClassifier with early stopping;
* ``linear``: standardised logistic regression, the linear probe used throughout the book.

The book's other probes are built here too, so that every chapter fits the same ones: the linear
probe (:func:`linear_probe`), the ridge probe of continuous factors (:func:`ridge_r2`: digit
positions, chair azimuths) and the chance level (:func:`chance_accuracy`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import confusion_matrix, r2_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .data.sweeps import SweepVideos
from .models import evaluating

CLASSIFIERS = ("mlp", "linear")


def encode_sweeps(model, bank: SweepVideos, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Content and pose codes of every frame of every sequence in ``bank``, as numpy arrays.

    Returns (N = sequences x azimuths rows, sequence-major): ``content`` (N, dc), ``pose`` (N, dp),
    each of the bank's factors (e.g. ``category``, ``instance``, ...) and ``azimuth``, all (N,).
    """
    device = next(model.parameters()).device
    factors = bank.all_sweeps()
    times = torch.arange(bank.num_azimuths, device=bank.device)
    content, pose = [], []
    with evaluating(model):
        for start in range(0, len(factors), batch_size):
            x = bank.render(factors.subset(slice(start, start + batch_size)), times)
            x = x.flatten(0, 1).to(device)                              # (b*A, 1, S, S)
            content.append(model.encode_content(x)[0].flatten(1).cpu())
            pose.append(model.encode_pose(x).flatten(1).cpu())
    A = bank.num_azimuths
    out = {"content": torch.cat(content).numpy(), "pose": torch.cat(pose).numpy()}
    for name in bank.factor_names:
        out[name] = getattr(bank, name).cpu().repeat_interleave(A).numpy()
    out["azimuth"] = np.tile(np.arange(A), len(bank))
    return out


def linear_probe():
    """The linear probe: standardise, then logistic regression (L-BFGS, at most 1000 steps)."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def make_classifier(kind: str, hidden: int = 256, max_iter: int = 200, seed: int = 0):
    """A scikit-learn pipeline: standardise, then the ``kind`` of classifier (see module doc).
    ``hidden``, ``max_iter`` (epochs) and ``seed`` are the two-layer classifier's."""
    if kind == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(hidden,), max_iter=max_iter, early_stopping=True,
            validation_fraction=0.1, n_iter_no_change=10, random_state=seed))
    if kind == "linear":
        return linear_probe()
    raise ValueError(f"unknown classifier {kind!r}; choose one of {CLASSIFIERS}")


def fitted(estimator, x_train, y_train):
    """``estimator`` fitted on ``(x_train, y_train)``, with scikit-learn's convergence warnings
    silenced: a probe that has not fully converged is still a probe (the chapters say so)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(x_train, y_train)


def fit_classifier(x_train, y_train, kind: str, hidden: int = 256, max_iter: int = 200, seed: int = 0):
    """A ``kind`` classifier (:func:`make_classifier`) fitted on ``(x_train, y_train)``."""
    return fitted(make_classifier(kind, hidden, max_iter, seed), x_train, y_train)


def classify(x_train, y_train, x_test, y_test, kind: str, hidden: int = 256, max_iter: int = 200,
             seed: int = 0) -> float:
    """Test accuracy of a ``kind`` classifier fitted on ``(x_train, y_train)``."""
    return float(fit_classifier(x_train, y_train, kind, hidden, max_iter, seed).score(x_test, y_test))


def category_scores(train: dict, test: dict, hidden: int = 256, max_iter: int = 200,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """Object-category accuracy on test instances: ``{"content"|"pose": {"mlp"|"linear": acc}}``.

    ``train`` and ``test`` are :func:`encode_sweeps` outputs of the two splits.
    """
    return {code: {kind: classify(train[code], train["category"], test[code], test["category"],
                                  kind, hidden, max_iter, seed)
                   for kind in CLASSIFIERS}
            for code in ("content", "pose")}


def ridge_r2(x_train, y_train, x_test, y_test) -> float:
    """Test R² (averaged over the target's columns) of a standardised ridge regression whose
    penalty RidgeCV picks from 1e-3..1e3 on the training rows. ``x``: (N, features); ``y``: (N,)
    or (N, targets). 0 means no better than the test targets' mean, 1 a perfect read-out."""
    reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 7))).fit(x_train, y_train)
    return float(r2_score(y_test, reg.predict(x_test), multioutput="uniform_average"))


def chance_accuracy(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Test accuracy of always answering the most frequent training label (0.2 on NORB; 1 / chairs
    on the chairs' balanced split). Labels ``(N,)``, or ``(N, slots)`` with one answer per slot
    (Moving MNIST's digits), averaged over all N * slots answers."""
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    if train_labels.shape[1:] != test_labels.shape[1:]:   # broadcasting would score every slot against one
        raise ValueError(f"training labels {train_labels.shape} and test labels {test_labels.shape} "
                         "have different slots")
    majority = [np.bincount(column).argmax() for column in train_labels.reshape(len(train_labels), -1).T]
    return float(np.mean(test_labels.reshape(len(test_labels), -1) == np.array(majority)))


def confusion_shares(classifier, x_test, y_test, names: list[str]) -> dict[str, dict[str, float]]:
    """Where a fitted classifier's answers go: ``{true name: {predicted name: share of that true
    class's test samples}}`` (scikit-learn's confusion matrix, each row normalised to sum to 1),
    for the classes ``names[k]`` (label k) present in ``y_test``."""
    labels = list(range(len(names)))
    shares = confusion_matrix(y_test, classifier.predict(x_test), labels=labels, normalize="true")
    present = set(np.unique(y_test).tolist())
    return {names[i]: {names[j]: float(shares[i, j]) for j in labels} for i in labels if i in present}

