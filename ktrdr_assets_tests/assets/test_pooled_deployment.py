"""A pooled model deployed through Dagster on evidence whose answer is known.

The strategy leaves the pooled NeuralNetwork as each symbol's only candidate: every per-symbol type is
switched off for PLANTED and NOEDGE (the NN through their symbol overrides; the pooled network is trained
from the base strategy, where the NN stays on). The batch runs as the platform runs it: both symbols' data
stages, `train_pooled_models` (the pooled network and its calendar-fold walk-forward over both), each
symbol's `select_symbol`, then `build_manifest`, all with the shipped gates.

- PLANTED (a planted edge): the pooled candidate's gate checks are green on its pooled walk-forward
  evidence; it wins the selection, becomes the MLflow champion and is deployed in the manifest, and the
  deployed files reload with `weights_only=True` and reproduce its holdout accuracy.
- NOEDGE (a random walk), pooled with it through the same network: its evidence fails the gates, nothing
  is deployed, and every run still ends green.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from ktrdr_assets.core.data.splits import LABEL
from ktrdr_assets.core.models.loading import load_predictor
from ktrdr_assets.core.selection.decision import apply_decision_rule
from ktrdr_assets.io import read_asset
from ktrdr_assets_tests.helpers import (
    DATA_ASSETS,
    check_evaluations,
    materialized,
    read_manifest,
    run_job,
    step_errors,
    write_strategy,
)
from ktrdr_assets_tests.synthetic_symbols import NOEDGE, PLANTED

GATES = ("overfitting_gap", "accuracy", "stability")
ASSET = "pooled_neural_network_model"
OFF = {"enabled": False}
PER_SYMBOL_OFF = ("random_forest", "xgboost", "lstm", "gru", "attention_lstm", "cnn_lstm")
#: The fast models' 3 pooled epochs underfit half a batch of random walk; a small net trained to early stopping.
FIT = {"neural_network": {"epochs": 20, "patience": 4}}


@pytest.fixture(scope="module")
def runs(module_dir: Path, instance: dg.DagsterInstance) -> dict[str, dg.ExecuteInProcessResult]:
    strategy = write_strategy(
        module_dir / "pooled_only.yaml",
        models={**dict.fromkeys(PER_SYMBOL_OFF, OFF), "pooled": {"model_types": ["neural_network"], "overrides": FIT}},
        evaluation={"max_epochs_per_fold": FIT["neural_network"]["epochs"]},
        symbol_overrides={s: {"models": {"neural_network": OFF}} for s in (PLANTED, NOEDGE)},
    )
    out = {}
    for symbol in (PLANTED, NOEDGE):
        out[f"data {symbol}"] = run_job(strategy, symbol, DATA_ASSETS, instance=instance)
    out["pooled"] = run_job(strategy, job="train_pooled_models", instance=instance)
    for symbol in (PLANTED, NOEDGE):
        out[f"select {symbol}"] = run_job(strategy, symbol, job="select_symbol", instance=instance)
    out["manifest"] = run_job(strategy, job="build_manifest", instance=instance)
    return out


def test_every_run_of_the_batch_ends_green(runs: dict[str, dg.ExecuteInProcessResult]) -> None:
    for name, run in runs.items():
        assert run.success, (name, step_errors(run))


def test_the_pooled_network_has_walk_forward_evidence_for_both_symbols(runs) -> None:
    summary = read_asset("pooled_models", None)["neural_network"]
    assert summary["status"] == "trained" and set(summary["symbols"]) == {PLANTED, NOEDGE}
    assert summary["evidence"]["with_evidence"] == sorted((PLANTED, NOEDGE))
    metadata = materialized(runs["pooled"])["pooled_models"]
    assert "| neural_network | trained |" in metadata["pooled"].value


def test_a_pooled_model_wins_the_planted_symbol_and_is_deployed(runs) -> None:
    run = runs[f"select {PLANTED}"]
    checks = check_evaluations(run)
    assert all(checks[(ASSET, gate)].passed for gate in GATES), {g: checks[(ASSET, g)].description for g in GATES}
    assert materialized(run)[ASSET]["pooled_evidence"].value == "pooled walk-forward evidence"
    selection = read_asset("model_selection", PLANTED)
    assert selection["selected_model"] == "PooledNeuralNetwork", selection["rejected"]
    assert selection["model_type"] == "pooled_neural_network"
    assert selection["rejected"]["NeuralNetwork"] == ["not a candidate: disabled by strategy"]
    assert selection["registry"]["registered"] is True
    record = read_asset(ASSET, PLANTED)
    evidence = record["result"]["evidence"]
    assert selection["oof_accuracy"] == evidence["oof"]["accuracy"] > evidence["oof"]["baseline"]
    assert selection["p_value"] == evidence["oof"]["p_value"] < 0.01  # one competing type: alpha itself
    assert checks[(ASSET, "accuracy")].metadata["alpha"].value == pytest.approx(0.01)
    entry = read_manifest()["selections"][PLANTED]
    assert entry["selected_model"] == "PooledNeuralNetwork" and entry["run_dir"] == record["run_dir"]


def test_the_deployed_pooled_model_reloads_and_reproduces_its_holdout(runs) -> None:
    selection = read_asset("model_selection", PLANTED)
    splits = read_asset("temporal_splits", PLANTED)
    predict, lookback = load_predictor(Path(selection["run_dir"]))
    proba = predict(splits.test[splits.feature_names].to_numpy(np.float64))
    calls = apply_decision_rule(proba, selection["decision_rule"])
    accuracy = np.mean(calls == splits.test[LABEL].to_numpy()[lookback - 1 :])
    assert accuracy == pytest.approx(selection["test_accuracy"])


def test_the_random_walk_pooled_with_it_is_not_deployed(runs) -> None:
    checks = check_evaluations(runs[f"select {NOEDGE}"])
    assert not all(checks[(ASSET, gate)].passed for gate in GATES)
    selection = read_asset("model_selection", NOEDGE)
    assert selection["selected_model"] is None
    assert read_manifest()["selections"][NOEDGE]["selected_model"] is None
