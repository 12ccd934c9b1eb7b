"""What a deployment-manifest rebuild reads from the warehouse, and the rebuild itself (serialized).

The active symbols are the raw files present (a symbol whose file was removed is retired); each one's
newest selection is its `model_selection` file, made when that file was written (its modification time:
the attempt's time, unchanged by later rebuilds), with the gates it was judged by (`selection_criteria`,
recorded by `model_selection`; the symbol's gates in the current strategy for a selection stored before).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.selection.manifest import selection_criteria
from ktrdr_assets.core.selection.manifest_lock import ManifestInputs, rebuild_manifest
from ktrdr_assets.io import asset_path
from ktrdr_assets.partitions import discover_sources
from ktrdr_assets.paths import warehouse_dir

MANIFEST_ASSET = dg.AssetKey("deployment_manifest")
SELECTION_ASSET = dg.AssetKey("model_selection")
#: The Dagster concurrency pool of manifest rebuilds (limit 1: dagster.yaml's pools.default_limit).
MANIFEST_POOL = "manifest"


def manifest_path(root: Path | None = None) -> Path:
    return asset_path(root or warehouse_dir(), MANIFEST_ASSET, None, ".json")


def _file_time(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")


def read_manifest_inputs(config: StrategyConfig, root: Path | None = None) -> ManifestInputs:
    """The active symbols, and the newest stored selection of each (with its symbol's criteria and time)."""
    root = root or warehouse_dir()
    active = frozenset(discover_sources())
    selections: dict[str, dict[str, Any]] = {}
    attempted_at: dict[str, str] = {}
    for symbol in sorted(active):
        path = asset_path(root, SELECTION_ASSET, symbol, ".json")
        try:
            selection = json.loads(path.read_text(encoding="utf-8"))
            attempted_at[symbol] = _file_time(path)
        except FileNotFoundError:
            continue
        if "selection_criteria" not in selection:  # a selection stored before they were recorded in it
            selection["selection_criteria"] = selection_criteria(config.for_symbol(symbol).gates)
        selections[symbol] = selection
    return ManifestInputs(active=active, selections=selections, attempted_at=attempted_at)


def manifest_lock_path(root: Path | None = None) -> Path:
    """The rebuilds' lock file, outside the asset's folder (which holds only the manifest)."""
    return (root or warehouse_dir()) / ".locks" / "deployment_manifest.lock"


def rebuild_deployment_manifest(config: StrategyConfig, root: Path | None = None) -> dict[str, Any]:
    """Rebuild `deployment_manifest/all.json` from every active symbol's newest selection, serialized."""
    return rebuild_manifest(
        manifest_path(root),
        lambda: read_manifest_inputs(config, root),
        config.gates,
        lock=manifest_lock_path(root),
    )
