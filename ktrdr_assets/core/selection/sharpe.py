"""Probabilistic and deflated Sharpe ratios (Bailey and López de Prado, 2012 and 2014), and an honest count
of the trials behind a symbol's choice.

All Sharpe ratios here are per period (not annualized): SR = mean(r) / std(r, ddof=1) of the per-period
net returns r of a backtest over n periods.

- PSR(SR*) = Phi( (SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2) ), with g3 the skewness
  and g4 the (non-excess) kurtosis of r: the probability that the true Sharpe ratio exceeds SR*, given
  the sample's length and its non-normal returns.
- DSR = PSR(SR0), SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))): the Sharpe
  ratio that the best of N unskilled trials would reach by luck (gamma = Euler-Mascheroni), V the
  variance of the trials' Sharpe ratios. V is the variance across the candidates' out-of-fold Sharpe
  ratios, never below the sampling variance of one Sharpe estimate under the null,
  (1 - g3 SR + (g4 - 1) / 4 SR^2) / (n - 1): with few candidates the cross-trial variance alone is a
  poor estimate, and trials whose Sharpe ratios are not recorded (experiments, Optuna) are counted in
  N but have no value to add to V.

Trials (`count_trials`): every model type trained for the symbol in this run, plus every experiment run
and every Optuna trial recorded for that symbol in the warehouse (`experiments/*/experiment.json` with
its `summary.csv`, `hpo/*/study.json`): each was a look at the same history.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kurtosis, norm, skew

EULER_GAMMA = 0.5772156649015329


def _moments(returns: np.ndarray) -> tuple[float, float, float, int] | None:
    """(per-period SR, skewness, kurtosis, n) or None when there are < 3 returns or they do not vary."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 3:
        return None
    std = float(r.std(ddof=1))
    if std <= 1e-12:
        return None
    g3 = float(skew(r, bias=False)) if r.size > 2 else 0.0
    g4 = float(kurtosis(r, fisher=False, bias=False)) if r.size > 3 else 3.0
    return float(r.mean() / std), g3, g4, int(r.size)


def _denominator(sr: float, g3: float, g4: float) -> float:
    # Non-normal returns can drive the term below 0 for extreme moments; floor it to keep PSR defined.
    return math.sqrt(max(1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr, 1e-12))


def probabilistic_sharpe(returns: np.ndarray, benchmark_sr: float = 0.0) -> float | None:
    """PSR of per-period `returns` against the per-period Sharpe ratio `benchmark_sr`; None if undefined."""
    moments = _moments(returns)
    if moments is None:
        return None
    sr, g3, g4, n = moments
    return float(norm.cdf((sr - benchmark_sr) * math.sqrt(n - 1) / _denominator(sr, g3, g4)))


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """SR0: the expected maximum per-period Sharpe ratio of `n_trials` unskilled trials of `variance`."""
    if n_trials <= 1:
        return 0.0
    a = norm.ppf(1.0 - 1.0 / n_trials)
    b = norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(max(variance, 0.0)) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b))


def deflated_sharpe(returns: np.ndarray, n_trials: int, trial_sharpes: Sequence[float | None] = ()) -> dict[str, Any]:
    """{sharpe_per_period, skewness, kurtosis, periods, trials, trial_sharpe_variance, sr0, psr, dsr} of
    one candidate's per-period `returns`; psr/dsr None when the returns do not vary (no trade)."""
    moments = _moments(returns)
    out: dict[str, Any] = {"trials": int(max(n_trials, 1))}
    if moments is None:
        return {**out, "sharpe_per_period": None, "psr": None, "dsr": None, "sr0": None, "periods": len(returns)}
    sr, g3, g4, n = moments
    known = np.asarray([s for s in trial_sharpes if s is not None and math.isfinite(s)], dtype=np.float64)
    sampling = _denominator(sr, g3, g4) ** 2 / (n - 1)
    cross = float(known.var(ddof=1)) if known.size >= 2 else 0.0
    variance = max(cross, sampling)
    sr0 = expected_max_sharpe(out["trials"], variance)
    return {
        **out,
        "sharpe_per_period": sr,
        "skewness": g3,
        "kurtosis": g4,
        "periods": n,
        "trial_sharpe_variance": variance,
        "sr0": sr0,
        "psr": probabilistic_sharpe(returns, 0.0),
        "dsr": probabilistic_sharpe(returns, sr0),
    }


def _experiment_runs(spec: dict[str, Any], summary: Path) -> int:
    """Runs of one experiment: its finished count, else the rows of its (partial) summary.csv."""
    if isinstance(spec.get("runs"), int):
        return spec["runs"]
    try:
        return len(pd.read_csv(summary))
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return 0


def count_trials(symbol: str, candidates: int, experiments_dir: Path | None, hpo_dir: Path | None) -> dict[str, int]:
    """{candidates, experiment_runs, optuna_trials, total} recorded for `symbol` (see the module docstring)."""
    experiment_runs = 0
    if experiments_dir is not None and Path(experiments_dir).is_dir():
        for spec_file in sorted(Path(experiments_dir).glob("*/experiment.json")):
            try:
                spec = json.loads(spec_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if spec.get("symbol") != symbol:
                continue
            experiment_runs += _experiment_runs(spec, spec_file.parent / "summary.csv")
    optuna_trials = 0
    if hpo_dir is not None and Path(hpo_dir).is_dir():
        for study_file in sorted(Path(hpo_dir).glob("*/study.json")):
            try:
                study = json.loads(study_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if study.get("symbol") == symbol:
                optuna_trials += int(study.get("trials", 0) or 0)
    return {
        "candidates": int(candidates),
        "experiment_runs": experiment_runs,
        "optuna_trials": optuna_trials,
        "total": int(candidates) + experiment_runs + optuna_trials,
    }
