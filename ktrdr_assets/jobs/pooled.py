"""The pooled models' job and the sensors that rebuild them once a week and put them in every selection.

- `train_pooled_models`: the `pooled_models` asset (one network per pooled type, every symbol's data).
- `pooled_after_weekly_retraining`: once every symbol's run of the newest `weekly_retraining` batch has
  finished, one `train_pooled_models` run for that batch (its run key is the batch: requested once).
- `select_after_pooled_training`: after a successful pooled training, `select_symbol` for every symbol, so
  each symbol's pooled evaluation is redone and competes in its selection (the manifest follows through
  `manifest_after_selection`). Without a walk-forward of its own a pooled candidate is rejected by the
  evidence-based gates (gates.NO_EVIDENCE), so it is reported, never deployed, for now.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from ktrdr_assets.assets.pooled import POOLED_MODELS
from ktrdr_assets.jobs.retraining import SYMBOL_JOB, WEEKLY_BATCH_TAG, _same_resources, select_symbol
from ktrdr_assets.partitions import symbol_partitions

TRAIN_POOLED_JOB = "train_pooled_models"
PARTITION_TAG = "dagster/partition"

train_pooled_models = dg.define_asset_job(
    TRAIN_POOLED_JOB,
    selection=dg.AssetSelection.assets(POOLED_MODELS),
    description="Train the pooled networks (one per pooled model type) on every symbol's data.",
)


def batch_finished(runs: Iterable[dg.DagsterRun], symbols: Iterable[str]) -> bool:
    """Whether every symbol has a finished run among `runs` (one weekly batch) and none is still going."""
    runs = list(runs)
    finished = {run.tags.get(PARTITION_TAG) for run in runs if run.is_finished}
    return bool(runs) and all(run.is_finished for run in runs) and set(symbols) <= finished


def newest_batch(instance: dg.DagsterInstance, limit: int = 100) -> str | None:
    """The batch tag of the newest weekly symbol run, if any."""
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=SYMBOL_JOB), limit=limit):
        if WEEKLY_BATCH_TAG in run.tags:
            return run.tags[WEEKLY_BATCH_TAG]
    return None


@dg.sensor(job=train_pooled_models, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def pooled_after_weekly_retraining(context: dg.SensorEvaluationContext):
    """Rebuilds the pooled models once per weekly batch, after every symbol's run of it finished."""
    batch = newest_batch(context.instance)
    if batch is None:
        return dg.SkipReason("no weekly retraining batch yet")
    runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=SYMBOL_JOB, tags={WEEKLY_BATCH_TAG: batch}))
    if not batch_finished(runs, symbol_partitions.get_partition_keys(dynamic_partitions_store=context.instance)):
        return dg.SkipReason(f"weekly batch {batch}: waiting for every symbol's run to finish")
    return dg.RunRequest(
        run_key=f"pooled-weekly-{batch}", tags={WEEKLY_BATCH_TAG: batch}, run_config=_same_resources(runs[0])
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[train_pooled_models],
    request_job=select_symbol,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def select_after_pooled_training(context: dg.RunStatusSensorContext):
    """Every symbol's selection again, with the newly trained pooled models evaluated and competing."""
    run = context.dagster_run
    for symbol in symbol_partitions.get_partition_keys(dynamic_partitions_store=context.instance):
        yield dg.RunRequest(
            run_key=f"select-after-pooled-{run.run_id}-{symbol}", partition_key=symbol, run_config=_same_resources(run)
        )


jobs = [train_pooled_models]
sensors = [pooled_after_weekly_retraining, select_after_pooled_training]
