"""Partition-aware warehouse IO manager: one folder per asset, one file (or folder) per symbol.

- pandas DataFrames are stored as Parquet: `{root}/{asset}/{SYMBOL}.parquet`
- bundles (objects with `to_dir(path)` and a `from_dir(path)` classmethod, e.g. TemporalSplits) as a
  folder: `{root}/{asset}/{SYMBOL}/`
- plain dicts as JSON: `{root}/{asset}/{SYMBOL}.json`

Every write goes to a temporary sibling first and is renamed over the old version only when complete,
so a failed run leaves the last good materialization in place.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ktrdr_assets.core.util.atomic import atomic_directory, write_text_atomic, write_with
from ktrdr_assets.core.util.jsonsafe import dumps
from ktrdr_assets.partitions import validate_symbol
from ktrdr_assets.paths import warehouse_dir

_BUNDLE_MARKER = "bundle_type.txt"
#: Bundles stored before the package layout showed the pipeline name their type by its old module.
_MOVED_MODULES = {"ktrdr_assets.core.splits": "ktrdr_assets.core.data.splits"}


def asset_path(root: Path, asset_key: dg.AssetKey, partition: str | None, suffix: str = "") -> Path:
    """Where one partition of one asset lives; the partition key is validated before use."""
    folder = root.joinpath(*asset_key.path)
    name = validate_symbol(partition) if partition is not None else "all"
    return folder / f"{name}{suffix}"


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores each asset partition under `root` (default: the project's data/warehouse)."""

    root: str | None = None

    @property
    def _root(self) -> Path:
        return Path(self.root).resolve() if self.root else warehouse_dir()

    def _partition(self, context: dg.OutputContext | dg.InputContext) -> str | None:
        return context.asset_partition_key if context.has_asset_partitions else None

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        key, partition = context.asset_key, self._partition(context)
        if isinstance(obj, pd.DataFrame):
            path = asset_path(self._root, key, partition, ".parquet")
            write_with(path, lambda tmp: obj.to_parquet(tmp))
        elif hasattr(obj, "to_dir") and hasattr(type(obj), "from_dir"):
            path = asset_path(self._root, key, partition)
            with atomic_directory(path) as tmp:
                obj.to_dir(tmp)
                kind = type(obj)
                (tmp / _BUNDLE_MARKER).write_text(f"{kind.__module__}:{kind.__qualname__}")
        elif isinstance(obj, dict):
            path = asset_path(self._root, key, partition, ".json")
            write_text_atomic(path, dumps(obj))
        else:
            raise TypeError(f"{key.to_user_string()}: cannot store a {type(obj).__name__}")
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.upstream_output.asset_key if context.upstream_output else context.asset_key
        partition = self._partition(context)
        for suffix in (".parquet", ".json", ""):
            path = asset_path(self._root, key, partition, suffix)
            if path.exists():
                return _read(path)
        raise FileNotFoundError(
            f"{key.to_user_string()} has no materialization for {partition!r} under {self._root}; materialize it first"
        )


def _read(path: Path) -> Any:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    module_name, _, qualname = (path / _BUNDLE_MARKER).read_text().strip().partition(":")
    module_name = _MOVED_MODULES.get(module_name, module_name)
    if not module_name.startswith("ktrdr_assets."):
        raise ValueError(f"{path}: refusing to load a bundle of foreign type {module_name}:{qualname}")
    kind = getattr(importlib.import_module(module_name), qualname)
    return kind.from_dir(path)


def read_asset(asset: str, symbol: str | None, root: Path | None = None) -> Any:
    """Read the latest stored partition of an asset outside Dagster (CLI, notebooks, tests)."""
    found = read_asset_if_present(asset, symbol, root)
    if found is None:
        raise FileNotFoundError(f"{asset} has no materialization for {symbol!r} under {root or warehouse_dir()}")
    return found


def read_all_partitions(asset: str, root: Path | None = None) -> dict[str, Any]:
    """{partition: document} of every JSON partition stored for `asset` (also of symbols no longer in data/raw)."""
    folder = (root or warehouse_dir()) / asset
    return {path.stem: _read(path) for path in sorted(folder.glob("*.json"))}


def read_asset_if_present(asset: str, symbol: str | None, root: Path | None = None) -> Any | None:
    """The latest stored partition of an asset, or None when it was never materialized."""
    root = root or warehouse_dir()
    key = dg.AssetKey(asset)
    for suffix in (".parquet", ".json", ""):
        path = asset_path(root, key, symbol, suffix)
        if path.exists():
            return _read(path)
    return None
