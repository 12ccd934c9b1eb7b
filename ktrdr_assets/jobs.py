"""Jobs: the whole per-symbol graph."""

from __future__ import annotations

import dagster as dg

from .partitions import symbol_partitions

SYMBOL_JOB = "materialize_symbol"

materialize_symbol = dg.define_asset_job(
    SYMBOL_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("deployment_manifest"),
    partitions_def=symbol_partitions,
    description="Materialize the whole graph for one symbol (one run per partition).",
)
