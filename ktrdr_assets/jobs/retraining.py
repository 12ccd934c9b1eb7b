"""Jobs, the weekly retraining schedule and the sensors that keep selection and the manifest current.

- `materialize_symbol`: the whole per-symbol graph, one run per partition.
- `select_symbol`: selection, analytics and backtest only; the rescue sensor runs it for a symbol
  whose training run failed in a model (a failed model is not a candidate; the others still compete).
- `build_manifest`: the cross-symbol deployment manifest, requested after every symbol run.
- `weekly_retraining`: Monday 03:00 UTC, one `materialize_symbol` run per symbol, tagged with its batch
  (the pooled models are rebuilt once after the batch: `jobs/pooled.py`).
- `raw_data_sensor`: a new or changed file in data/raw/ requests a run for that symbol only.
- `deployable_model_lost`: when a manifest names symbols that newly lost their current deployable model
  (`newly_lost` in its metadata), requests one `deployable_model_lost_alert` run, tagged
  `ktrdr/alert=deployable_model_lost` and `ktrdr/symbols=...`, which logs one ERROR line per symbol: hook
  a notification on that job (a run status sensor, a Dagster+ alert policy on the tag) to be told.
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg

from ktrdr_assets.assets.pooled import POOLED_MODELS
from ktrdr_assets.core.models.registry import model_specs, pooled_specs
from ktrdr_assets.partitions import discover_sources, symbol_partitions

SYMBOL_JOB = "materialize_symbol"
SELECT_JOB = "select_symbol"
MANIFEST_JOB = "build_manifest"
#: The pooled models' evaluation on the symbol (cheap: the pooled networks train in `pooled_models`) first.
SELECTION_STAGE = (*(spec.asset_name for spec in pooled_specs()), "model_selection", "backtest", "training_analytics")
#: The tag of the symbol runs one weekly_retraining tick requested: its date.
WEEKLY_BATCH_TAG = "ktrdr/weekly_batch"

materialize_symbol = dg.define_asset_job(
    SYMBOL_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("deployment_manifest", POOLED_MODELS),
    partitions_def=symbol_partitions,
    description="Materialize the whole graph for one symbol (one run per partition).",
)
select_symbol = dg.define_asset_job(
    SELECT_JOB,
    selection=dg.AssetSelection.assets(*SELECTION_STAGE),
    partitions_def=symbol_partitions,
    description="Re-run the pooled evaluation, selection, analytics and backtest for one symbol from the models "
    "on disk.",
)
build_manifest_job = dg.define_asset_job(
    MANIFEST_JOB,
    selection=dg.AssetSelection.assets("deployment_manifest"),
    description="Rebuild the deployment manifest from every symbol's latest selection.",
)


@dg.schedule(cron_schedule="0 3 * * 1", job=materialize_symbol, execution_timezone="UTC")
def weekly_retraining(context: dg.ScheduleEvaluationContext):
    """Every Monday 03:00 UTC: one retraining run per symbol."""
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for symbol in symbol_partitions.get_partition_keys():
        yield dg.RunRequest(run_key=f"weekly-{stamp}-{symbol}", partition_key=symbol, tags={WEEKLY_BATCH_TAG: stamp})


def file_fingerprint(path) -> str:
    """Content hash of a raw file (a touched but unchanged file does not retrain)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def changed_symbols(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    return sorted(symbol for symbol, fp in current.items() if previous.get(symbol) != fp)


@dg.sensor(job=materialize_symbol, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def raw_data_sensor(context: dg.SensorEvaluationContext):
    """Requests a retraining run for each symbol whose raw file is new or changed since the last tick."""
    sources = discover_sources()
    current = {symbol: file_fingerprint(src.path) for symbol, src in sources.items()}
    previous = json.loads(context.cursor) if context.cursor else None
    context.update_cursor(json.dumps(current, sort_keys=True))
    if previous is None:
        return dg.SkipReason(f"first tick: recorded fingerprints of {len(current)} raw files")
    known = set(symbol_partitions.get_partition_keys())
    requests, unknown = [], []
    for symbol in changed_symbols(previous, current):
        if symbol in known:
            requests.append(dg.RunRequest(run_key=f"{symbol}-{current[symbol]}", partition_key=symbol))
        else:
            unknown.append(symbol)
    if unknown:
        context.log.warning(f"new symbols {unknown}: reload the code location to add their partitions")
    return requests or dg.SkipReason("no raw file changed")


def _same_resources(run: dg.DagsterRun) -> dict:
    """The run's resource config (strategy file, MLflow), so a follow-up run uses the same strategy."""
    resources = run.run_config.get("resources")
    return {"resources": resources} if resources else {}


def _materialized_in_run(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in records}


@dg.run_failure_sensor(
    monitored_jobs=[materialize_symbol], request_job=select_symbol, default_status=dg.DefaultSensorStatus.RUNNING
)
def select_after_model_failure(context: dg.RunFailureSensorContext):
    """A symbol run whose data stage finished but a model failed still gets a selection."""
    run = context.dagster_run
    done = _materialized_in_run(context.instance, run.run_id)
    models = {spec.asset_name for spec in model_specs()}
    if "temporal_splits" in done and "model_selection" not in done and done & models:
        yield dg.RunRequest(
            run_key=f"select-after-{run.run_id}",
            partition_key=run.tags.get("dagster/partition"),
            run_config=_same_resources(run),
        )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[materialize_symbol, select_symbol],
    request_job=build_manifest_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def manifest_after_selection(context: dg.RunStatusSensorContext):
    """Rebuild the manifest after every successful symbol run."""
    run = context.dagster_run
    return dg.RunRequest(run_key=f"manifest-after-{run.run_id}", run_config=_same_resources(run))


ALERT_JOB = "deployable_model_lost_alert"
ALERT_TAG = "ktrdr/alert"


@dg.op(
    config_schema={"lost": dg.Field(dg.Map(str, str), description="{symbol: what happened}")},
    description="Logs one ERROR line per symbol that newly lost its current deployable model.",
)
def report_deployable_model_lost(context) -> None:
    for symbol, what in sorted(context.op_config["lost"].items()):
        context.log.error(f"{symbol} lost its current deployable model: {what}")


@dg.job(name=ALERT_JOB, tags={ALERT_TAG: "deployable_model_lost"}, description=report_deployable_model_lost.description)
def deployable_model_lost_alert():
    report_deployable_model_lost()


@dg.asset_sensor(
    asset_key=dg.AssetKey("deployment_manifest"),
    job=deployable_model_lost_alert,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def deployable_model_lost(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """A manifest whose `newly_lost` metadata names symbols requests one alert run for it."""
    materialization = asset_event.asset_materialization
    value = materialization.metadata.get("newly_lost") if materialization else None
    lost = dict(value.value) if value is not None and value.value else {}
    if not lost:
        return dg.SkipReason("no symbol lost its deployable model")
    return dg.RunRequest(
        run_key=f"lost-{asset_event.run_id}",
        run_config={"ops": {report_deployable_model_lost.name: {"config": {"lost": lost}}}},
        tags={ALERT_TAG: "deployable_model_lost", "ktrdr/symbols": ",".join(sorted(lost))},
    )


jobs = [materialize_symbol, select_symbol, build_manifest_job, deployable_model_lost_alert]
schedules = [weekly_retraining]
sensors = [raw_data_sensor, select_after_model_failure, manifest_after_selection, deployable_model_lost]
