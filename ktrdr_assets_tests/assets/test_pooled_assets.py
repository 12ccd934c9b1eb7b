"""Pooled models and the per-type switch, run through Dagster in this module's warehouse.

One weekly batch, in the order the platform runs it: MSFT's and AAPL's data stages (runs tagged with the
batch), `train_pooled_models` (the pooled NN and LSTM on both symbols; EURUSD has no data yet and is left
out with the reason), MSFT's `select_symbol` (the pooled models evaluated on MSFT with their gate checks,
competing in its selection), then EURUSD's data, a symbol the pooled models never saw: scored through the
unknown-asset row, then the data stages of the session's other symbols (PLANTED, NOEDGE), so that every
symbol has a finished run of the batch. The sensors are evaluated on those real runs. A type switched off
in the strategy reports "disabled by strategy", trains nothing, evaluates no gate and is not a candidate.

`train_pooled_models` also runs the pooled walk-forward (calendar folds over MSFT and AAPL): MSFT's pooled
candidates are judged by the same gates as every other on that evidence; EURUSD, never pooled, has none and
its pooled gates fail for lack of it (gates.NO_EVIDENCE). test_pooled_deployment.py deploys a pooled model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ktrdr_assets.assets.pooled import POOLED_MODELS, pooled_models
from ktrdr_assets.core.selection.gates import NO_EVIDENCE
from ktrdr_assets.definitions import defs
from ktrdr_assets.io import read_asset
from ktrdr_assets.jobs.pooled import pooled_after_weekly_retraining, select_after_pooled_training
from ktrdr_assets.jobs.retraining import WEEKLY_BATCH_TAG
from ktrdr_assets.paths import warehouse_dir
from ktrdr_assets_tests.helpers import (
    DATA_ASSETS,
    PERMISSIVE_GATES,
    POOLED_ASSETS,
    check_evaluations,
    materialized,
    run_job,
    step_errors,
    strategy_run_config,
    write_strategy,
)
from ktrdr_assets_tests.synthetic_symbols import ALL_SYMBOLS

BATCH = "2026-01-05"
GATES = ("overfitting_gap", "accuracy", "stability")
TRAINED = ("pooled_neural_network_model", "pooled_lstm_model")


def _data_run(strategy: Path, symbol: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The data stage of `symbol`, as a run of the weekly batch."""
    return defs.resolve_job_def("materialize_symbol").execute_in_process(
        partition_key=symbol,
        run_config=strategy_run_config(strategy),
        instance=instance,
        asset_selection=[dg.AssetKey(a) for a in DATA_ASSETS],
        tags={WEEKLY_BATCH_TAG: BATCH},
    )


def _sensor_tick(instance: dg.DagsterInstance):
    return pooled_after_weekly_retraining(dg.build_sensor_context(instance=instance))


@dataclass
class Batch:
    strategy: Path
    before_all: object  # the sensor's answer while EURUSD (and the other symbols) had no run yet
    pooled: dg.ExecuteInProcessResult
    select: dg.ExecuteInProcessResult
    new_symbol: dg.ExecuteInProcessResult
    after_all: object


@pytest.fixture(scope="module")
def batch(module_dir: Path, instance: dg.DagsterInstance) -> Batch:
    strategy = write_strategy(module_dir / "strategy.yaml", gates=PERMISSIVE_GATES)
    for symbol in ("MSFT", "AAPL"):
        assert _data_run(strategy, symbol, instance).success
    before_all = _sensor_tick(instance)
    pooled = run_job(strategy, job="train_pooled_models", instance=instance)
    select = run_job(strategy, "MSFT", job="select_symbol", instance=instance)
    assert _data_run(strategy, "EURUSD", instance).success
    new_symbol = run_job(strategy, "EURUSD", POOLED_ASSETS, instance=instance)
    for symbol in sorted(set(ALL_SYMBOLS) - {"MSFT", "AAPL", "EURUSD"}):  # every symbol's run of the batch
        assert _data_run(strategy, symbol, instance).success
    return Batch(strategy, before_all, pooled, select, new_symbol, _sensor_tick(instance))


def test_pooled_models_depends_on_every_partition_and_stays_out_of_symbol_runs() -> None:
    for upstream in ("features", "temporal_splits", "augmented_train_set"):
        assert isinstance(pooled_models.get_partition_mapping(dg.AssetKey(upstream)), dg.AllPartitionMapping)
    assert pooled_models.partitions_def is None
    symbol_job = defs.resolve_job_def("materialize_symbol").asset_layer.selected_asset_keys
    assert dg.AssetKey(POOLED_MODELS) not in symbol_job and {dg.AssetKey(a) for a in POOLED_ASSETS} <= symbol_job
    pooled_job = defs.resolve_job_def("train_pooled_models").asset_layer.selected_asset_keys
    assert pooled_job == {dg.AssetKey(POOLED_MODELS)}


def test_one_network_per_pooled_type_on_every_compatible_symbol(batch: Batch) -> None:
    assert batch.pooled.success, step_errors(batch.pooled)
    summaries = read_asset(POOLED_MODELS, None)
    assert {t for t, s in summaries.items() if s["status"] == "trained"} == {"neural_network", "lstm"}
    for model_type in ("gru", "attention_lstm", "cnn_lstm"):  # not listed in models.pooled.model_types
        assert summaries[model_type]["reason"] == "disabled by strategy (models.pooled)"
    for model_type in ("neural_network", "lstm"):
        summary = summaries[model_type]
        assert summary["asset_ids"] == {"AAPL": 1, "MSFT": 2} and set(summary["symbols"]) == {"AAPL", "MSFT"}
        assert "not materialized" in summary["excluded"]["EURUSD"]
        assert Path(summary["run_dir"]).parent.parent == warehouse_dir() / "model_runs" / "_pooled"
        assert summary["evidence"]["with_evidence"] == ["AAPL", "MSFT"]  # the pooled walk-forward's
        assert summary["evidence"]["fold_symbols"] == dict.fromkeys(("1", "2", "3"), ["AAPL", "MSFT"])
        for symbol in ("AAPL", "MSFT"):
            assert (Path(summary["run_dir"]) / "walk_forward" / symbol / "evidence.json").is_file()
    metadata = materialized(batch.pooled)[POOLED_MODELS]
    assert "EURUSD" in metadata["left_out"].value and "not materialized" in metadata["left_out"].value


def test_each_symbol_evaluates_the_pooled_models_with_the_gates_and_selects_among_them(batch: Batch) -> None:
    assert batch.select.success, step_errors(batch.select)
    metadata = materialized(batch.select)
    checks = check_evaluations(batch.select)
    for asset in TRAINED:
        assert metadata[asset]["asset_embedding"].value == "trained"
        assert metadata[asset]["pooled_symbols"].value == "AAPL, MSFT"
        for gate in GATES:
            assert checks[(asset, gate)].partition == "MSFT"
        record = read_asset(asset, "MSFT")
        assert record["symbol"] == "MSFT" and Path(record["run_dir"]).parent.name == record["model_type"]
    assert metadata["pooled_gru_model"]["status"].value == "disabled by strategy (models.pooled)"
    assert not any(key[0] == "pooled_gru_model" for key in checks)
    selection = read_asset("model_selection", "MSFT")
    competing = {selection["selected_model"], *selection["alternatives"], *selection["rejected"]} - {None}
    assert {"PooledNeuralNetwork", "PooledLSTM"} <= competing
    for name in ("PooledNeuralNetwork", "PooledLSTM"):  # candidates under the gates, never excluded ...
        assert not any(r.startswith("not a candidate") for r in selection["rejected"].get(name, []))
        assert name in selection["candidates"]
        # ... judged on their pooled walk-forward evidence, never rejected for lack of it
        assert not any(NO_EVIDENCE in r for r in selection["rejected"].get(name, []))
    for asset in TRAINED:  # the gate checks read the same evidence
        assert metadata[asset]["pooled_evidence"].value == "pooled walk-forward evidence"
        record = read_asset(asset, "MSFT")
        evidence = record["result"]["evidence"]
        assert evidence["scheme"]["pooled"]["folds_tested"] == [1, 2, 3]
        assert metadata[asset]["oof_accuracy"].value == evidence["oof"]["accuracy"]
        for gate in GATES:
            assert checks[(asset, gate)].description != NO_EVIDENCE
    assert selection["rejected"]["LSTM"] == ["not a candidate: never materialized"]
    assert selection["selected_model"] in (None, "PooledNeuralNetwork", "PooledLSTM")  # the only candidates


def test_a_symbol_never_seen_is_scored_through_the_unknown_asset_row(batch: Batch) -> None:
    assert batch.new_symbol.success, step_errors(batch.new_symbol)
    for asset in TRAINED:
        assert materialized(batch.new_symbol)[asset]["asset_embedding"].value == "unknown asset row"
        record = read_asset(asset, "EURUSD")
        assert record["result"]["pooled"]["asset_id"] == 0
        assert any("unknown-asset embedding" in w for w in record["result"]["warnings"])
        assert "not in the pooled training" in materialized(batch.new_symbol)[asset]["pooled_evidence"].value
        assert record["result"]["evidence"] is None  # never deployed on the holdout alone
        checks = check_evaluations(batch.new_symbol)
        assert all(checks[(asset, gate)].description == NO_EVIDENCE for gate in GATES)


def test_the_weekly_batch_rebuilds_the_pooled_models_once_all_its_runs_finished(batch: Batch) -> None:
    assert isinstance(batch.before_all, dg.SkipReason) and "waiting" in batch.before_all.skip_message
    request = batch.after_all
    assert isinstance(request, dg.RunRequest) and request.run_key == f"pooled-weekly-{BATCH}"
    assert request.run_config == strategy_run_config(batch.strategy)
    assert pooled_after_weekly_retraining.job_name == "train_pooled_models"


def test_a_pooled_training_requests_every_symbols_selection(batch: Batch, instance: dg.DagsterInstance) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name=select_after_pooled_training.name,
        dagster_instance=instance,
        dagster_run=batch.pooled.dagster_run,
        dagster_event=batch.pooled.get_run_success_event(),
    )
    requests = list(select_after_pooled_training(context))
    assert sorted(r.partition_key for r in requests) == sorted(ALL_SYMBOLS)  # every symbol of the session
    assert all(r.run_config == strategy_run_config(batch.strategy) for r in requests)
    assert select_after_pooled_training.job_name == "select_symbol"


def test_a_switched_off_type_trains_nothing_and_is_not_a_candidate(
    batch: Batch, module_dir: Path, instance: dg.DagsterInstance
) -> None:
    on = run_job(batch.strategy, "MSFT", ["gru_model"], instance=instance)
    assert on.success and read_asset("gru_model", "MSFT")["model_type"] == "gru"
    folders = sorted((warehouse_dir() / "model_runs" / "MSFT" / "gru").iterdir())
    off_strategy = write_strategy(
        module_dir / "gru_off.yaml", gates=PERMISSIVE_GATES, models={"gru": {"enabled": False}}
    )
    off = run_job(off_strategy, "MSFT", ["gru_model", "model_selection"], instance=instance)
    assert off.success, step_errors(off)
    assert materialized(off)["gru_model"]["status"].value == "disabled by strategy"
    assert not any(key[0] == "gru_model" for key in check_evaluations(off))  # no gate verdict
    assert sorted((warehouse_dir() / "model_runs" / "MSFT" / "gru").iterdir()) == folders  # nothing trained
    selection = read_asset("model_selection", "MSFT")  # its earlier record is on disk, yet not a candidate
    assert selection["rejected"]["GRU"] == ["not a candidate: disabled by strategy"]
    assert not any(key[0] == "gru_model" for key in check_evaluations(off))
