"""The whole story on a real instance, once on the embedded SQLite profile and once on the PostgreSQL profile
(`dagster_home/postgres/dagster.yaml` against a throw-away cluster, MLflow's store in its `mlflow` database):

1. new raw files are dropped (three on SQLite, two on PostgreSQL); one raw-data sensor tick makes them
   partitions (no reload) and requests their runs;
2. the `materialize_symbol` runs are launched at once through the instance's run queue (the UI's launch
   mutation, the daemon's dequeue loop; the profile's dagster.yaml with `max_concurrent_runs` set to the
   number of symbols) and run as concurrent processes;
3. as each symbol run finishes, `manifest_after_selection` requests a manifest rebuild: the `build_manifest`
   runs join the queue while the other symbol runs still go on;
4. one file is removed: the sensor retires its symbol and requests a manifest rebuild (run in-process).

Checked: every run succeeds; the final manifest holds each symbol's newest selection; the `gpu` pool let one
torch step run at a time across the concurrent runs and the `manifest` pool one rebuild at a time (from the
runs' step start/end events); every Dagster run has exactly one MLflow parent run holding exactly its own
symbol's four trainings; the retired symbol left the manifest's selections for `retired` and its partition.
Small slices of MSFT's bars, tiny models and a two-fold walk-forward keep each run to seconds of compute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ktrdr_assets.partitions import SYMBOL_PARTITIONS
from ktrdr_assets.paths import PROJECT_ROOT, default_tracking_uri, raw_dir
from ktrdr_assets.resources.tracking import EXPERIMENT_NAME
from ktrdr_assets_tests.helpers import (
    MODEL_TYPES,
    TINY,
    apply_partition_requests,
    run_job,
    strategy_run_config,
    write_strategy,
)
from ktrdr_assets_tests.run_queue import overlapping, queued_deployment, step_intervals

SYMBOLS = ("QA", "QB", "QC")
#: Symbols per backend: three runs at once on SQLite; two on PostgreSQL (still concurrent runs, pools and
#: rebuilds; CI's time budget asks for as few whole-graph runs on PostgreSQL as possible).
SYMBOLS_BY_BACKEND = {"sqlite": SYMBOLS, "postgres": SYMBOLS[:2]}
#: rows of MSFT's file (after the header) each new symbol gets: different data, the same shape
SLICES = {"QA": (1, 1000), "QB": (1100, 2100), "QC": (2200, 3200)}
TORCH_STEPS = ("neural_network_model", "lstm_model")
#: The tiny models with fewer epochs, and the shortest walk-forward: each run is seconds of compute.
QUICK_MODELS = {
    **TINY,
    "random_forest": {"n_estimators": 10, "cross_validation": {"folds": 2}},
    "xgboost": {"n_estimators": 10, "early_stopping_rounds": 3, "cross_validation": {"folds": 2}},
    "neural_network": {**TINY["neural_network"], "epochs": 3},
    "lstm": {**TINY["lstm"], "epochs": 2},
}
QUICK_EVALUATION = {"folds": 2, "max_epochs_per_fold": 2}
PROFILES = {
    "sqlite": PROJECT_ROOT / "dagster_home" / "dagster.yaml",
    "postgres": PROJECT_ROOT / "dagster_home" / "postgres" / "dagster.yaml",
}


@dataclass
class Story:
    backend: str
    symbols: tuple[str, ...]
    instance: dg.DagsterInstance
    warehouse: Path
    tick: dg.SensorResult
    symbol_runs: dict[str, dg.DagsterRun]  # symbol -> run
    manifest_runs: list[dg.DagsterRun]
    manifest: dict
    retire_tick: dg.SensorResult
    retire_run: dg.DagsterRun
    retired_manifest: dict
    partitions_after: list[str]


def _drop_symbols(folder: Path, symbols: tuple[str, ...] = SYMBOLS) -> None:
    lines = (PROJECT_ROOT / "data" / "raw" / "MSFT_1d.csv").read_text().splitlines(keepends=True)
    for symbol in symbols:
        first, last = SLICES[symbol]
        (folder / f"{symbol}_1d.csv").write_text(lines[0] + "".join(lines[first:last]))


def _sensor(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    from ktrdr_assets.jobs.retraining import raw_data_sensor

    result = raw_data_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    apply_partition_requests(instance, result)
    return result


def _manifest_requests(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> list[dg.RunRequest]:
    from ktrdr_assets.jobs.retraining import manifest_after_selection

    requests = []
    for run in runs:
        success = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records
        if not success:  # reported by the tests
            continue
        context = dg.build_run_status_sensor_context(
            sensor_name=manifest_after_selection.name,
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=success[0].event_log_entry.dagster_event,
        )
        requests.append(manifest_after_selection(context))
    return requests


@pytest.fixture(scope="module", params=sorted(PROFILES))
def story(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    backend = request.param
    root = tmp_path_factory.mktemp(f"concurrent_{backend}")
    home, raw, warehouse = root / "dagster_home", root / "raw", root / "warehouse"
    home.mkdir()
    raw.mkdir()
    profile = yaml.safe_load(PROFILES[backend].read_text())
    symbols = SYMBOLS_BY_BACKEND[backend]
    profile["concurrency"]["runs"]["max_concurrent_runs"] = len(symbols)  # every symbol run at once
    (home / "dagster.yaml").write_text(yaml.safe_dump(profile))
    strategy = write_strategy(root / "strategy.yaml", models=QUICK_MODELS, evaluation=QUICK_EVALUATION)
    with pytest.MonkeyPatch.context() as env:
        if backend == "postgres":
            cluster = request.getfixturevalue("postgres")
            for name in ("dagster", "mlflow"):
                cluster.create_database(name)
            for key, value in cluster.env().items():
                env.setenv(key, value)
        env.setenv("DAGSTER_HOME", str(home))
        env.setenv("KTRDR_RAW_DIR", str(raw))
        env.setenv("KTRDR_WAREHOUSE_DIR", str(warehouse))
        env.delenv("MLFLOW_TRACKING_URI")  # the profile decides: DAGSTER_HOME/mlflow.db or the `mlflow` database
        env.setenv("PYTHONWARNINGS", "ignore")
        with dg.DagsterInstance.get() as instance:
            assert instance.run_storage.__class__.__name__.startswith("Postgres" if backend == "postgres" else "Sqlite")
            first = _sensor(instance, None)  # the sensor was running before the files came
            _drop_symbols(raw, symbols)
            tick = _sensor(instance, first.cursor)
            with queued_deployment(instance) as deployment:
                for run_request in tick.run_requests:  # with the tiny models' strategy, as set in the launchpad
                    deployment.launch_request(run_request, "materialize_symbol", strategy_run_config(strategy))

                def rebuild_after(run: dg.DagsterRun) -> None:  # manifest_after_selection, as each run ends
                    if run.job_name == "materialize_symbol":
                        for request in _manifest_requests(instance, [run]):
                            deployment.launch_request(request, "build_manifest")

                runs = list(deployment.drain(on_finished=rebuild_after).values())
            symbol_runs = {run.tags["dagster/partition"]: run for run in runs if run.job_name == "materialize_symbol"}
            manifest_runs = [run for run in runs if run.job_name == "build_manifest"]
            manifest = json.loads((warehouse / "deployment_manifest" / "all.json").read_text())

            (raw / f"{symbols[-1]}_1d.csv").unlink()
            retire_tick = _sensor(instance, tick.cursor)
            (retire_request,) = retire_tick.run_requests  # the rebuild it requests, run here in-process
            retire_run = run_job(strategy, job=retire_request.job_name, instance=instance).dagster_run
            yield Story(
                backend=backend,
                symbols=symbols,
                instance=instance,
                warehouse=warehouse,
                tick=tick,
                symbol_runs=symbol_runs,
                manifest_runs=manifest_runs,
                manifest=manifest,
                retire_tick=retire_tick,
                retire_run=retire_run,
                retired_manifest=json.loads((warehouse / "deployment_manifest" / "all.json").read_text()),
                partitions_after=sorted(instance.get_dynamic_partitions(SYMBOL_PARTITIONS)),
            )
    assert raw_dir() != raw  # the session's folders are back


def _failures(story: Story, runs) -> dict[str, list[str]]:
    """What went wrong in each run that did not succeed: its status, failure and engine messages."""
    out = {}
    for run in runs:
        if run.status != dg.DagsterRunStatus.SUCCESS:
            lines = [run.status.value]
            for entry in story.instance.all_logs(run.run_id):
                event = entry.dagster_event
                if event is not None and event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE", "ENGINE_EVENT"):
                    data = event.event_specific_data
                    error = getattr(data, "error", None)
                    lines.append(f"{event.event_type_value}: {entry.message} {error.to_string() if error else ''}")
            out[run.run_id] = lines
    return out


def test_new_files_become_partitions_and_their_runs_are_requested(story: Story) -> None:
    assert [r.partition_keys for r in story.tick.dynamic_partitions_requests] == [list(story.symbols)]
    assert sorted(r.partition_key for r in story.tick.run_requests) == list(story.symbols)


def test_three_symbol_runs_launched_at_once_through_the_queue_all_succeed(story: Story) -> None:
    runs = story.symbol_runs.values()
    assert sorted(story.symbol_runs) == list(story.symbols)
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs), _failures(story, runs)
    # they ran as concurrent processes: at least two runs overlapped in time
    spans = {}
    for symbol, run in story.symbol_runs.items():
        record = story.instance.get_run_record_by_id(run.run_id)
        spans[symbol] = (record.start_time, record.end_time)
    assert overlapping(spans), spans


def _materialized(story: Story, run: dg.DagsterRun) -> set[str]:
    records = story.instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in records.records}


def _pool_waits(story: Story, runs, pool: str) -> int:
    """How many times a step of these runs waited for a slot of `pool` (Dagster's engine events)."""
    return sum(
        f"blocked by limit for pool {pool}" in entry.message
        for run in runs
        for entry in story.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    )


def test_the_final_manifest_holds_each_symbols_newest_selection(story: Story) -> None:
    """Every rebuild wrote the manifest (with tiny models no symbol is deployable, so its blocking check
    fails those runs: the manifest is written all the same), and the last one holds every newest selection."""
    for run in story.manifest_runs:
        assert "deployment_manifest" in _materialized(story, run), _failures(story, [run])
    assert sorted(story.manifest["selections"]) == list(story.symbols)
    for symbol in story.symbols:
        newest = json.loads((story.warehouse / "model_selection" / f"{symbol}.json").read_text())
        assert story.manifest["selections"][symbol] == newest


def test_the_pools_let_one_gpu_step_and_one_manifest_rebuild_run_at_a_time(story: Story) -> None:
    symbol_runs = list(story.symbol_runs.values())
    torch_steps = {
        f"{symbol}/{step}": interval
        for symbol, run in story.symbol_runs.items()
        for step, interval in step_intervals(story.instance, run.run_id).items()
        if step in TORCH_STEPS
    }
    assert len(torch_steps) == len(story.symbols) * len(TORCH_STEPS)
    assert overlapping(torch_steps) == [], torch_steps
    assert _pool_waits(story, symbol_runs, "gpu") > 0  # the runs did compete for the GPU: the pool made them wait
    rebuilds = {
        run.run_id: step_intervals(story.instance, run.run_id)["deployment_manifest"] for run in story.manifest_runs
    }
    assert len(rebuilds) == len(story.symbols) and overlapping(rebuilds) == [], rebuilds


def test_mlflow_runs_of_concurrent_dagster_runs_never_mix(story: Story) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(default_tracking_uri())  # the profile's store (the story's environment is still set)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    for symbol, run in story.symbol_runs.items():
        tagged = client.search_runs([experiment.experiment_id], f"tags.dagster_run_id = '{run.run_id}'")
        parents = [r for r in tagged if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1, (symbol, [p.info.run_id for p in parents])
        children = client.search_runs(
            [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'"
        )
        assert sorted(c.data.tags["model_type"] for c in children) == sorted(MODEL_TYPES)
        assert {c.data.tags["symbol"] for c in children} == {symbol}
        assert {c.data.tags["dagster_run_id"] for c in children} == {run.run_id}
        assert {c.info.status for c in children} == {"FINISHED"}


def test_a_removed_file_retires_its_symbol(story: Story) -> None:
    *kept, gone = story.symbols
    assert [r.partition_keys for r in story.retire_tick.dynamic_partitions_requests] == [[gone]]
    assert "deployment_manifest" in _materialized(story, story.retire_run), _failures(story, [story.retire_run])
    assert story.partitions_after == kept
    manifest = story.retired_manifest
    assert sorted(manifest["selections"]) == kept
    assert manifest["retired"][gone]["last_entry"] == story.manifest["selections"][gone]
    assert manifest["retired"][gone]["retired_at"] == manifest["timestamp"]
    assert manifest["alerts"]["newly_lost"] == {}  # a retired symbol is not a lost one
    assert (story.warehouse / "model_selection" / f"{gone}.json").is_file()  # files kept
