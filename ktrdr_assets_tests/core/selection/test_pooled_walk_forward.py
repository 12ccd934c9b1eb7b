"""The pooled walk-forward (core/selection/pooled_walk_forward.py) on data whose answer is known.

- The calendar fold edges, by hand: equal weight per symbol whatever its bar count; a symbol whose
  history lies elsewhere in time sits the folds out, with the reason.
- No leakage across symbols: in every fold, every row any symbol trains or validates on, and the bars its
  label looks ahead to, lie before the fold's first test timestamp, for every symbol (asserted on the row
  timestamps each fold was given), and the network is fitted on exactly those symbols' samples.
- Known answers: two symbols with a planted edge and a random walk pooled together: the planted symbols'
  pooled evidence passes the shipped gates, the random walk's fails them; a pooled candidate with that
  evidence wins the planted symbol's selection against a per-symbol candidate that has none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.data.synthetic import planted_edge_bars, random_walk_bars
from ktrdr_assets.core.models import torch_fit
from ktrdr_assets.core.models.pooled import SymbolData, asset_id_map, evaluate_pooled, pooled_strategy, train_pooled
from ktrdr_assets.core.models.registry import get_spec
from ktrdr_assets.core.selection import pooled_walk_forward as pwf
from ktrdr_assets.core.selection.gates import NO_EVIDENCE, evaluate_gates, passes_all
from ktrdr_assets.core.selection.pooled_walk_forward import (
    calendar_edges,
    load_pooled_evidence,
    plan_symbol_folds,
    pooled_walk_forward,
)
from ktrdr_assets.core.selection.selector import select_model
from ktrdr_assets.core.selection.walk_forward import SymbolSeries
from ktrdr_assets_tests.helpers import TINY, evidence_result, inputs_from_bars, write_strategy

DAY = pd.Timedelta(days=1)


def _days(first: int, n: int, freq: str = "D") -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp("2020-01-01", tz="UTC") + first * DAY, periods=n, freq=freq)


def test_edges_split_the_pooled_timeline_with_equal_weight_per_symbol() -> None:
    # A: days 0-9, B: days 10-19 (one bar a day): half the mass lies before day 10, three quarters before 15.
    edges = calendar_edges({"A": _days(0, 10), "B": _days(10, 10)}, initial_fraction=0.5, folds=2)
    assert edges == [_days(10, 1)[0], _days(15, 1)[0]]
    # A hourly and B daily over the same 40 days: A's 24x more bars do not pull the edges (40 % -> day 16).
    edges = calendar_edges({"A": _days(0, 40 * 24, "h"), "B": _days(0, 40)}, initial_fraction=0.4, folds=3)
    assert [e.floor("D") for e in edges] == [_days(d, 1)[0] for d in (16, 24, 32)]
    with pytest.raises(ValueError, match="at least one evidence row"):
        calendar_edges({"A": _days(0, 0)}, 0.5, 2)


def test_a_symbol_whose_history_lies_elsewhere_sits_the_folds_out(tmp_path: Path) -> None:
    strategy = load_strategy(write_strategy(tmp_path / "s.yaml"))
    evaluation = strategy.evaluation.model_copy(update={"folds": 2, "initial_train_fraction": 0.5})
    strategy = strategy.model_copy(update={"evaluation": evaluation})
    early, late = _days(0, 200), _days(400, 200)
    edges = calendar_edges({"early": early, "late": late}, 0.5, 2)
    assert edges[0] == late[0]  # all of `early`'s mass lies before `late` starts
    planned, skipped = plan_symbol_folds(early, edges, strategy, purge=5, min_rows=1)
    assert planned == {} and set(skipped) == {1, 2} and "0 test rows" in skipped[1]
    planned, skipped = plan_symbol_folds(late, edges, strategy, purge=5, min_rows=1)
    assert set(skipped) == {1} and set(planned) == {2}  # fold 1 would train on nothing of `late`
    fold = planned[2]
    assert late[fold.test[0]] >= edges[1] and fold.test[1] == len(late)
    assert fold.validation[1] == fold.test[0] - 5 and fold.fit[1] == fold.validation[0] - 5


@pytest.fixture(scope="module")
def strategy(tmp_path_factory: pytest.TempPathFactory):
    return load_strategy(write_strategy(tmp_path_factory.mktemp("pwf") / "strategy.yaml", models=TINY))


@pytest.fixture(scope="module")
def symbols(strategy) -> dict[str, SymbolData]:
    """Two planted-edge symbols (PLANTB starts 2.5 years later and ends 1.5 years later: other calendars)
    and a random walk."""
    bars = {
        "PLANTA": planted_edge_bars(1500, strength=3.0, volatility=0.008, seed=0),
        "PLANTB": planted_edge_bars(1200, strength=3.0, volatility=0.008, seed=1, start="2007-07-02"),
        "WALK": random_walk_bars(1500, volatility=0.008, seed=0),
    }
    out = {}
    for symbol, frame in bars.items():
        inputs = inputs_from_bars(frame, strategy.for_symbol(symbol))
        out[symbol] = SymbolData(inputs.splits, inputs.augmented, inputs.features)
    return out


@pytest.mark.parametrize("model_type", ["neural_network", "lstm"])
def test_no_fold_trains_on_any_symbols_rows_at_or_after_its_test_period(
    symbols: dict[str, SymbolData], strategy, model_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = get_spec(f"pooled_{model_type}")
    config = spec.parse_config(strategy.models)
    series = {s: SymbolSeries.of(d.features, d.splits, strategy) for s, d in symbols.items()}
    prepared, fitted_on = [], []
    real_prepare, real_fit = pwf.prepare_fold, torch_fit.fit_torch
    monkeypatch.setattr(pwf, "prepare_fold", lambda *a, **k: prepared.append(a) or real_prepare(*a, **k))
    monkeypatch.setattr(
        torch_fit, "fit_torch", lambda net, tr, va, *a, **k: fitted_on.append(tr) or real_fit(net, tr, va, *a, **k)
    )
    names = symbols["PLANTA"].splits.feature_names
    evidence = pooled_walk_forward(spec, config, series, names, asset_id_map(list(symbols)), strategy)
    edges = [pd.Timestamp(e) for e in evidence.edges]
    folds_seen: dict[int, list] = {}
    for features, fold, *_ in prepared:
        folds_seen.setdefault(fold.number, []).append((features, fold))
    assert len(fitted_on) == len(folds_seen) == strategy.evaluation.folds
    lookback = config.lookback if spec.uses_sequences else 1
    for (number, members), train in zip(sorted(folds_seen.items()), fitted_on, strict=True):
        start = edges[number - 1]
        first_test = min(features.index[fold.test[0]] for features, fold in members)
        assert first_test >= start
        for features, fold in members:
            symbol = next(s for s, d in symbols.items() if d.features is features)
            train_end = fold.validation[1]  # fit and validation rows are all before this position
            assert features.index[train_end - 1] < start  # every training row before the fold's start ...
            assert features.index[train_end - 1 + series[symbol].lookahead] < first_test  # ... and its label's bars
            assert fold.test[1] <= series[symbol].evidence_rows  # no holdout row is ever tested or trained
        windows = sum(fold.rows()["fit"] - lookback + 1 for _, fold in members)
        if spec.uses_sequences:  # the network saw exactly these symbols' fit windows ...
            assert len(train[1]) == windows
        else:  # ... or their fit rows plus the synthetic rows of each symbol's augmentation
            assert len(train[1]) >= windows
    assert set(evidence.results) == set(symbols) and evidence.missing == {}
    assert evidence.fold_symbols[1] == ["PLANTA", "WALK"]  # PLANTB: too few rows before fold 1


@pytest.fixture(scope="module")
def trained(symbols: dict[str, SymbolData], strategy, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return train_pooled(
        "neural_network", symbols, strategy, run_dir=tmp_path_factory.mktemp("pooled") / "run", run_info={}
    )


def test_planted_edges_pass_the_gates_on_pooled_evidence_and_the_random_walk_fails(trained: dict, strategy) -> None:
    assert trained["evidence"]["with_evidence"] == ["PLANTA", "PLANTB", "WALK"]
    verdicts = {}
    for symbol in ("PLANTA", "PLANTB", "WALK"):
        result = load_pooled_evidence(Path(trained["run_dir"]), symbol)
        assert result is not None and len(result.oof) == result.evidence["oof"]["n"]
        assert result.evidence["scheme"]["pooled"]["calendar_edges"] == trained["evidence"]["edges"]
        gates = evaluate_gates({"model_name": "PooledNeuralNetwork", "evidence": result.evidence}, strategy.gates, 1)
        verdicts[symbol] = passes_all(gates)
    assert verdicts == {"PLANTA": True, "PLANTB": True, "WALK": False}


def test_a_pooled_candidate_with_evidence_wins_against_one_without(
    trained: dict, symbols: dict[str, SymbolData], strategy, tmp_path: Path
) -> None:
    data = symbols["PLANTA"]
    own = pooled_strategy(strategy.for_symbol("PLANTA"), strategy)
    record = evaluate_pooled(
        trained, data.splits, data.augmented, own, symbol="PLANTA", run_dir=tmp_path / "eval", run_info={},
        features=data.features,
    )
    result = record.result
    assert result["evidence"] == load_pooled_evidence(Path(trained["run_dir"]), "PLANTA").evidence
    assert (tmp_path / "eval" / "oof_predictions.parquet").is_file()
    assert result["holdout"]["n"] > 0 and result["pooled"]["asset_embedding"] == "trained"
    candidates = {
        "PooledNeuralNetwork": dict(result, run_dir=record.run_dir),
        "RandomForest": {**evidence_result(name="RandomForest", symbol="PLANTA"), "evidence": None},
    }
    selection = select_model("PLANTA", candidates, strategy.gates, n_models=2)
    assert selection["selected_model"] == "PooledNeuralNetwork", selection
    assert selection["rejected"]["RandomForest"][0].endswith(NO_EVIDENCE)


def test_a_symbol_tested_in_too_few_calendar_folds_has_no_evidence(
    trained: dict, symbols: dict[str, SymbolData], strategy, tmp_path: Path
) -> None:
    pooled = strategy.models.pooled.model_copy(update={"min_evidence_folds": 3})
    few = strategy.models.model_copy(update={"pooled": pooled})
    summary = train_pooled(
        "neural_network", symbols, strategy.model_copy(update={"models": few}), run_dir=tmp_path / "run", run_info={}
    )
    missing = summary["evidence"]["without_evidence"]
    assert set(missing) == {"PLANTB"} and "tested in 2 of 3 calendar folds" in missing["PLANTB"]
    assert load_pooled_evidence(Path(summary["run_dir"]), "PLANTB") is None
    assert np.isfinite(summary["evidence"]["seconds"])
