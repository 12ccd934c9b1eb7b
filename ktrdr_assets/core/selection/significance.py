"""Is an out-of-fold accuracy more than luck? Naive baselines on the same rows and an exact binomial test.

Baselines, each scored on exactly the rows the model is scored on:

- majority: always predict the most frequent true class of those rows (ties: the lower code). It knows
  the evaluated rows' class shares, which no forecaster does, so it is a strict bar.
- persistence: predict the last label already known at bar t. A label of bar s looks `lookahead` bars
  ahead, so it is known once bar s + lookahead has closed; the label of bar t - lookahead - 1 is the last
  one known with a bar to spare. Positions are rows of the (contiguous) features frame.

The test: one-sided exact binomial test of k correct out of n against the best baseline's accuracy p0
(H1: accuracy > p0), `scipy.stats.binomtest`. Labels look `lookahead` bars ahead, so neighbouring rows'
outcomes are not independent: a model right on one bar of an up-move is right on the next bars too. A
test that counted every row as an independent trial would call far too much luck an edge. So n is
deflated to an effective sample size n_eff = n / VIF, where VIF = 1 + 2 sum_k rho_k is the variance
inflation of a mean of the correctness indicator (rho_k its lag-k autocorrelation within each contiguous
block of rows, summed by Geyer's initial positive sequence, the estimator MCMC uses for effective sample
sizes: it reaches as far as the correlation does, which a fixed lag window does not), floored at 1;
k_eff = round(acc x n_eff). The test and the 95 % Wilson interval are computed on (k_eff, n_eff). With
independent rows VIF is about 1 and this is the plain exact test.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest, norm

from ktrdr_assets.core.data.signals import CLASS_NAMES, N_CLASSES


@dataclass(frozen=True)
class Significance:
    """The evidence that an accuracy beats the best naive baseline on the same rows."""

    n: int  # rows scored
    correct: int
    accuracy: float
    majority_class: str
    majority_accuracy: float
    persistence_accuracy: float | None  # None when no row had a known earlier label
    baseline: float  # the best of the two
    baseline_name: str
    variance_inflation: float
    n_effective: int
    p_value: float
    wilson_low: float
    wilson_high: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def majority_accuracy(y_true: np.ndarray) -> tuple[str, float]:
    """(class name, share) of the most frequent class of `y_true` (ties: the lower code)."""
    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=N_CLASSES)
    if counts.sum() == 0:
        raise ValueError("majority baseline of no rows")
    best = int(np.argmax(counts))
    return CLASS_NAMES[best], float(counts[best] / counts.sum())


def persistence_predictions(all_labels: np.ndarray, positions: np.ndarray, lookahead: int) -> np.ndarray:
    """The persistence forecast of the rows at `positions` of the features frame whose labels are
    `all_labels`: the label at position - lookahead - 1, or -1 where that is before the first row."""
    positions = np.asarray(positions, dtype=np.int64)
    source = positions - lookahead - 1
    out = np.full(len(positions), -1, dtype=np.int64)
    known = source >= 0
    out[known] = np.asarray(all_labels, dtype=np.int64)[source[known]]
    return out


def _autocorrelations(x: np.ndarray, max_lag: int, blocks: np.ndarray) -> np.ndarray:
    """rho_0..rho_max_lag of `x`, each lag over the pairs of rows within one block only."""
    centred = x - x.mean()
    var = float(np.mean(centred**2))
    rho = np.zeros(max_lag + 1)
    rho[0] = 1.0
    for k in range(1, max_lag + 1):
        same = blocks[k:] == blocks[:-k]
        pairs = int(same.sum())
        if pairs == 0:
            break
        rho[k] = float(np.sum(centred[k:][same] * centred[:-k][same]) / pairs / var)
    return rho


def variance_inflation(correct: np.ndarray, blocks: np.ndarray | None = None, max_lag: int | None = None) -> float:
    """VIF of the mean of the 0/1 series `correct`: 1 + 2 sum_k rho_k, summed by Geyer's initial positive
    sequence (pairs rho_2m + rho_2m+1 while they are positive and not increasing), which adapts to how far
    the correlation reaches; `blocks` labels contiguous runs of rows (walk-forward folds): lags never pair
    rows of different blocks. Floored at 1."""
    x = np.asarray(correct, dtype=np.float64)
    n = len(x)
    if n < 4 or float(np.var(x)) <= 0:
        return 1.0
    blocks = np.zeros(n, dtype=np.int64) if blocks is None else np.asarray(blocks)
    max_lag = min(n // 3, 1000) if max_lag is None else min(max_lag, n - 1)
    rho = _autocorrelations(x, max_lag | 1, blocks) if max_lag >= 1 else np.ones(1)
    total, previous = 0.0, np.inf
    for m in range((len(rho)) // 2):
        pair = rho[2 * m] + rho[2 * m + 1]
        if pair <= 0:
            break
        previous = min(pair, previous)
        total += previous
    return max(1.0, 2.0 * total - 1.0)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n."""
    if n <= 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_significance(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    persistence: np.ndarray | None,
    *,
    blocks: np.ndarray | None = None,
) -> Significance:
    """Accuracy of `y_pred` against the best of the majority and persistence baselines on the same rows.

    `persistence`: the persistence forecast per row (-1 where unknown; those rows count as wrong for it),
    or None. `blocks`: contiguous runs of rows for the autocorrelation (see `variance_inflation`).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError(
            f"accuracy_significance: y_true {y_true.shape} and y_pred {y_pred.shape} must be equal, 1-D, > 0"
        )
    n = len(y_true)
    hits = y_pred == y_true
    correct = int(hits.sum())
    accuracy = correct / n
    majority_class, majority = majority_accuracy(y_true)
    persistence_acc = None
    if persistence is not None:
        persistence = np.asarray(persistence, dtype=np.int64)
        if persistence.shape != y_true.shape:
            raise ValueError(f"persistence forecast has shape {persistence.shape}, expected {y_true.shape}")
        if (persistence >= 0).any():
            persistence_acc = float(np.mean(persistence == y_true))
    if persistence_acc is not None and persistence_acc > majority:
        baseline, baseline_name = persistence_acc, "persistence"
    else:
        baseline, baseline_name = majority, f"majority ({majority_class})"
    vif = variance_inflation(hits, blocks)
    n_eff = max(1, int(math.floor(n / vif)))
    k_eff = min(n_eff, int(round(accuracy * n_eff)))
    p_value = float(binomtest(k_eff, n_eff, min(max(baseline, 1e-12), 1 - 1e-12), alternative="greater").pvalue)
    low, high = wilson_interval(k_eff, n_eff)
    return Significance(
        n=n,
        correct=correct,
        accuracy=accuracy,
        majority_class=majority_class,
        majority_accuracy=majority,
        persistence_accuracy=persistence_acc,
        baseline=baseline,
        baseline_name=baseline_name,
        variance_inflation=vif,
        n_effective=n_eff,
        p_value=p_value,
        wilson_low=low,
        wilson_high=high,
    )
