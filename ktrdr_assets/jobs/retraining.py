"""Jobs, the weekly retraining schedule and the sensors that keep partitions, selection and the manifest current.

- `materialize_symbol`: the whole per-symbol graph, one run per partition.
- `select_symbol`: selection, analytics and backtest only; the rescue sensor runs it for a symbol
  whose training run failed in a model (a failed model is not a candidate; the others still compete).
- `build_manifest`: the cross-symbol deployment manifest, requested after every symbol run.
- `weekly_retraining`: Monday 03:00 UTC, one `materialize_symbol` run per registered symbol, tagged with its
  batch (the pooled models are rebuilt once after the batch: `jobs/pooled.py`).
- `raw_data_sensor`: a new file in data/raw/ becomes a partition and is trained; a changed file retrains
  that symbol only; a removed file retires its symbol (partition removed, files kept, manifest rebuilt);
  a file that cannot be a partition is reported (log, and the `raw_files_valid` check of `raw_bar_files`).
- `deployable_model_lost`: when a manifest names symbols that newly lost their current deployable model
  (`newly_lost` in its metadata), requests one `deployable_model_lost_alert` run, tagged
  `ktrdr/alert=deployable_model_lost` and `ktrdr/symbols=...`, which logs one ERROR line per symbol: hook
  a notification on that job (a run status sensor, a Dagster+ alert policy on the tag) to be told.
"""

from __future__ import annotations

import hashlib
import json
import time

import dagster as dg

from ktrdr_assets.assets.pooled import POOLED_MODELS
from ktrdr_assets.assets.raw_files import raw_files_evaluation
from ktrdr_assets.core.data.raw_changes import FileState, fingerprint_files, plan_symbol_changes
from ktrdr_assets.core.models.registry import model_specs, pooled_specs
from ktrdr_assets.deployment import symbol_job_executor
from ktrdr_assets.partitions import SYMBOL_PARTITIONS, scan_raw_folder, symbol_partitions

SYMBOL_JOB = "materialize_symbol"
SELECT_JOB = "select_symbol"
MANIFEST_JOB = "build_manifest"
#: The pooled models' evaluation on the symbol (cheap: the pooled networks train in `pooled_models`) first.
SELECTION_STAGE = (*(spec.asset_name for spec in pooled_specs()), "model_selection", "backtest", "training_analytics")
#: The tag of the symbol runs one weekly_retraining tick requested: its date.
WEEKLY_BATCH_TAG = "ktrdr/weekly_batch"

materialize_symbol = dg.define_asset_job(
    SYMBOL_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("deployment_manifest", "raw_bar_files", POOLED_MODELS),
    partitions_def=symbol_partitions,
    description="Materialize the whole graph for one symbol (one run per partition).",
    executor_def=symbol_job_executor(),  # KTRDR_EXECUTOR: in-process by default, k8s_job_executor on Kubernetes
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
    """Every Monday 03:00 UTC: one retraining run per registered symbol."""
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for symbol in sorted(context.instance.get_dynamic_partitions(SYMBOL_PARTITIONS)):
        yield dg.RunRequest(run_key=f"weekly-{stamp}-{symbol}", partition_key=symbol, tags={WEEKLY_BATCH_TAG: stamp})


def _read_cursor(cursor: str | None) -> tuple[dict[str, FileState], dict[str, str] | None, dict[str, str] | None]:
    """(file states, symbol -> digest at the last tick or None before the first, problems at the last tick).
    A cursor of the earlier format ({symbol: digest}) keeps its digests: nothing retrains on the upgrade."""
    if not cursor:
        return {}, None, None
    data = json.loads(cursor)
    if "files" not in data:  # the earlier format
        return {}, {symbol: str(digest) for symbol, digest in data.items()}, None
    states = {symbol: FileState.from_json(value) for symbol, value in data["files"].items()}
    states = {symbol: state for symbol, state in states.items() if state is not None}
    return states, {symbol: state.digest for symbol, state in states.items()}, data.get("problems")


def _write_cursor(states: dict[str, FileState], problems: dict[str, str]) -> str:
    files = {symbol: state.to_json() for symbol, state in sorted(states.items())}
    return json.dumps({"files": files, "problems": problems}, sort_keys=True)


def _short_hash(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:12]


@dg.sensor(
    jobs=[materialize_symbol, build_manifest_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def raw_data_sensor(context: dg.SensorEvaluationContext):
    """Keeps the symbol partitions equal to the raw files and trains what is new or changed:

    - a new file: its symbol becomes a partition (no reload) and a run is requested;
    - a changed file (content hash; a touched but unchanged file is not): a run for that symbol only;
    - a removed file: the symbol is retired (partition removed, warehouse files kept), the manifest rebuilt;
    - a file that is not a valid bar file name: logged, and reported as the `raw_files_valid` check.

    The first tick registers the files present and records their hashes without requesting runs.
    """
    scan = scan_raw_folder()  # the partitions, and every other file with why it is not one
    sources, problems = scan.sources, scan.ignored
    states, previous, previous_problems = _read_cursor(context.cursor)
    current_states = fingerprint_files({s: src.path for s, src in sources.items()}, states)
    current = {symbol: state.digest for symbol, state in current_states.items()}
    registered = set(context.instance.get_dynamic_partitions(SYMBOL_PARTITIONS))
    plan = plan_symbol_changes(current, previous, registered)

    partition_requests: list = []
    if plan.new:
        partition_requests.append(symbol_partitions.build_add_request(plan.new))
        context.log.info(f"new symbols registered as partitions: {plan.new}")
    if plan.retired:
        partition_requests.append(symbol_partitions.build_delete_request(plan.retired))
        context.log.info(f"retired symbols (raw file removed; partition removed, files kept): {plan.retired}")
    runs = [
        dg.RunRequest(run_key=f"{symbol}-{current[symbol]}", partition_key=symbol, job_name=SYMBOL_JOB)
        for symbol in (plan.to_train if previous is not None else [])
    ]
    if plan.retired:  # the manifest moves them to its `retired` section
        stamp = f"{_short_hash(plan.retired)}-{int(time.time())}"
        runs.append(dg.RunRequest(run_key=f"retire-{stamp}", job_name=MANIFEST_JOB))

    asset_events = []
    if problems != previous_problems:  # reported when the list changes (and on the first tick)
        for name, reason in sorted(problems.items()):
            if (previous_problems or {}).get(name) != reason:
                context.log.warning(f"raw file {name} is not a partition: {reason}")
        asset_events.append(raw_files_evaluation(problems, sorted(sources)))

    cursor = _write_cursor(current_states, problems)
    if runs:
        return dg.SensorResult(
            run_requests=runs, cursor=cursor, dynamic_partitions_requests=partition_requests, asset_events=asset_events
        )
    if previous is None:
        why = f"first tick: recorded fingerprints of {len(current)} raw files"
    else:
        why = "no raw file changed"
    if problems:
        why += f"; {len(problems)} file(s) are not partitions: {', '.join(sorted(problems))}"
    return dg.SensorResult(
        skip_reason=why, cursor=cursor, dynamic_partitions_requests=partition_requests, asset_events=asset_events
    )


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


@dg.run_failure_sensor(
    monitored_jobs=[materialize_symbol, select_symbol],
    request_job=build_manifest_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def manifest_after_failure(context: dg.RunFailureSensorContext):
    """Rebuild the manifest after a failed symbol run too: the README's "after every run" (a failed
    retraining may still have written a selection, and the manifest's stale markers follow it)."""
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
sensors = [
    raw_data_sensor,
    select_after_model_failure,
    manifest_after_selection,
    manifest_after_failure,
    deployable_model_lost,
]
