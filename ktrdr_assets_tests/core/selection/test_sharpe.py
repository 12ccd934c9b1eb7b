"""Probabilistic and deflated Sharpe ratios against Bailey and López de Prado's formulas, and the honest
count of trials (candidates, experiment runs and Optuna trials recorded for the symbol)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kurtosis, norm, skew

from ktrdr_assets.core.selection.sharpe import (
    EULER_GAMMA,
    count_trials,
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
)


def test_psr_follows_the_formula():
    rng = np.random.default_rng(0)
    r = rng.standard_t(5, 750) * 0.01 + 0.001
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = skew(r, bias=False), kurtosis(r, fisher=False, bias=False)
    expected = norm.cdf((sr - 0.02) * math.sqrt(749) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert probabilistic_sharpe(r, 0.02) == pytest.approx(expected)
    assert probabilistic_sharpe(np.zeros(10)) is None  # no variation: undefined, not 0 or 1


def test_expected_max_sharpe_grows_with_trials_and_is_zero_for_one():
    assert expected_max_sharpe(1, 0.01) == 0.0
    v = 0.0004
    sr10 = expected_max_sharpe(10, v)
    assert sr10 == pytest.approx(
        math.sqrt(v) * ((1 - EULER_GAMMA) * norm.ppf(0.9) + EULER_GAMMA * norm.ppf(1 - 1 / (10 * math.e)))
    )
    assert expected_max_sharpe(100, v) > sr10 > 0


def test_more_trials_deflate_the_same_returns():
    rng = np.random.default_rng(1)
    r = rng.normal(0.0008, 0.01, 1000)
    one = deflated_sharpe(r, 1)
    many = deflated_sharpe(r, 50, [0.05, -0.02, 0.01, 0.03])
    assert one["dsr"] == pytest.approx(one["psr"])  # one trial: nothing to deflate
    assert many["dsr"] < one["dsr"] and many["sr0"] > 0 and many["trials"] == 50
    # the trials' variance is never taken below one Sharpe estimate's own sampling variance
    assert many["trial_sharpe_variance"] >= (1 - many["skewness"] * many["sharpe_per_period"]) / 999 * 0.9
    assert deflated_sharpe(np.zeros(5), 3)["dsr"] is None


def test_trials_are_counted_per_symbol_from_experiments_and_studies(tmp_path: Path):
    experiments, hpo = tmp_path / "experiments", tmp_path / "hpo"
    for name, symbol, runs in (("lr", "MSFT", 6), ("arch", "AAPL", 4)):
        (experiments / name).mkdir(parents=True)
        (experiments / name / "experiment.json").write_text(json.dumps({"symbol": symbol, "runs": runs}))
    (experiments / "running").mkdir()  # mid-way: counted from its summary.csv
    (experiments / "running" / "experiment.json").write_text(json.dumps({"symbol": "MSFT", "status": "running"}))
    (experiments / "running" / "summary.csv").write_text("run_id,value\na,1\nb,2\n")
    (hpo / "s1").mkdir(parents=True)
    (hpo / "s1" / "study.json").write_text(json.dumps({"symbol": "MSFT", "trials": 12}))
    assert count_trials("MSFT", 4, experiments, hpo) == {
        "candidates": 4,
        "experiment_runs": 8,
        "optuna_trials": 12,
        "total": 24,
    }
    assert count_trials("EURUSD", 4, experiments, hpo)["total"] == 4
    assert count_trials("MSFT", 2, None, tmp_path / "missing")["total"] == 2
