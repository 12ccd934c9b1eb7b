"""The one place everything is registered: assets, checks, resources, IO, jobs, schedules, sensors."""

from __future__ import annotations

import dagster as dg

from .assets import data
from .io import WarehouseIOManager
from .resources import StrategyResource

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([data]),
    asset_checks=dg.load_asset_checks_from_modules([data]),
    resources={"io_manager": WarehouseIOManager(), "strategy": StrategyResource()},
    # One symbol's steps run in one process: no per-step interpreter start-up and code-location import.
    executor=dg.in_process_executor,
)
