"""Moving from the static symbol partitions to dynamic ones needs no migration: materializations recorded under
the static definition show as materialized partitions of the dynamic one (the UI's partition status cache is
recomputed when the definition changes), once the symbols are registered, which the definitions load does."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from ktrdr_assets.partitions import SYMBOL_PARTITIONS, PartitionKeyError, symbol_partitions
from ktrdr_assets.symbol_registry import register_symbols, registered_symbols
from ktrdr_assets_tests.synthetic_symbols import ALL_SYMBOLS


def _asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(name="ohlcv", partitions_def=partitions_def)
    def ohlcv() -> int:
        return 1

    return ohlcv


def _materialized(instance: dg.DagsterInstance, partitions_def: dg.PartitionsDefinition) -> set[str]:
    with partition_loading_context(dynamic_partitions_store=instance):
        value = get_and_update_asset_status_cache_value(instance, dg.AssetKey("ohlcv"), partitions_def)
        return set(value.deserialize_materialized_partition_subsets(partitions_def).get_partition_keys())


def test_materializations_under_the_static_partitions_keep_showing(tmp_path: Path) -> None:
    before = dg.StaticPartitionsDefinition(["AAPL", "EURUSD", "MSFT"])  # the definition on main before
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        for symbol in ("AAPL", "MSFT"):
            dg.materialize([_asset(before)], partition_key=symbol, instance=instance, resources={})
        assert _materialized(instance, before) == {"AAPL", "MSFT"}
        assert register_symbols(instance) == list(ALL_SYMBOLS)  # what loading the definitions does
        assert registered_symbols(instance) == set(ALL_SYMBOLS)
        assert _materialized(instance, symbol_partitions) == {"AAPL", "MSFT"}
        assert symbol_partitions.name == SYMBOL_PARTITIONS


def test_registering_validates_keys_and_adds_only_what_is_missing(tmp_path: Path) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert register_symbols(instance, ["MSFT"]) == ["MSFT"]
        assert register_symbols(instance, ["MSFT", "AAPL"]) == ["AAPL"]
        with pytest.raises(PartitionKeyError):
            register_symbols(instance, ["../etc"])
        assert registered_symbols(instance) == {"AAPL", "MSFT"}
