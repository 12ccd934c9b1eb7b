"""The raw folder itself, as an external asset: `raw_bar_files`, with the check `raw_files_valid`.

Nothing materializes it (the files are dropped there by people or a downloader); its check lists every
file that is not a partition, with the reason. The raw-data sensor reports the check whenever that list
changes (so a bad file shows red on the asset page without anyone running anything), and the check can be
executed from the UI at any time.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from ktrdr_assets.metadata import json_value, md_table
from ktrdr_assets.partitions import scan_raw_folder
from ktrdr_assets.paths import raw_dir

RAW_FILES_KEY = dg.AssetKey("raw_bar_files")
RAW_FILES_CHECK = "raw_files_valid"

raw_bar_files = dg.AssetSpec(
    RAW_FILES_KEY,
    group_name="data",
    description="The bar files in data/raw/ (KTRDR_RAW_DIR): one symbol partition per valid "
    "{SYMBOL}_{TIMEFRAME}.csv|.parquet file, registered by the raw-data sensor.",
)


def raw_files_metadata(problems: Mapping[str, str], symbols: list[str]) -> dict:
    rows = [(name, reason) for name, reason in sorted(problems.items())]
    return {
        "folder": dg.MetadataValue.path(str(raw_dir())),
        "partitions": len(symbols),
        "not_partitions": len(problems),
        "problems": md_table(["file", "why it is not a partition"], rows) if rows else "none",
        "problem_files": json_value(dict(problems)),
    }


def raw_files_evaluation(problems: Mapping[str, str], symbols: list[str]) -> dg.AssetCheckEvaluation:
    """The check's result as the sensor reports it (runless)."""
    return dg.AssetCheckEvaluation(
        asset_key=RAW_FILES_KEY,
        check_name=RAW_FILES_CHECK,
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=raw_files_metadata(problems, symbols),
        description=_description(problems),
    )


def _description(problems: Mapping[str, str]) -> str:
    if not problems:
        return "every file in the raw folder is a symbol partition"
    return f"{len(problems)} file(s) in the raw folder are not partitions: " + "; ".join(
        f"{name}: {reason}" for name, reason in sorted(problems.items())
    )


@dg.asset_check(
    asset=RAW_FILES_KEY,
    name=RAW_FILES_CHECK,
    description="Every file in the raw folder is a valid bar file of its own symbol (warning otherwise)",
)
def raw_files_valid() -> dg.AssetCheckResult:
    scan = scan_raw_folder()
    problems = scan.ignored
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=raw_files_metadata(problems, sorted(scan.sources)),
        description=_description(problems),
    )
