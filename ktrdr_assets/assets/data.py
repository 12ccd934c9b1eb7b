"""The data half of the graph: bars -> indicators -> fuzzy memberships -> labels -> features ->
splits -> augmented train set. Each asset loads config, calls one core function, attaches metadata.
"""

import dagster as dg
import pandas as pd

from ktrdr_assets.core.data.augmentation import augment_train_set
from ktrdr_assets.core.data.bar_stats import bar_stats
from ktrdr_assets.core.data.bars import BarsError, load_raw_bars, load_sources_config
from ktrdr_assets.core.data.features import build_features
from ktrdr_assets.core.data.fuzzy import compute_memberships, fuzzy_coverage
from ktrdr_assets.core.data.indicators import compute_indicators
from ktrdr_assets.core.data.labels import LABEL, label_distribution, make_labels
from ktrdr_assets.core.data.moves import check_one_bar_moves
from ktrdr_assets.core.data.signals import CLASS_NAMES
from ktrdr_assets.core.data.splits import TemporalSplits, temporal_split, verify_splits
from ktrdr_assets.core.data.warmup import required_bars
from ktrdr_assets.metadata import class_balance_md, date_range, json_value, md_table, preview
from ktrdr_assets.partitions import PartitionKeyError, scan_raw_folder, source_for, symbol_partitions
from ktrdr_assets.paths import sources_config_path
from ktrdr_assets.resources import StrategyResource

_common = {"partitions_def": symbol_partitions, "group_name": "data"}


def _spec(name: str, asset: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
    """A check the asset evaluates on the partition it just wrote, recorded per symbol."""
    return dg.AssetCheckSpec(
        name, asset=asset, description=description, blocking=blocking, partitions_def=symbol_partitions
    )


@dg.asset(
    **_common,
    check_specs=[_spec("ohlcv_valid", "ohlcv", "Valid bars, no unexplained one-bar move over data.max_one_bar_move")],
    description="Raw bar file -> UTC-indexed float open/high/low/close/volume, validated.",
)
def ohlcv(context: dg.AssetExecutionContext, strategy: StrategyResource):
    symbol = context.partition_key
    config = strategy.for_symbol(symbol)
    try:
        source = source_for(symbol)
        loaded = load_raw_bars(
            source.path,
            required_bars=required_bars(config),
            adjust_with_adj_close=config.data.adjust_with_adj_close,
            source=load_sources_config(sources_config_path()).get(source.path.name),
        )
    except (BarsError, PartitionKeyError) as err:
        # A user's file (or sources.yaml) that cannot be used: its one-line message, not a stack trace.
        raise dg.Failure(description=str(err), allow_retries=False) from None
    frame = loaded.bars
    for note in loaded.notes:
        context.log.warning(f"{source.path.name}: {note}")
    ignored = scan_raw_folder().ignored
    if ignored:
        context.log.warning(f"raw files that are not partitions: {ignored}")
    context.log.info(f"{symbol}: {len(frame)} bars loaded from {source.path.name}")
    yield dg.Output(
        frame,
        metadata={
            "source_file": source.path.name,
            "timeframe": source.timeframe,
            "stats": json_value(bar_stats(frame, source.timeframe)),
            "rows": len(frame),
            "loader_notes": json_value(list(loaded.notes)),
            "ignored_raw_files": json_value(ignored),
            "preview": preview(frame),
        },
    )
    moves = check_one_bar_moves(frame, config.data.max_one_bar_move, config.data.acknowledged_moves)
    yield dg.AssetCheckResult(
        check_name="ohlcv_valid",
        passed=moves.passed,
        metadata={
            "threshold": moves.limit,
            "largest_move": moves.largest,
            "moves_over_threshold": len(moves.over_limit),
            "acknowledged": json_value(sorted(config.data.acknowledged_moves)),
            "unexplained": json_value({ts.isoformat(): round(float(v), 4) for ts, v in moves.unexplained.items()}),
        },
    )


@dg.asset(**_common, description="The strategy's TA-Lib and project indicators, one column per output.")
def indicators(context: dg.AssetExecutionContext, strategy: StrategyResource, ohlcv: pd.DataFrame):
    config = strategy.for_symbol(context.partition_key)
    frame = compute_indicators(ohlcv, config.indicators)
    return dg.Output(
        frame,
        metadata={"rows": len(frame), "columns": list(frame.columns), "preview": preview(frame.dropna())},
    )


@dg.asset(
    **_common,
    check_specs=[
        _spec(
            "fuzzy_sets_cover_indicators",
            "fuzzy_memberships",
            "Each indicator's fuzzy sets cover >= 95% of its bars (catches sets on the wrong scale)",
            blocking=False,
        )
    ],
    description="Fuzzy membership degree in [0, 1] of each indicator in each of its strategy sets.",
)
def fuzzy_memberships(context: dg.AssetExecutionContext, strategy: StrategyResource, indicators: pd.DataFrame):
    config = strategy.for_symbol(context.partition_key)
    frame = compute_memberships(indicators, config.fuzzy_sets)
    coverage = fuzzy_coverage(indicators, config.fuzzy_sets)
    yield dg.Output(
        frame,
        metadata={"rows": len(frame), "columns": list(frame.columns), "preview": preview(frame.dropna())},
    )
    poor = {name: round(share, 4) for name, share in coverage.items() if share < 0.95}
    yield dg.AssetCheckResult(
        check_name="fuzzy_sets_cover_indicators",
        passed=not poor,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"coverage": json_value(coverage), "below_95_percent": json_value(poor)},
    )


@dg.asset(
    **_common,
    check_specs=[_spec("labels_not_single_class", "zigzag_labels", "Labels contain more than one class")],
    description="BUY / HOLD / SELL per bar from future bars (ZigZag or triple barrier, per the strategy).",
)
def zigzag_labels(context: dg.AssetExecutionContext, strategy: StrategyResource, ohlcv: pd.DataFrame):
    config = strategy.for_symbol(context.partition_key)
    frame = make_labels(ohlcv, config.labels)
    distribution = label_distribution(frame[LABEL])
    yield dg.Output(
        frame,
        metadata={
            "rows": len(frame),
            "method": config.labels.method,
            "lookahead": config.labels.lookahead,
            "class_balance": class_balance_md(distribution),
            "preview": preview(frame),
        },
    )
    present = [name for name, v in distribution.items() if v["count"] > 0]
    yield dg.AssetCheckResult(
        check_name="labels_not_single_class",
        passed=len(present) > 1,
        metadata={"classes_present": json_value(present), "distribution": json_value(distribution)},
    )


@dg.asset(**_common, description="Fuzzy memberships + price/volume context + lags, with the label; no NaN.")
def features(
    context: dg.AssetExecutionContext,
    strategy: StrategyResource,
    ohlcv: pd.DataFrame,
    indicators: pd.DataFrame,
    fuzzy_memberships: pd.DataFrame,
    zigzag_labels: pd.DataFrame,
):
    config = strategy.for_symbol(context.partition_key)
    frame, names = build_features(ohlcv, indicators, fuzzy_memberships, zigzag_labels[LABEL], config.features)
    return dg.Output(
        frame,
        metadata={
            "rows": len(frame),
            "dropped_incomplete_rows": len(zigzag_labels) - len(frame),
            "feature_count": len(names),
            "feature_names": json_value(names),
            **{f"range_{k}": v for k, v in date_range(frame).items() if v},
            "preview": preview(frame),
        },
    )


@dg.asset(
    **_common,
    check_specs=[
        _spec(
            "splits_chronological_purged",
            "temporal_splits",
            "Train < validation < test in time, no overlap, purge gap >= label lookahead",
        )
    ],
    description="Chronological train/validation/test with purge gaps; scalers fitted on train only.",
)
def temporal_splits(context: dg.AssetExecutionContext, strategy: StrategyResource, features: pd.DataFrame):
    config = strategy.for_symbol(context.partition_key)
    names = [c for c in features.columns if c != LABEL]
    result = temporal_split(features, names, config.splits, config.labels.lookahead)
    summary = result.summary()
    yield dg.Output(result, metadata={"summary": json_value(summary), **_split_metadata(summary)})
    problems = verify_splits(result)
    yield dg.AssetCheckResult(
        check_name="splits_chronological_purged",
        passed=not problems,
        metadata={"problems": json_value(problems), "purge_bars": result.purge_bars},
    )


def _split_metadata(summary: dict) -> dict:
    """Rows and date range per part, and one table of the parts' class balance."""
    out: dict = {}
    rows = []
    for part in ("train", "validation", "test"):
        info = summary.get(part, {})
        out[f"{part}_rows"] = info.get("rows", 0)
        out[f"{part}_range"] = f"{info.get('first')} → {info.get('last')}"
        shares = info.get("class_shares", {})
        cells = [f"{shares.get(name, 0.0):.1%}" for name in CLASS_NAMES]
        rows.append([part, info.get("rows", 0), info.get("first"), info.get("last"), *cells])
    out["class_balance"] = md_table(["part", "rows", "first", "last", *CLASS_NAMES], rows, align="lrllrrr")
    return out


@dg.asset(
    **_common,
    check_specs=[
        _spec(
            "augmented_class_shares",
            "augmented_train_set",
            "Each class's share stays within the configured points of the original",
            blocking=False,
        )
    ],
    description="The train part, adaptively augmented when small (noise, time shift, dropout, SMOTE).",
)
def augmented_train_set(context: dg.AssetExecutionContext, strategy: StrategyResource, temporal_splits: TemporalSplits):
    config = strategy.for_symbol(context.partition_key)
    result = augment_train_set(temporal_splits.train, temporal_splits.feature_names, config.augmentation, config.seed)
    info = result.info
    shift = info["max_share_shift_points"]
    if not info["within_tolerance"]:
        context.log.warning(f"augmentation shifted a class share by {shift:.1f} points")
    table = md_table(
        ["class", "original", "augmented"],
        [
            (name, f"{share:.1%}", f"{info['augmented_shares'].get(name, 0.0):.1%}")
            for name, share in info["original_shares"].items()
        ],
        align="lrr",
    )
    yield dg.Output(
        result.frame,
        metadata={
            "rows": len(result.frame),
            "applied": info["applied"],
            "factor": info["factor"],
            "class_balance": table,
            "augmentation": json_value(info),
            "preview": preview(result.frame),
        },
    )
    yield dg.AssetCheckResult(
        check_name="augmented_class_shares",
        passed=bool(info["within_tolerance"]),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "max_share_shift_points": shift,
            "tolerance_points": info["tolerance_points"],
        },
    )
