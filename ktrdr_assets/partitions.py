"""Symbol partitions: one per raw bar file `data/raw/{SYMBOL}_{TIMEFRAME}.csv|.parquet`.

The partitions are dynamic (`DynamicPartitionsDefinition`, stored in the Dagster instance): a file
dropped into `data/raw/` becomes a partition with no reload, registered by the raw-data sensor, by
`ktrdr-run` and when the definitions load (`ktrdr_assets/symbol_registry.py`). Partition keys are
validated before any path is built from them.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ktrdr_assets.core.data.bars import BarsError, parse_raw_filename
from ktrdr_assets.core.util.names import PartitionKeyError, validate_symbol
from ktrdr_assets.paths import raw_dir

__all__ = [
    "SYMBOL_PARTITIONS",
    "PartitionKeyError",
    "RawSource",
    "discover_sources",
    "source_for",
    "symbol_partitions",
    "validate_symbol",
]

log = logging.getLogger(__name__)

RAW_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class RawSource:
    symbol: str
    timeframe: str
    path: Path


def discover_sources(folder: Path | None = None) -> dict[str, RawSource]:
    """Map symbol -> raw file for every well-named bar file in the raw folder (sorted, first wins)."""
    folder = folder or raw_dir()
    sources: dict[str, RawSource] = {}
    if not folder.is_dir():
        return sources
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in RAW_SUFFIXES or not path.is_file():
            continue
        try:
            symbol, timeframe = parse_raw_filename(path.name)
            validate_symbol(symbol)
        except (BarsError, PartitionKeyError) as err:
            log.warning("ignoring raw file %s: %s", path.name, err)
            continue
        if symbol in sources:
            log.warning(
                "ignoring raw file %s: symbol %s already comes from %s", path.name, symbol, sources[symbol].path.name
            )
            continue
        sources[symbol] = RawSource(symbol, timeframe, path)
    return sources


def source_for(symbol: str) -> RawSource:
    """The raw file behind a partition key; a clear error for an unknown or unsafe key."""
    validate_symbol(symbol)
    sources = discover_sources()
    if symbol not in sources:
        raise PartitionKeyError(
            f"no raw bar file for symbol {symbol!r} in {raw_dir()}; known symbols: {sorted(sources)}"
        )
    return sources[symbol]


#: The instance's registry of symbols (one partition per raw file); see ktrdr_assets/symbol_registry.py.
SYMBOL_PARTITIONS = "symbol"
symbol_partitions = dg.DynamicPartitionsDefinition(name=SYMBOL_PARTITIONS)

# Per-partition check specs (every check result belongs to its symbol) are a Dagster preview feature.
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*", category=dg.PreviewWarning)
