"""Quality gates on the walk-forward evidence, model selection, every candidate backtested, and the deployment
manifest, end to end through Dagster.

The deploy path runs on bars whose answer is known (ktrdr_assets_tests/synthetic_symbols.py): PLANTED has a
planted edge, NOEDGE is a random walk. Scenarios (module-scoped fixtures, each expensive run happens once),
in this module's warehouse unless noted:

- NOEDGE, the whole graph and the manifest in one run (`dagster asset materialize --select '*'`) with the
  fast strategy: nothing deployed and the run succeeds; the gate checks (every model type x 3 gates)
  against figures recomputed here from each model's stored out-of-fold predictions (accuracy, baselines,
  exact binomial p-value), selection and manifest shapes (its check red, severity ERROR, never blocking),
  training analytics, every candidate backtested;
- PLANTED with `min_accuracy: 0.99`: nothing selected, the manifest check red (severity ERROR) but every
  run succeeds;
- PLANTED re-selected with the shipped gates: gates green, selected on its out-of-fold score, its decision
  rule chosen on validation, the MLflow `champion` alias set, the backtest reports every candidate beside
  buy-and-hold marked deployed or not, the manifest lists it;
- an overfitting random forest (unbounded trees) fails `overfitting_gap` on its mean fold gap;
- MSFT labels made ~91% HOLD: models clear `min_accuracy` but are not significantly above the majority.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy.stats import binomtest

from ktrdr_assets.assets.pooled import POOLED_MODELS
from ktrdr_assets.core.data.splits import LABEL
from ktrdr_assets.core.models.loading import predict_part
from ktrdr_assets.core.models.registry import model_specs
from ktrdr_assets.core.selection.decision import apply_decision_rule, choose_decision_rule
from ktrdr_assets.definitions import defs
from ktrdr_assets.io import read_asset
from ktrdr_assets.paths import default_tracking_uri
from ktrdr_assets_tests.helpers import (
    DATA_ASSETS,
    MANUAL_REVIEW,
    MODEL_ASSETS,
    MODEL_TYPES,
    PERMISSIVE_GATES,
    SELECTION_ASSETS,
    champion,
    check_evaluations,
    manifest_path,
    materialized,
    model_records,
    read_manifest,
    registry_versions,
    run_job,
    step_errors,
    strategy_run_config,
    write_strategy,
)
from ktrdr_assets_tests.synthetic_symbols import NOEDGE, PLANTED

GATE_NAMES = ("overfitting_gap", "accuracy", "stability")
DEFAULT_GATES = {
    "max_gap": 0.20,
    "min_accuracy": 0.55,
    "alpha": 0.01,
    "min_folds_above_baseline": 0.6,
    "max_fold_accuracy_std": 0.10,
    "gap_penalty": 0.5,
}
#: The model types competing for a symbol under the test strategy: the per-symbol types and the two pooled
#: types the shipped strategy enables (models.pooled.model_types): each accuracy test runs at alpha / this.
BONFERRONI = len(MODEL_TYPES) + 2
BACKTEST_METRICS = {
    "total_return",
    "annualized_return",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "profit_factor",
    "win_rate",
    "trade_count",
}


# --------------------------------------------------------------------------- helpers
def recomputed_evidence(record: dict) -> dict[str, Any]:
    """The pooled figures recomputed from the model's stored out-of-fold predictions."""
    oof = pd.read_parquet(Path(record["run_dir"]) / "oof_predictions.parquet")
    y, calls, persistence = oof[LABEL].to_numpy(), oof["prediction"].to_numpy(), oof["persistence"].to_numpy()
    majority = np.bincount(y, minlength=3).max() / len(y)
    stored = record["result"]["evidence"]["oof"]
    n_eff = stored["n_effective"]
    accuracy = float(np.mean(calls == y))
    baseline = max(majority, float(np.mean(persistence == y)))
    return {
        "n": len(oof),
        "accuracy": accuracy,
        "majority": majority,
        "persistence": float(np.mean(persistence == y)),
        "baseline": baseline,
        "p_value": binomtest(round(accuracy * n_eff), n_eff, baseline, "greater").pvalue,
        "folds": sorted(oof["fold"].unique().tolist()),
    }


def expected_gates(result: dict, gates: dict) -> dict[str, tuple[bool, float]]:
    """{gate: (passed, value)} from the documented rules, read on the stored evidence."""
    evidence = result["evidence"]
    oof = evidence["oof"]
    alpha = gates.get("alpha", 0.01) / BONFERRONI
    folds = evidence["folds"]
    gap = np.mean([f["train_accuracy"] - f["val_accuracy"] for f in folds])
    accuracies = np.array([f["test_accuracy"] for f in folds])
    share = np.mean([f["test_accuracy"] > f["baseline"] for f in folds])
    return {
        "overfitting_gap": (gap <= gates["max_gap"] + 1e-9, gap),
        "accuracy": (oof["accuracy"] >= gates["min_accuracy"] and oof["p_value"] < alpha, oof["accuracy"]),
        "stability": (
            share >= gates["min_folds_above_baseline"] - 1e-9 and accuracies.std() <= gates["max_fold_accuracy_std"],
            share,
        ),
    }


def expected_selection(records: dict[str, dict], gates: dict) -> tuple[str | None, list[str], set[str]]:
    """(selected model name, alternatives best first, rejected names) recomputed from the records."""
    scored, rejected = [], set()
    for record in records.values():
        result = record["result"]
        if all(passed for passed, _ in expected_gates(result, gates).values()):
            evidence = result["evidence"]
            score = evidence["oof"]["accuracy"] - gates.get("gap_penalty", 0.5) * max(0.0, evidence["mean_gap"])
            scored.append((-score, record["model_name"]))
        else:
            rejected.add(record["model_name"])
    names = [name for _, name in sorted(scored)]
    return (names[0] if names else None), names[1:], rejected


def png_from_markdown(value: dg.MetadataValue) -> bytes:
    match = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", value.value)
    assert match, f"no inline PNG in {value.value[:80]!r}"
    return base64.b64decode(match.group(1))


@dataclass
class Scenario:
    """What one scenario's runs left behind, captured right after they finished."""

    gates: dict
    results: dict[str, dg.ExecuteInProcessResult]
    records: dict[str, dict]
    selection: dict
    manifest: dict
    extra: dict


def _run_scenario(
    instance: dg.DagsterInstance,
    strategy: Path,
    symbol: str,
    gates: dict,
    job: str = "materialize_symbol",
    **extra: Any,
) -> Scenario:
    run = run_job(strategy, symbol, job=job, instance=instance)
    manifest_run = run_job(strategy, job="build_manifest", instance=instance)
    return Scenario(
        gates=gates,
        results={job: run, "build_manifest": manifest_run},
        records=model_records(symbol),
        selection=read_asset("model_selection", symbol),
        manifest=read_manifest(),
        extra=extra,
    )


# --------------------------------------------------------------------------- 1. NOEDGE, --select '*'
@pytest.fixture(scope="module")
def noedge(module_dir: Path, fast_strategy: Path, instance: dg.DagsterInstance) -> Scenario:
    """The random walk: the whole graph and the manifest in one run, as `dagster asset materialize
    --select '*' --partition NOEDGE` does."""
    job = defs.resolve_implicit_global_asset_job_def()
    run = job.execute_in_process(
        partition_key=NOEDGE, run_config=strategy_run_config(fast_strategy), instance=instance, raise_on_error=False
    )
    return Scenario(
        gates=DEFAULT_GATES,
        results={"materialize_symbol": run, "build_manifest": run},
        records=model_records(NOEDGE),
        selection=read_asset("model_selection", NOEDGE),
        manifest=read_manifest(),
        extra={},
    )


def test_a_random_walk_ends_undeployed_in_a_successful_run(noedge: Scenario) -> None:
    run = noedge.results["materialize_symbol"]
    assert run.success, step_errors(run)
    # `--select '*'` includes the unpartitioned pooled_models (its own partition None, like the manifest's)
    everything = {*DATA_ASSETS, *MODEL_ASSETS, *SELECTION_ASSETS, POOLED_MODELS, "deployment_manifest"}
    assert set(materialized(run)) == everything
    partitions = {e.partition for e in run.get_asset_materialization_events()}
    assert partitions == {NOEDGE, None}  # the manifest is not partitioned
    assert noedge.selection["selected_model"] is None
    for name, reasons in noedge.selection["rejected"].items():
        assert any(r.startswith("accuracy:") for r in reasons), (name, reasons)
    assert noedge.manifest["selections"][NOEDGE]["action"] == MANUAL_REVIEW


def test_stored_evidence_matches_the_out_of_fold_predictions(noedge: Scenario) -> None:
    for model_type, record in noedge.records.items():
        stored = record["result"]["evidence"]["oof"]
        again = recomputed_evidence(record)
        assert again["folds"] == [1, 2, 3]  # the fast strategy's three walk-forward folds
        assert stored["n"] == again["n"] and stored["accuracy"] == pytest.approx(again["accuracy"])
        assert stored["majority_accuracy"] == pytest.approx(again["majority"])
        assert stored["persistence_accuracy"] == pytest.approx(again["persistence"])
        assert stored["baseline"] == pytest.approx(again["baseline"])
        assert stored["p_value"] == pytest.approx(again["p_value"]), model_type
        assert stored["n_effective"] <= stored["n"]


def test_gate_checks_are_evaluated_per_model_on_the_evidence(noedge: Scenario) -> None:
    checks = check_evaluations(noedge.results["materialize_symbol"])
    gate_checks = {key: e for key, e in checks.items() if key[0] in MODEL_ASSETS}
    assert set(gate_checks) == {(asset, gate) for asset in MODEL_ASSETS for gate in GATE_NAMES}
    assert set(noedge.records) == set(MODEL_TYPES)
    for model_type, asset in zip(MODEL_TYPES, MODEL_ASSETS, strict=True):
        result = noedge.records[model_type]["result"]
        expected = expected_gates(result, DEFAULT_GATES)
        for gate in GATE_NAMES:
            evaluation = gate_checks[(asset, gate)]
            assert evaluation.partition == NOEDGE, (asset, gate, evaluation.partition)
            assert evaluation.blocking is False  # a failed gate rejects the model, it does not stop the run
            assert evaluation.severity == dg.AssetCheckSeverity.ERROR
            meta = {k: v.value for k, v in evaluation.metadata.items()}
            passed, value = expected[gate]
            assert evaluation.passed is bool(passed), (asset, gate, meta)
            assert meta["value"] == pytest.approx(value, abs=1e-12), (asset, gate)
        accuracy = {k: v.value for k, v in gate_checks[(asset, "accuracy")].metadata.items()}
        oof = result["evidence"]["oof"]
        assert accuracy["threshold"] == 0.55 and accuracy["alpha"] == pytest.approx(0.01 / BONFERRONI)
        assert accuracy["n"] == oof["n"] and accuracy["p_value"] == oof["p_value"]
        assert accuracy["majority_baseline"] == oof["majority_accuracy"]
        assert accuracy["persistence_baseline"] == oof["persistence_accuracy"]
        assert accuracy["wilson_95_low"] <= oof["accuracy"] <= accuracy["wilson_95_high"]
        assert set(accuracy["predicted_shares"]) == {"SELL", "HOLD", "BUY"}


def test_model_metadata_shows_the_evidence_the_holdout_and_the_cost(noedge: Scenario) -> None:
    metadata = materialized(noedge.results["materialize_symbol"])
    for model_type, record in noedge.records.items():
        meta = metadata[f"{model_type}_model"]
        result = record["result"]
        assert meta["oof_accuracy"].value == result["evidence"]["oof"]["accuracy"]
        assert meta["holdout_accuracy"].value == result["holdout"]["accuracy"]
        assert "| fold | fit rows |" in meta["walk_forward"].value
        assert meta["training_cost"].value["walk_forward_fits"] == 3
        assert meta["walk_forward_seconds"].value > 0
        assert set(meta["holdout_predicted_shares"].value) == {"SELL", "HOLD", "BUY"}


def test_selection_follows_the_gates_in_note_002_shape(noedge: Scenario) -> None:
    selected, alternatives, rejected = expected_selection(noedge.records, DEFAULT_GATES)
    selection = noedge.selection
    assert selection["selected_model"] == selected
    assert set(selection["rejected"]) == rejected
    assert selection["alternatives"] == alternatives
    if selected is None:
        assert selection["reason"] == "No models met quality criteria"
        assert selection["action"] == MANUAL_REVIEW
    # each rejection names exactly the gates its checks failed
    checks = check_evaluations(noedge.results["materialize_symbol"])
    for model_type, asset in zip(MODEL_TYPES, MODEL_ASSETS, strict=True):
        name = noedge.records[model_type]["model_name"]
        failed = {gate for gate in GATE_NAMES if not checks[(asset, gate)].passed}
        reasons = selection["rejected"].get(name, [])
        assert {r.split(":")[0] for r in reasons} == failed, (name, reasons)
    # every trained candidate is listed with its evidence, its out-of-fold backtest and deflated Sharpe
    assert set(selection["candidates"]) == {r["model_name"] for r in noedge.records.values()}
    n = len(model_specs())  # every registered per-symbol type trained a candidate (no pooled one evaluated)
    assert len(noedge.records) == n
    assert selection["trials"] == {"candidates": n, "experiment_runs": 0, "optuna_trials": 0, "total": n}
    assert selection["calendar"]["market"] == "equity" and selection["calendar"]["periods_per_year"] == 252
    for entry in selection["candidates"].values():
        assert set(entry["oof_backtest"]) >= BACKTEST_METRICS
        assert entry["sharpe"]["trials"] == n and {"psr", "dsr", "sr0"} <= set(entry["sharpe"])


def test_manifest_is_written_atomically_and_its_check_never_fails_the_run(noedge: Scenario) -> None:
    run = noedge.results["build_manifest"]
    manifest = noedge.manifest
    assert sorted(p.name for p in manifest_path().parent.iterdir()) == ["all.json"]  # no temp files left
    metadata = materialized(run)["deployment_manifest"]
    assert metadata["path"].value == str(manifest_path())
    assert {k: metadata[k].value for k in manifest["summary"]} == manifest["summary"]
    assert datetime.fromisoformat(manifest["timestamp"]).tzinfo is not None
    assert manifest["selection_criteria"]["min_oof_accuracy"] == 0.55
    assert manifest["selection_criteria"]["alpha"] == 0.01
    assert list(manifest["selections"]) == [NOEDGE]
    assert manifest["selections"][NOEDGE] == noedge.selection
    selected = noedge.selection["selected_model"] is not None
    assert manifest["summary"] == {
        "total_symbols": 1,
        "models_selected": int(selected),
        "manual_review_needed": int(not selected),
        "stale_selections": 0,
        "retired_symbols": 0,
    }
    check = check_evaluations(run)[("deployment_manifest", "every_symbol_deployable")]
    assert check.passed is selected is False and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.blocking is False
    assert check.metadata["symbols_without_model"].value == [NOEDGE]
    assert run.success  # no deployable model is an outcome of a healthy run, not a failure


def test_training_analytics_summarizes_every_model_run(noedge: Scenario) -> None:
    analytics = read_asset("training_analytics", NOEDGE)
    assert set(analytics) == set(MODEL_TYPES)
    for model_type, entry in analytics.items():
        run_dir = noedge.records[model_type]["run_dir"]
        assert entry["run_dir"] == run_dir and Path(run_dir).is_dir()
        assert isinstance(entry["alerts"], list)
        assert entry["final_analysis"]["total_epochs_completed"] >= 1, (model_type, entry["final_analysis"])
    metadata = materialized(noedge.results["materialize_symbol"])["training_analytics"]
    assert png_from_markdown(metadata["validation_loss"]).startswith(b"\x89PNG")


def test_every_candidate_is_backtested_whether_or_not_one_is_deployed(noedge: Scenario) -> None:
    report = read_asset("backtest", NOEDGE)
    assert set(report["candidates"]) == {r["model_name"] for r in noedge.records.values()}
    for name, entry in report["candidates"].items():
        assert entry["deployed"] is (name == noedge.selection["selected_model"])
        assert set(entry["holdout"]["metrics"]) >= BACKTEST_METRICS
        assert set(entry["oof"]["metrics"]) >= BACKTEST_METRICS
    assert set(report["buy_and_hold"]["holdout"]) >= BACKTEST_METRICS
    metadata = materialized(noedge.results["materialize_symbol"])["backtest"]
    assert "| buy & hold |" in metadata["candidates"].value
    assert png_from_markdown(metadata["equity_curve"]).startswith(b"\x89PNG")


# --------------------------------------------------------------------------- 2. PLANTED: all fail, then pass
@pytest.fixture(scope="module")
def planted_all_fail(noedge: Scenario, module_dir: Path, instance: dg.DagsterInstance) -> Scenario:
    """PLANTED trained and selected with `min_accuracy: 0.99` (every other gate as shipped), after NOEDGE."""
    gates = {**DEFAULT_GATES, "min_accuracy": 0.99}
    strategy = write_strategy(module_dir / "planted_strict.yaml", gates={"min_accuracy": 0.99})
    versions_before = len(registry_versions(PLANTED))
    scenario = _run_scenario(instance, strategy, PLANTED, gates, versions_before=versions_before)
    scenario.extra["versions_after"] = len(registry_versions(PLANTED))
    return scenario


@pytest.fixture(scope="module")
def planted_pass(planted_all_fail: Scenario, module_dir: Path, instance: dg.DagsterInstance) -> Scenario:
    """The same PLANTED models re-selected (select_symbol, no retraining) with the shipped gates."""
    strategy = write_strategy(module_dir / "planted_shipped_gates.yaml")
    scenario = _run_scenario(instance, strategy, PLANTED, DEFAULT_GATES, job="select_symbol")
    scenario.extra["champion"] = champion(PLANTED)
    return scenario


def test_all_models_failing_min_accuracy_requires_manual_review(planted_all_fail: Scenario) -> None:
    run = planted_all_fail.results["materialize_symbol"]
    assert run.success, step_errors(run)
    selection = planted_all_fail.selection
    assert selection["selected_model"] is None
    assert selection["action"] == MANUAL_REVIEW and selection["alternatives"] == []
    assert set(selection["rejected"]) == {r["model_name"] for r in planted_all_fail.records.values()}
    for reasons in selection["rejected"].values():
        assert any(re.match(r"accuracy: out-of-fold accuracy 0\.\d{3} < min 0\.990", r) for r in reasons), reasons
    gate_checks = check_evaluations(run)
    assert {gate_checks[(asset, "accuracy")].partition for asset in MODEL_ASSETS} == {PLANTED}
    assert not any(gate_checks[(asset, "accuracy")].passed for asset in MODEL_ASSETS)
    report = read_asset("backtest", PLANTED)  # still backtested: every candidate, none deployed
    assert not any(entry["deployed"] for entry in report["candidates"].values())
    # no registry version was created or promoted
    assert planted_all_fail.extra["versions_after"] == planted_all_fail.extra["versions_before"]


def test_manifest_without_a_deployable_model_is_red_but_the_run_succeeds(planted_all_fail: Scenario) -> None:
    entry = planted_all_fail.manifest["selections"][PLANTED]
    assert entry["selected_model"] is None and entry["action"] == MANUAL_REVIEW
    summary = planted_all_fail.manifest["summary"]
    assert summary["manual_review_needed"] == 2  # NOEDGE and PLANTED
    run = planted_all_fail.results["build_manifest"]
    assert run.success
    check = check_evaluations(run)[("deployment_manifest", "every_symbol_deployable")]
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.ERROR
    assert PLANTED in check.metadata["symbols_without_model"].value
    assert "< min 0.990" in check.metadata["reasons"].value[PLANTED]
    assert check.description.startswith(f"{summary['manual_review_needed']} of 2 symbols without a deployable model")


def test_planted_edge_passes_the_shipped_gates_and_is_selected(
    planted_pass: Scenario, planted_all_fail: Scenario
) -> None:
    run = planted_pass.results["select_symbol"]
    assert run.success, step_errors(run)
    assert set(materialized(run)) == set(SELECTION_ASSETS)  # re-selected, not retrained
    assert planted_pass.records == planted_all_fail.records
    selected, alternatives, rejected = expected_selection(planted_pass.records, DEFAULT_GATES)
    assert selected is not None, "the planted edge must pass the shipped gates"
    selection = planted_pass.selection
    assert selection["selected_model"] == selected
    assert selection["alternatives"] == alternatives
    assert set(selection["rejected"]) == rejected
    record = next(r for r in planted_pass.records.values() if r["model_name"] == selected)
    evidence = record["result"]["evidence"]
    assert selection["model_type"] == record["model_type"] and selection["run_dir"] == record["run_dir"]
    assert selection["oof_accuracy"] == evidence["oof"]["accuracy"] > evidence["oof"]["baseline"] + 0.1
    assert selection["p_value"] < 0.01 / BONFERRONI
    assert selection["test_accuracy"] == record["result"]["holdout"]["accuracy"]
    assert selection["score"] == pytest.approx(evidence["oof"]["accuracy"] - 0.5 * max(0.0, evidence["mean_gap"]))
    # the gate checks of the selected model, green in the run that trained it
    checks = check_evaluations(planted_all_fail.results["materialize_symbol"])
    asset = f"{record['model_type']}_model"
    assert checks[(asset, "overfitting_gap")].passed and checks[(asset, "stability")].passed


def test_decision_rule_is_the_validation_accuracy_optimum(planted_pass: Scenario) -> None:
    """Recomputed here on the validation part only; the holdout never chooses."""
    splits = read_asset("temporal_splits", PLANTED)
    selection = planted_pass.selection
    proba, index = predict_part(Path(selection["run_dir"]), splits.validation, splits.feature_names)
    y_val = splits.validation.loc[index, LABEL].to_numpy()
    record = planted_pass.records[selection["model_type"]]
    expected = choose_decision_rule(proba, y_val, record["result"].get("class_weights"))
    chosen = selection["decision_rule"]
    assert chosen["description"] == expected["description"] and chosen["metric"] == "accuracy"
    assert chosen["val_accuracy"] == pytest.approx(expected["val_accuracy"])
    assert selection["decision_rule"]["val_accuracy"] == pytest.approx(
        np.mean(apply_decision_rule(proba, expected) == y_val)
    )


def test_selected_model_becomes_the_mlflow_champion(planted_pass: Scenario) -> None:
    selection = planted_pass.selection
    registry = selection["registry"]
    assert registry["registered"] is True
    assert registry["name"] == f"ktrdr_{PLANTED}" and registry["alias"] == "champion"
    version = planted_pass.extra["champion"]
    assert int(version.version) == registry["version"]
    assert version.run_id == planted_pass.records[selection["model_type"]]["mlflow_run_id"]
    run = MlflowClient(default_tracking_uri()).get_run(version.run_id)
    assert run.data.tags["symbol"] == PLANTED and run.data.tags["model_type"] == selection["model_type"]


def test_backtest_reports_every_candidate_beside_buy_and_hold(planted_pass: Scenario) -> None:
    report = read_asset("backtest", PLANTED)
    selection = planted_pass.selection
    assert report["selected_model"] == selection["selected_model"]
    assert [name for name, e in report["candidates"].items() if e["deployed"]] == [selection["selected_model"]]
    deployed = report["candidates"][selection["selected_model"]]
    assert deployed["decision_rule"] == selection["decision_rule"]["description"]
    # the holdout is the test part (from the first bar the model can predict)
    splits = read_asset("temporal_splits", PLANTED)
    lookback = planted_pass.records[selection["model_type"]]["lookback"]
    test_index = splits.test.index[lookback - 1 :]
    assert deployed["holdout"]["period"] == {
        "first": test_index[0].isoformat(),
        "last": test_index[-1].isoformat(),
        "bars": len(test_index),
    }
    assert sum(deployed["holdout"]["signal_counts"].values()) == len(test_index)
    hold = report["buy_and_hold"]["holdout"]
    assert hold["trade_count"] == 1
    close = read_asset("ohlcv", PLANTED)["close"].loc[splits.test.index].to_numpy()
    cost = 0.0005  # BacktestConfig default; the shipped strategy has no backtest section
    assert hold["total_return"] == pytest.approx(close[-1] / close[0] - cost * close[-1] / close[1] - 1, rel=1e-9)
    sharpe = deployed["oof"]["sharpe"]
    assert 0 <= sharpe["dsr"] <= sharpe["psr"] <= 1  # deflated by the 4 trials
    assert report["calendar"] == {
        "market": "equity",
        "why": report["calendar"]["why"],
        "periods_per_year": 252,
    }  # business-day bars, market not set: inferred
    metadata = materialized(planted_pass.results["select_symbol"])["backtest"]
    assert metadata["selected_model"].value == selection["selected_model"]
    assert f"| {selection['selected_model']} (deployed) |" in metadata["candidates"].value


def test_manifest_lists_the_selected_model_with_its_sharpe_figures(planted_pass: Scenario, noedge: Scenario) -> None:
    manifest = planted_pass.manifest
    entry = manifest["selections"][PLANTED]
    assert entry == planted_pass.selection and "stale" not in entry
    assert entry["sharpe"]["dsr"] is not None and entry["trials"]["total"] == len(planted_pass.records)
    assert len(planted_pass.records) == len(model_specs())  # every registered per-symbol type, no pooled one
    assert manifest["selections"][NOEDGE] == noedge.selection  # not attempted again: carried over
    check = check_evaluations(planted_pass.results["build_manifest"])[
        ("deployment_manifest", "every_symbol_deployable")
    ]
    assert check.passed is False and check.metadata["symbols_without_model"].value == [NOEDGE]
    assert manifest["alerts"] == {"newly_lost": {}}


# --------------------------------------------------------------------------- 3. crafted failures
@pytest.fixture(scope="module")
def overfit(module_dir: Path, instance: dg.DagsterInstance) -> Scenario:
    """AAPL with unbounded random-forest trees beside the neural network; max_gap 0.5, other gates open."""
    gates = {**PERMISSIVE_GATES, "max_gap": 0.5}
    strategy = write_strategy(
        module_dir / "overfit.yaml",
        gates=gates,
        models={
            "random_forest": {"max_depth": None, "min_samples_leaf": 1, "min_samples_split": 2, "max_samples": 1.0}
        },
    )
    assets = (*DATA_ASSETS, "random_forest_model", "neural_network_model", "model_selection")
    return _run_in_own_warehouse(module_dir / "overfit", instance, strategy, "AAPL", gates, assets)


@pytest.fixture(scope="module")
def majority(module_dir: Path, instance: dg.DagsterInstance) -> Scenario:
    """MSFT labelled with a 12% zigzag over 10 bars: ~91% HOLD overall."""
    gates = {**PERMISSIVE_GATES, "min_accuracy": 0.5}
    strategy = write_strategy(
        module_dir / "majority.yaml", gates=gates, labels={"zigzag": {"threshold": 0.12, "lookahead": 10}}
    )
    assets = (*DATA_ASSETS, "random_forest_model", "xgboost_model", "model_selection")
    return _run_in_own_warehouse(module_dir / "majority", instance, strategy, "MSFT", gates, assets)


def _run_in_own_warehouse(
    root: Path, instance: dg.DagsterInstance, strategy: Path, symbol: str, gates: dict, assets: tuple[str, ...]
) -> Scenario:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KTRDR_WAREHOUSE_DIR", str(root))
        run = run_job(strategy, symbol, assets, instance=instance)
        labels = read_asset("zigzag_labels", symbol)
        return Scenario(
            gates=gates,
            results={"materialize_symbol": run},
            records=model_records(symbol),
            selection=read_asset("model_selection", symbol),
            manifest={},
            extra={"labels": labels},
        )


def test_an_overfitting_random_forest_fails_the_gap_gate_and_is_not_selected(overfit: Scenario) -> None:
    run = overfit.results["materialize_symbol"]
    assert run.success, step_errors(run)
    evidence = overfit.records["random_forest"]["result"]["evidence"]
    gap = evidence["mean_gap"]
    assert min(f["train_accuracy"] for f in evidence["folds"]) > 0.95  # unbounded trees memorize every fold
    # the regularized network on the same folds stays within the limit: the config made the difference
    assert overfit.records["neural_network"]["result"]["evidence"]["mean_gap"] <= 0.5 < gap
    check = check_evaluations(run)[("random_forest_model", "overfitting_gap")]
    assert check.passed is False and check.partition == "AAPL"
    assert check.metadata["value"].value == pytest.approx(gap)
    assert check.metadata["threshold"].value == 0.5
    assert check.metadata["fold_gaps"].value == pytest.approx([f["gap"] for f in evidence["folds"]])
    selection = overfit.selection
    assert selection["selected_model"] != "RandomForest"
    assert f"overfitting_gap: mean fold train-val gap {gap:.3f} > max 0.500" in selection["rejected"]["RandomForest"]


def test_a_model_at_the_majority_baseline_fails_the_accuracy_gate(majority: Scenario) -> None:
    """Both models clear min_accuracy 0.5 but neither beats always-HOLD by more than luck."""
    run = majority.results["materialize_symbol"]
    assert run.success, step_errors(run)
    shares = majority.extra["labels"]["label"].value_counts(normalize=True)
    assert len(shares) == 3 and shares.idxmax() == 1 and shares.max() > 0.9  # HOLD dominates, 3 classes
    checks = check_evaluations(run)
    for model_type in ("random_forest", "xgboost"):
        record = majority.records[model_type]
        oof = record["result"]["evidence"]["oof"]
        assert oof["majority_class"] == "HOLD" and oof["majority_accuracy"] > 0.85
        check = checks[(f"{model_type}_model", "accuracy")]
        meta = {k: v.value for k, v in check.metadata.items()}
        assert check.passed is False and check.partition == "MSFT"
        assert meta["threshold"] == 0.5 <= meta["value"] and meta["p_value"] >= 0.01 / BONFERRONI
        reasons = majority.selection["rejected"][record["model_name"]]
        assert any(re.match(r"accuracy: out-of-fold accuracy 0\.\d{3} not significantly above", r) for r in reasons)
    assert majority.selection["selected_model"] is None
    assert majority.selection["action"] == MANUAL_REVIEW
