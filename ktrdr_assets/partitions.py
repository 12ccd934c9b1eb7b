"""Symbol partitions: one per raw bar file `data/raw/{SYMBOL}_{TIMEFRAME}` + one of the loader's raw suffixes.

The partitions are dynamic (`DynamicPartitionsDefinition`, stored in the Dagster instance): a file
dropped into `data/raw/` becomes a partition with no reload, registered by the raw-data sensor, by
`ktrdr-run` and when the definitions load (`ktrdr_assets/symbol_registry.py`). Partition keys are
validated before any path is built from them. A file in the raw folder that is not a partition (a bad
name, an unsupported kind, a second file for a symbol) is logged and kept with its reason
(`ignored_raw_files`), so the `ohlcv` asset's metadata, `ktrdr-run` and the raw-data sensor (the
`raw_files_valid` check) can say why; hidden files and Markdown notes (`SOURCES.md`) are not bar files and
are skipped.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ktrdr_assets.core.data.bars import RAW_SUFFIXES, BarsError, parse_raw_filename, raw_suffix
from ktrdr_assets.core.util.names import PartitionKeyError, validate_symbol
from ktrdr_assets.paths import raw_dir

__all__ = [
    "SYMBOL_PARTITIONS",
    "PartitionKeyError",
    "RawScan",
    "RawSource",
    "discover_sources",
    "ignored_raw_files",
    "scan_raw_folder",
    "source_for",
    "symbol_partitions",
    "validate_symbol",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawSource:
    symbol: str
    timeframe: str
    path: Path


@dataclass(frozen=True)
class RawScan:
    """The raw folder read once: symbol -> raw file, and file name -> why it is not a partition."""

    sources: dict[str, RawSource] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)

    def reasons_for(self, symbol: str) -> list[str]:
        """`NAME: reason` for each ignored file that looks meant for `symbol` (`{symbol}_...` or `{symbol}.`)."""
        return [
            f"{name}: {reason}"
            for name, reason in self.ignored.items()
            if name.startswith(f"{symbol}_") or name.startswith(f"{symbol}.")
        ]


def scan_raw_folder(folder: Path | None = None) -> RawScan:
    """Every entry of the raw folder, sorted by name: a partition (first file of a symbol wins) or ignored."""
    folder = folder or raw_dir()
    scan = RawScan()
    if not folder.is_dir():
        return scan
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() == ".md":
            continue
        reason = _not_a_partition(path, scan.sources)
        if reason is not None:
            log.warning("ignoring raw file %s: %s", path.name, reason)
            scan.ignored[path.name] = reason
            continue
        symbol, timeframe = parse_raw_filename(path.name)
        scan.sources[symbol] = RawSource(symbol, timeframe, path)
    return scan


def _not_a_partition(path: Path, sources: dict[str, RawSource]) -> str | None:
    if not path.is_file():
        return "not a file"
    if raw_suffix(path.name) is None:
        return f"not a raw bar file kind (expected {{SYMBOL}}_{{TIMEFRAME}} and one of {', '.join(RAW_SUFFIXES)})"
    try:
        symbol, _ = parse_raw_filename(path.name)
        validate_symbol(symbol)
    except (BarsError, PartitionKeyError) as err:
        return str(err).removeprefix(f"raw file name {path.name!r}: ")
    if symbol in sources:
        return f"symbol {symbol} already comes from {sources[symbol].path.name}"
    return None


def discover_sources(folder: Path | None = None) -> dict[str, RawSource]:
    """Map symbol -> raw file for every well-named bar file in the raw folder (sorted, first wins)."""
    return scan_raw_folder(folder).sources


def ignored_raw_files(folder: Path | None = None) -> dict[str, str]:
    """File name -> why it is not a partition, for every such file in the raw folder."""
    return scan_raw_folder(folder).ignored


def source_for(symbol: str) -> RawSource:
    """The raw file behind a partition key; a clear error for an unknown or unsafe key."""
    validate_symbol(symbol)
    scan = scan_raw_folder()
    if symbol not in scan.sources:
        why = "; ".join(scan.reasons_for(symbol))
        raise PartitionKeyError(
            f"no raw bar file for symbol {symbol!r} in {raw_dir()}"
            + (f" ({why})" if why else "")
            + f"; known symbols: {sorted(scan.sources)}"
        )
    return scan.sources[symbol]


#: The instance's registry of symbols (one partition per raw file); see ktrdr_assets/symbol_registry.py.
SYMBOL_PARTITIONS = "symbol"
symbol_partitions = dg.DynamicPartitionsDefinition(name=SYMBOL_PARTITIONS)

# Per-partition check specs (every check result belongs to its symbol) are a Dagster preview feature.
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*", category=dg.PreviewWarning)
