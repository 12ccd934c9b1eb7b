"""Retraining: the manifest never loses a symbol's last good model, the champion alias only moves on a
passing selection, and the schedule and sensors request exactly the runs they should.

- PLANTED (a planted edge, ktrdr_assets_tests/synthetic_symbols.py) trained with the shipped gates (its
  model is selected and promoted), retrained with `min_accuracy: 0.99` (nothing passes: the manifest keeps
  the previous entry, marked stale, the champion stays, and `deployable_model_lost` requests one alert
  run naming PLANTED), then re-selected with the shipped gates (the stale entry is replaced, the champion
  moves to the retrained model);
- `raw_data_sensor` on the session's raw copy: first tick records, a changed file requests its symbol
  only, a touched but unchanged file requests nothing;
- `weekly_retraining`: one run per symbol partition per week, distinct run keys;
- `select_after_model_failure` on real failed runs: a broken neural-network config (data finished, a
  model failed) requests `select_symbol` for that symbol with the run's own strategy; a run that failed
  in the data stage requests nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import pytest
from dagster._utils.schedules import cron_string_iterator

from ktrdr_assets.assets.raw_files import raw_files_valid
from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.selection.gates import GATE_RULES
from ktrdr_assets.definitions import defs
from ktrdr_assets.io import read_asset
from ktrdr_assets.jobs.retraining import (
    ALERT_JOB,
    WEEKLY_BATCH_TAG,
    deployable_model_lost,
    manifest_after_failure,
    manifest_after_selection,
    raw_data_sensor,
    select_after_model_failure,
    weekly_retraining,
)
from ktrdr_assets.partitions import SYMBOL_PARTITIONS, symbol_partitions
from ktrdr_assets.paths import raw_dir, warehouse_dir
from ktrdr_assets.resources.tracking import EXPERIMENT_NAME
from ktrdr_assets.symbol_registry import register_symbols
from ktrdr_assets_tests.helpers import (
    MANUAL_REVIEW,
    SELECTION_ASSETS,
    apply_partition_requests,
    champion,
    check_evaluations,
    materialized,
    mlflow_runs,
    model_records,
    read_manifest,
    registry_versions,
    restored,
    run_job,
    step_errors,
    strategy_run_config,
    write_strategy,
)
from ktrdr_assets_tests.synthetic_symbols import ALL_SYMBOLS, NOEDGE, PLANTED

SHIPPED_GATES: dict = {}  # the strategy's own gates
STRICT_GATES = {"min_accuracy": 0.99}


# --------------------------------------------------------------------------- 1. last good entry kept
@dataclass
class Attempt:
    """One PLANTED run followed by a manifest rebuild, with what they left behind."""

    run: dg.ExecuteInProcessResult
    manifest_run: dg.ExecuteInProcessResult
    records: dict[str, dict]
    selection: dict
    manifest: dict
    champion: Any
    versions: int
    alert: list  # the run requests of the deployable_model_lost sensor on this manifest
    backtest: dict
    selection_written: float  # the selection file's modification time


#: PLANTED's own gates differ from the base gates in one value that changes no outcome: the manifest shows it.
OWN_GATES = {"symbol_overrides": {PLANTED: {"gates": {"max_gap": 0.999}}}}


def _alert_tick(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """The run requests of one tick of the alert sensor on the latest manifest (evaluated at once)."""
    return deployable_model_lost.evaluate_tick(dg.build_sensor_context(instance=instance)).run_requests


def _attempt(job: str, gates: dict, module_dir: Path, instance: dg.DagsterInstance, name: str) -> Attempt:
    strategy = write_strategy(module_dir / f"{name}.yaml", gates=gates, **OWN_GATES)
    run = run_job(strategy, PLANTED, job=job, instance=instance)
    manifest_run = run_job(strategy, job="build_manifest", instance=instance)
    return Attempt(
        run=run,
        manifest_run=manifest_run,
        records=model_records(PLANTED),
        selection=read_asset("model_selection", PLANTED),
        manifest=read_manifest(),
        champion=champion(PLANTED) if registry_versions(PLANTED) else None,
        versions=len(registry_versions(PLANTED)),
        alert=_alert_tick(instance),
        backtest=read_asset("backtest", PLANTED),
        selection_written=(warehouse_dir() / "model_selection" / f"{PLANTED}.json").stat().st_mtime,
    )


@pytest.fixture(scope="module")
def attempts(module_dir: Path, instance: dg.DagsterInstance) -> dict[str, Attempt]:
    """passing training -> failing retraining -> passing re-selection, in one warehouse, in this order."""
    return {
        "pass": _attempt("materialize_symbol", SHIPPED_GATES, module_dir, instance, "pass"),
        "fail": _attempt("materialize_symbol", STRICT_GATES, module_dir, instance, "fail"),
        "reselect": _attempt("select_symbol", SHIPPED_GATES, module_dir, instance, "reselect"),
    }


def _selected_record(attempt: Attempt) -> dict:
    return attempt.records[attempt.selection["model_type"]]


def test_the_manifest_shows_each_symbols_own_gates(attempts: dict[str, Attempt], module_dir: Path) -> None:
    manifest = attempts["pass"].manifest
    assert manifest["selections"][PLANTED]["selection_criteria"]["max_train_val_gap"] == 0.999
    base = load_strategy(module_dir / "pass.yaml").gates
    assert base.max_gap != 0.999 and manifest["selection_criteria"]["max_train_val_gap"] == base.max_gap


def test_a_passing_run_puts_its_model_in_the_manifest_and_promotes_it(attempts: dict[str, Attempt]) -> None:
    first = attempts["pass"]
    assert first.run.success, step_errors(first.run)
    assert first.manifest_run.success, step_errors(first.manifest_run)
    assert first.selection["selected_model"], first.selection["rejected"]
    entry = first.manifest["selections"][PLANTED]
    assert entry == first.selection and "stale" not in entry
    assert first.champion.run_id == _selected_record(first)["mlflow_run_id"]
    assert int(first.champion.version) == first.selection["registry"]["version"]
    # the planted symbol ends deployed: its gate checks green, the manifest's check green, backtest reported
    record = _selected_record(first)
    checks = check_evaluations(first.run)
    assert all(checks[(f"{record['model_type']}_model", gate)].passed for gate in GATE_RULES)
    assert check_evaluations(first.manifest_run)[("deployment_manifest", "every_symbol_deployable")].passed
    assert first.backtest["candidates"][first.selection["selected_model"]]["deployed"] is True


def test_a_failing_retraining_keeps_the_last_good_entry_marked_stale(attempts: dict[str, Attempt]) -> None:
    first, failed = attempts["pass"], attempts["fail"]
    assert failed.run.success, step_errors(failed.run)
    # it really retrained: every model has a new run folder, the earlier ones are still on disk
    for model_type, record in failed.records.items():
        assert record["run_dir"] != first.records[model_type]["run_dir"]
        assert Path(first.records[model_type]["run_dir"]).is_dir()
    assert failed.selection["selected_model"] is None and failed.selection["action"] == MANUAL_REVIEW
    entry = failed.manifest["selections"][PLANTED]
    previous = first.manifest["selections"][PLANTED]
    assert {k: v for k, v in entry.items() if k not in ("stale", "stale_since", "last_attempt")} == previous
    # the attempt's time is when the failed selection was written, not when some manifest was rebuilt
    attempted = datetime.fromisoformat(entry["last_attempt"]["attempted_at"]).timestamp()
    assert int(attempted) == int(failed.selection_written)
    assert entry["stale"] is True
    attempt = entry["last_attempt"]
    assert attempt["action"] == MANUAL_REVIEW
    assert attempt["reason"] == failed.selection["reason"]
    assert attempt["rejected"] == failed.selection["rejected"]
    assert entry["stale_since"] == attempt["attempted_at"]
    assert datetime.fromisoformat(attempt["attempted_at"]) >= datetime.fromisoformat(first.manifest["timestamp"])
    assert failed.manifest["summary"] == {
        "total_symbols": 1,
        "models_selected": 1,
        "manual_review_needed": 0,
        "stale_selections": 1,
        "retired_symbols": 0,
    }
    # the stale entry is still deployable: the check passes and the run succeeds, but the symbol newly lost its
    # current model, which the manifest, the check's metadata and the alert sensor say
    check = check_evaluations(failed.manifest_run)[("deployment_manifest", "every_symbol_deployable")]
    assert check.passed is True and failed.manifest_run.success
    lost = {PLANTED: "kept its last good " + previous["selected_model"] + " (stale): No models met quality criteria"}
    assert failed.manifest["alerts"] == {"newly_lost": lost}
    assert check.metadata["newly_lost"].value == lost
    assert "newly lost: PLANTED" in check.description


def test_the_alert_sensor_requests_one_run_when_a_symbol_newly_lost_its_model(
    attempts: dict[str, Attempt], instance: dg.DagsterInstance
) -> None:
    assert attempts["pass"].alert == []
    (request,) = attempts["fail"].alert
    assert request.tags["ktrdr/alert"] == "deployable_model_lost" and request.tags["ktrdr/symbols"] == PLANTED
    assert deployable_model_lost.job_name == ALERT_JOB
    run = defs.resolve_job_def(ALERT_JOB).execute_in_process(run_config=request.run_config, instance=instance)
    assert run.success
    assert attempts["reselect"].alert == []  # a fresh model again: nothing newly lost


def test_a_failing_retraining_does_not_move_the_champion(attempts: dict[str, Attempt]) -> None:
    first, failed = attempts["pass"], attempts["fail"]
    assert failed.versions == first.versions
    assert failed.champion.version == first.champion.version
    assert failed.champion.run_id == first.champion.run_id


def test_the_next_passing_selection_replaces_the_stale_entry(attempts: dict[str, Attempt]) -> None:
    failed, again = attempts["fail"], attempts["reselect"]
    assert again.run.success, step_errors(again.run)
    assert set(materialized(again.run)) == set(SELECTION_ASSETS)
    entry = again.manifest["selections"][PLANTED]
    assert entry == again.selection and "stale" not in entry
    assert entry["run_dir"] == failed.records[again.selection["model_type"]]["run_dir"]  # the retrained model
    assert again.versions == failed.versions + 1
    assert again.champion.run_id == _selected_record(again)["mlflow_run_id"] != attempts["pass"].champion.run_id
    assert again.manifest["summary"]["stale_selections"] == 0


# --------------------------------------------------------------------------- 2. schedule
def _schedule_requests(when: datetime, instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    return list(weekly_retraining(dg.build_schedule_context(instance=instance, scheduled_execution_time=when)))


def test_weekly_retraining_requests_one_run_per_symbol_each_week(instance: dg.DagsterInstance) -> None:
    ticks = cron_string_iterator(
        datetime(2026, 1, 1, tzinfo=UTC).timestamp(),
        weekly_retraining.cron_schedule,
        weekly_retraining.execution_timezone,
    )
    first, second, third = next(ticks), next(ticks), next(ticks)
    assert second - first == third - second == timedelta(days=7)
    assert (first.weekday(), first.hour, first.minute, str(first.tzinfo)) == (0, 3, 0, "UTC")
    assert weekly_retraining.job_name == "materialize_symbol"
    this_week, next_week = _schedule_requests(first, instance), _schedule_requests(second, instance)
    symbols = symbol_partitions.get_partition_keys(dynamic_partitions_store=instance)
    assert sorted(symbols) == list(ALL_SYMBOLS)
    for requests in (this_week, next_week):
        assert sorted(r.partition_key for r in requests) == symbols
        assert len({r.run_key for r in requests}) == len(symbols)
        assert len({r.tags[WEEKLY_BATCH_TAG] for r in requests}) == 1  # one batch: the pooled models follow it
    assert not {r.run_key for r in this_week} & {r.run_key for r in next_week}


# --------------------------------------------------------------------------- 3. raw data sensor
@pytest.fixture
def msft_raw() -> Iterator[Path]:
    """The session's raw MSFT file, restored byte for byte (and its mtime) after the test."""
    with restored(raw_dir() / "MSFT_1d.csv") as path:
        yield path


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> tuple[dg.SensorResult, str | None]:
    """One evaluation of the sensor, with its partition requests applied to the instance as the daemon does."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = raw_data_sensor(context)
    apply_partition_requests(instance, result)
    return result, result.cursor


def _skip(result: dg.SensorResult) -> str:
    assert not result.run_requests, result.run_requests
    return result.skip_reason.skip_message


def test_raw_data_sensor_requests_exactly_the_changed_symbol(msft_raw: Path, instance: dg.DagsterInstance) -> None:
    first, cursor = _tick(instance, None)
    assert "first tick" in _skip(first)
    assert sorted(json.loads(cursor)["files"]) == list(ALL_SYMBOLS)

    unchanged, cursor = _tick(instance, cursor)
    assert _skip(unchanged) == "no raw file changed"

    aapl = raw_dir() / "AAPL_1d.csv"
    os.utime(aapl, (aapl.stat().st_atime + 3600, aapl.stat().st_mtime + 3600))  # touched, same content
    touched, cursor = _tick(instance, cursor)
    assert _skip(touched) == "no raw file changed"

    lines = msft_raw.read_text().splitlines(keepends=True)
    msft_raw.write_text("".join(lines[:-1]))  # the newest bar withdrawn: new content
    changed, cursor = _tick(instance, cursor)
    assert [(r.job_name, r.partition_key) for r in changed.run_requests] == [("materialize_symbol", "MSFT")]
    assert changed.run_requests[0].run_key == f"MSFT-{json.loads(cursor)['files']['MSFT'][3]}"
    assert not changed.dynamic_partitions_requests

    again, cursor = _tick(instance, cursor)
    assert _skip(again) == "no raw file changed"  # recorded: the same change is not requested twice


def test_a_cursor_of_the_earlier_format_retrains_nothing(instance: dg.DagsterInstance) -> None:
    """Deployed sensors carry {symbol: digest} cursors: after the upgrade their next tick requests nothing."""
    from ktrdr_assets.core.data.raw_changes import file_digest

    old_cursor = json.dumps({path.name.split("_")[0]: file_digest(path) for path in sorted(raw_dir().glob("*.csv"))})
    result, cursor = _tick(instance, old_cursor)
    assert _skip(result) == "no raw file changed"
    assert sorted(json.loads(cursor)["files"]) == list(ALL_SYMBOLS)


@pytest.fixture
def dropped_files(instance: dg.DagsterInstance) -> Iterator[Path]:
    """The session's raw folder, where the test drops files; they are removed after it, and the instance's
    partitions are put back to the shipped symbols."""
    before = set(raw_dir().iterdir())
    yield raw_dir()
    for path in set(raw_dir().iterdir()) - before:
        path.unlink()
    for symbol in set(instance.get_dynamic_partitions(SYMBOL_PARTITIONS)) - set(ALL_SYMBOLS):
        instance.delete_dynamic_partition(SYMBOL_PARTITIONS, symbol)
    register_symbols(instance)


def test_a_dropped_file_becomes_a_partition_and_is_trained_without_a_reload(
    dropped_files: Path, instance: dg.DagsterInstance, fast_strategy: Path
) -> None:
    _, cursor = _tick(instance, None)
    shutil.copy(dropped_files / "MSFT_1d.csv", dropped_files / "NEWCO_1d.csv")
    result, cursor = _tick(instance, cursor)
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [["NEWCO"]]
    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [("materialize_symbol", "NEWCO")]
    assert "NEWCO" in instance.get_dynamic_partitions(SYMBOL_PARTITIONS)
    # the requested run works on the new partition (its first asset, here), with the definitions loaded as they were
    run = run_job(fast_strategy, "NEWCO", ["ohlcv"], instance=instance)
    assert run.success, step_errors(run)
    assert _skip(_tick(instance, cursor)[0]) == "no raw file changed"


def test_a_removed_file_retires_its_symbol_and_rebuilds_the_manifest(
    dropped_files: Path, instance: dg.DagsterInstance
) -> None:
    shutil.copy(dropped_files / "MSFT_1d.csv", dropped_files / "GONE_1d.csv")
    _, cursor = _tick(instance, None)
    assert "GONE" in instance.get_dynamic_partitions(SYMBOL_PARTITIONS)
    (dropped_files / "GONE_1d.csv").unlink()
    result, cursor = _tick(instance, cursor)
    (delete,) = result.dynamic_partitions_requests
    assert isinstance(delete, dg.DeleteDynamicPartitionsRequest) and delete.partition_keys == ["GONE"]
    assert [r.job_name for r in result.run_requests] == ["build_manifest"]
    assert "GONE" not in instance.get_dynamic_partitions(SYMBOL_PARTITIONS)


def test_a_file_that_cannot_be_a_partition_is_reported_once(
    dropped_files: Path, instance: dg.DagsterInstance, capfd: pytest.CaptureFixture
) -> None:
    _, cursor = _tick(instance, None)
    (dropped_files / "bad name_1d.csv").write_text("x")
    capfd.readouterr()
    result, cursor = _tick(instance, cursor)
    assert "1 file(s) are not partitions: bad name_1d.csv" in _skip(result)
    assert "WARNING - raw file bad name_1d.csv is not a partition: symbol 'bad name'" in capfd.readouterr().err
    (check,) = result.asset_events
    assert isinstance(check, dg.AssetCheckEvaluation)
    assert (check.asset_key, check.check_name, check.passed) == (dg.AssetKey("raw_bar_files"), "raw_files_valid", False)
    assert "bad name_1d.csv" in check.metadata["problem_files"].value
    again, cursor = _tick(instance, cursor)
    assert again.asset_events == []  # reported when the list changes, not every minute
    (dropped_files / "bad name_1d.csv").unlink()
    fixed, _ = _tick(instance, cursor)
    assert [e.passed for e in fixed.asset_events] == [True]
    # the check itself (executable from the UI) reads the folder as it is
    (dropped_files / "notes.xlsx").write_text("x")
    evaluation = raw_files_valid()
    assert evaluation.passed is False and "notes.xlsx" in evaluation.metadata["problem_files"].data


# --------------------------------------------------------------------------- 4. rescue after a model failure
@dataclass
class Rescue:
    """A real NOEDGE run with an invalid neural-network config, the sensor's requests, the requested run."""

    strategy: Path
    failed: dg.ExecuteInProcessResult
    requests: list[dg.RunRequest]
    rescue: dg.ExecuteInProcessResult
    selection: dict
    records: dict[str, dict]


def _failure_requests(instance: dg.DagsterInstance, run: dg.ExecuteInProcessResult) -> list[dg.RunRequest]:
    context = dg.build_run_status_sensor_context(
        sensor_name=select_after_model_failure.name,
        dagster_instance=instance,
        dagster_run=run.dagster_run,
        dagster_event=run.get_run_failure_event(),
    ).for_run_failure()
    return list(select_after_model_failure(context) or [])


@pytest.fixture(scope="module")
def rescue(module_dir: Path, instance: dg.DagsterInstance) -> Rescue:
    strategy = write_strategy(module_dir / "broken_nn.yaml", models={"neural_network": {"hidden_layers": []}})
    failed = run_job(strategy, NOEDGE, instance=instance)
    requests = _failure_requests(instance, failed)
    assert len(requests) == 1, requests
    request = requests[0]
    run = defs.resolve_job_def(select_after_model_failure.job_name).execute_in_process(
        run_config=request.run_config, partition_key=request.partition_key, instance=instance, raise_on_error=False
    )
    return Rescue(strategy, failed, requests, run, read_asset("model_selection", NOEDGE), model_records(NOEDGE))


def test_a_model_failure_fails_only_that_model(rescue: Rescue) -> None:
    assert not rescue.failed.success
    errors = step_errors(rescue.failed)
    assert list(errors) == ["neural_network_model"]
    assert "models.neural_network.hidden_layers" in errors["neural_network_model"]
    done = set(materialized(rescue.failed))
    assert {"temporal_splits", "random_forest_model", "xgboost_model", "lstm_model"} <= done
    assert "model_selection" not in done


def test_the_sensor_requests_selection_for_that_symbol_with_the_runs_strategy(rescue: Rescue) -> None:
    (request,) = rescue.requests
    assert select_after_model_failure.job_name == "select_symbol"
    assert request.partition_key == NOEDGE
    assert request.run_key == f"select-after-{rescue.failed.run_id}"
    # the rescue selection uses the failed run's own strategy, not the shipped default
    assert request.run_config == strategy_run_config(rescue.strategy)


def test_the_requested_selection_runs_without_the_failed_model(rescue: Rescue) -> None:
    assert rescue.rescue.success, step_errors(rescue.rescue)
    assert set(materialized(rescue.rescue)) == set(SELECTION_ASSETS)
    selection = rescue.selection
    # the failed model is reported under its model name, never selected
    assert selection["rejected"]["NeuralNetwork"] == ["not a candidate: never materialized"]
    trained = {record["model_name"] for record in rescue.records.values()}
    assert trained == {"RandomForest", "XGBoost", "LSTM", "GRU", "AttentionLSTM", "CNNLSTM"}
    assert trained == (set(selection["rejected"]) - {"NeuralNetwork"}) | ({selection["selected_model"]} - {None})


def test_a_data_stage_failure_requests_nothing(module_dir: Path, instance: dg.DagsterInstance) -> None:
    strategy = write_strategy(module_dir / "too_few_bars.yaml", data={"min_bars": 100_000})
    run = run_job(strategy, "MSFT", instance=instance)
    assert not run.success and "temporal_splits" not in materialized(run)
    assert _failure_requests(instance, run) == []


def test_a_successful_symbol_run_requests_the_manifest(
    attempts: dict[str, Attempt], module_dir: Path, instance: dg.DagsterInstance
) -> None:
    run = attempts["pass"].run
    context = dg.build_run_status_sensor_context(
        sensor_name=manifest_after_selection.name,
        dagster_instance=instance,
        dagster_run=run.dagster_run,
        dagster_event=run.get_run_success_event(),
    )
    request = manifest_after_selection(context)
    assert request.run_key == f"manifest-after-{run.run_id}"
    assert manifest_after_selection.job_name == "build_manifest"
    assert request.run_config == strategy_run_config(module_dir / "pass.yaml")


def test_a_failed_symbol_run_requests_the_manifest_too(rescue: Rescue, instance: dg.DagsterInstance) -> None:
    """The README says the manifest is rebuilt after every run: a failed one included."""
    context = dg.build_run_status_sensor_context(
        sensor_name=manifest_after_failure.name,
        dagster_instance=instance,
        dagster_run=rescue.failed.dagster_run,
        dagster_event=rescue.failed.get_run_failure_event(),
    ).for_run_failure()
    request = manifest_after_failure(context)
    assert request.run_key == f"manifest-after-{rescue.failed.run_id}"
    assert manifest_after_failure.job_name == "build_manifest"
    assert request.run_config == strategy_run_config(rescue.strategy)


# --------------------------------------------------------------------------- 5. MLflow parent runs
def test_every_dagster_run_has_its_own_finished_mlflow_parent(attempts: dict[str, Attempt], rescue: Rescue) -> None:
    """Runs without a model step (select_symbol) must not leave their parent RUNNING, nor lend it to
    the next run in the same process."""
    assert mlflow.active_run() is None
    runs = [attempt.run for attempt in attempts.values()] + [rescue.failed, rescue.rescue]
    for run in runs:
        tagged = mlflow_runs(EXPERIMENT_NAME, dagster_run_id=run.run_id)
        parents = [r for r in tagged if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1, (run.dagster_run.job_name, [p.info.run_id for p in parents])
        assert parents[0].info.status == "FINISHED", (run.dagster_run.job_name, parents[0].info.status)
