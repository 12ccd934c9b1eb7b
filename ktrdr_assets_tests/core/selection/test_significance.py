"""Baselines, the exact binomial test and its autocorrelation deflation, checked against known answers, and
calibrated: a forecaster with no edge on persistent labels is called significant at most about alpha of
the time, which the naive test (every row independent) is not."""

import numpy as np
import pytest
from scipy.stats import binomtest

from ktrdr_assets.core.selection.significance import (
    accuracy_significance,
    majority_accuracy,
    persistence_predictions,
    variance_inflation,
    wilson_interval,
)


def test_majority_and_persistence_baselines():
    assert majority_accuracy(np.array([1, 1, 2, 0, 1])) == ("HOLD", 0.6)
    assert majority_accuracy(np.array([0, 2, 2, 0])) == ("SELL", 0.5)  # tie: the lower code
    labels = np.array([0, 1, 2, 2, 1, 0, 0, 1])
    # lookahead 2: the label known at row t is the label of row t - 3
    assert persistence_predictions(labels, np.array([2, 3, 4, 7]), 2).tolist() == [-1, 0, 1, 1]


def test_wilson_interval_known_values():
    low, high = wilson_interval(80, 100)
    assert (low, high) == pytest.approx((0.7112, 0.8666), abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_independent_rows_give_the_plain_exact_test():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    pred = np.where(rng.random(2000) < 0.45, y, (y + 1) % 3)  # right 45 % of the time, no autocorrelation
    sig = accuracy_significance(y, pred, None)
    assert sig.variance_inflation < 1.2
    k_eff = round(sig.accuracy * sig.n_effective)
    assert sig.p_value == pytest.approx(binomtest(k_eff, sig.n_effective, sig.majority_accuracy, "greater").pvalue)
    assert sig.p_value < 1e-6 and sig.baseline_name.startswith("majority")


def test_persistence_wins_when_labels_persist():
    y = np.repeat(np.array([0, 1, 2, 1] * 25), 10)  # runs of 10 bars
    pers = persistence_predictions(y, np.arange(len(y)), lookahead=2)
    sig = accuracy_significance(y, np.ones_like(y), pers)
    assert sig.baseline_name == "persistence" and sig.baseline == pytest.approx(sig.persistence_accuracy)
    assert sig.persistence_accuracy > sig.majority_accuracy


def test_variance_inflation_of_runs_and_blocks():
    runs = np.repeat(np.arange(100) % 2, 10).astype(float)  # 0/1 in runs of 10
    assert variance_inflation(runs) > 5
    assert variance_inflation(np.ones(10)) == 1.0
    # lags never pair rows of different blocks: with every row its own block nothing is correlated
    assert variance_inflation(runs, np.arange(len(runs))) == 1.0


def _persistent_labels(rng, n: int, run: int) -> np.ndarray:
    return np.repeat(rng.integers(0, 3, n // run + 1), run)[:n]


def test_no_edge_on_persistent_labels_is_rarely_significant_and_the_naive_test_would_be_fooled():
    """200 series of labels in runs of ~20 bars (as 20-bar look-ahead labels are) against a forecaster with
    its own independent runs: no edge. The deflated test calls at most ~alpha of them significant."""
    rng = np.random.default_rng(1)
    alpha, n = 0.05, 1500
    deflated = naive = 0
    for _ in range(200):
        y = _persistent_labels(rng, n, 20)
        pred = _persistent_labels(rng, n, 20)
        # a baseline the forecaster can beat by luck: the share of its own class mix, not the majority
        sig = accuracy_significance(y, pred, None)
        deflated += (
            sig.accuracy > 1 / 3
            and binomtest(round(sig.accuracy * sig.n_effective), sig.n_effective, 1 / 3, "greater").pvalue < alpha
        )
        naive += binomtest(int((y == pred).sum()), n, 1 / 3, "greater").pvalue < alpha
    assert deflated / 200 <= 0.06  # alpha 5 %, 200 draws
    assert naive / 200 > 0.2  # what counting every row as an independent trial would let through


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="must be equal"):
        accuracy_significance(np.zeros(3), np.zeros(4), None)
    with pytest.raises(ValueError, match="persistence forecast has shape"):
        accuracy_significance(np.zeros(3), np.zeros(3), np.zeros(2))
