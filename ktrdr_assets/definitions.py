"""The one place everything is registered: assets, checks, resources, IO, jobs, schedules, sensors."""

from __future__ import annotations

import dagster as dg

from ktrdr_assets.assets import data, models, pooled, raw_files, selection
from ktrdr_assets.io import WarehouseIOManager
from ktrdr_assets.jobs import pooled as pooled_jobs
from ktrdr_assets.jobs.research import experiment_jobs, weekly_cleanup
from ktrdr_assets.jobs.retraining import jobs, schedules, sensors
from ktrdr_assets.progress import progress_logger
from ktrdr_assets.resources import MlflowTracking, StrategyResource
from ktrdr_assets.symbol_registry import register_at_load

defs = dg.Definitions(
    assets=[
        raw_files.raw_bar_files,
        *dg.load_assets_from_modules([data]),
        *models.build_model_assets(),
        *pooled.build_pooled_assets(),
        *selection.build_selection_assets(),
    ],
    asset_checks=[raw_files.raw_files_valid],
    jobs=[*jobs, *pooled_jobs.jobs, *experiment_jobs],
    schedules=[*schedules, weekly_cleanup],
    sensors=[*sensors, *pooled_jobs.sensors],
    resources={
        "io_manager": WarehouseIOManager(),
        "strategy": StrategyResource(),
        "mlflow": MlflowTracking(),
    },
    # One symbol's steps run in one process: no per-step interpreter start-up and code-location import.
    executor=dg.in_process_executor,
    # `console` is Dagster's default; `progress` (one line per step, epoch and fold) is what ktrdr-run selects.
    loggers={"console": dg.colored_console_logger, "progress": progress_logger},
)

# Symbols are dynamic partitions: register the raw files present now, so a file dropped a second ago is a
# partition for this process (`dagster asset materialize --partition X`) and for a reloaded code location.
register_at_load()
