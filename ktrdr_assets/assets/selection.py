"""After the models: per-symbol training analytics, model selection and backtest; the cross-symbol
deployment manifest.

These assets read the models' latest records from the warehouse (they depend on the model assets
without loading them as inputs), so a model that failed is simply absent or stale: it is reported,
never selected.
"""

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ktrdr_assets.assets.models import model_asset_name
from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.data.bars import parse_timeframe
from ktrdr_assets.core.data.signals import Signal
from ktrdr_assets.core.data.splits import LABEL, TemporalSplits
from ktrdr_assets.core.models.loading import predict_part
from ktrdr_assets.core.models.training_runs import MODEL_TYPES, config_fingerprint, splits_fingerprint
from ktrdr_assets.core.selection.backtest import periods_per_year_for, plot_equity, run_backtest
from ktrdr_assets.core.selection.candidates import current_candidates
from ktrdr_assets.core.selection.selector import build_manifest, merge_selections, select_model
from ktrdr_assets.core.selection.thresholds import apply_decision_threshold, optimize_decision_margin
from ktrdr_assets.core.training.analytics_export import ALERTS_TXT, DETAILED_JSON, METRICS_CSV
from ktrdr_assets.core.util.plots import comparison_png
from ktrdr_assets.io import asset_path
from ktrdr_assets.metadata import json_value, png_md
from ktrdr_assets.partitions import source_for, symbol_partitions
from ktrdr_assets.paths import warehouse_dir
from ktrdr_assets.resources.champion import promote_champion
from ktrdr_assets.resources.tracking import StrategyResource

MODEL_KEYS = [dg.AssetKey(model_asset_name(t)) for t in MODEL_TYPES]
_common = {"partitions_def": symbol_partitions, "group_name": "selection"}


def latest_records(symbol: str) -> dict[str, dict[str, Any] | None]:
    """{model_type: the model asset's latest stored record for `symbol`, or None}."""
    out: dict[str, dict[str, Any] | None] = {}
    for model_type, key in zip(MODEL_TYPES, MODEL_KEYS, strict=True):
        path = asset_path(warehouse_dir(), key, symbol, ".json")
        out[model_type] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return out


def _config_fingerprints(strategy: StrategyResource, symbol: str) -> dict[str, str | None]:
    config = strategy.for_symbol(symbol)
    out: dict[str, str | None] = {}
    for model_type in MODEL_TYPES:
        try:
            out[model_type] = config_fingerprint(config.models.section(model_type), config.seed)
        except StrategyError:
            out[model_type] = None
    return out


@dg.asset(
    **_common,
    deps=MODEL_KEYS,
    description="The four models' learning curves, alerts and final analyses side by side.",
)
def training_analytics(context: dg.AssetExecutionContext) -> dg.Output:
    summary: dict[str, Any] = {}
    for model_type, record in latest_records(context.partition_key).items():
        if record is None:
            summary[model_type] = {"status": "not materialized"}
            continue
        run_dir = Path(record["run_dir"])
        detailed = run_dir / DETAILED_JSON
        document = json.loads(detailed.read_text(encoding="utf-8")) if detailed.exists() else {}
        alerts = (run_dir / ALERTS_TXT).read_text(encoding="utf-8") if (run_dir / ALERTS_TXT).exists() else ""
        summary[model_type] = {
            "run_dir": str(run_dir),
            "final_analysis": document.get("final_analysis", {}),
            "alerts": alerts.strip().splitlines(),
        }
    rows = "\n".join(
        f"| {m} | {s.get('final_analysis', {}).get('total_epochs_completed', '–')} | "
        f"{s.get('final_analysis', {}).get('best_epoch', '–')} | "
        f"{s.get('final_analysis', {}).get('stopping_trigger', s.get('status', ''))} | {len(s.get('alerts', []))} |"
        for m, s in summary.items()
    )
    table = "| model | epochs | best epoch | stop | alert lines |\n|---|---:|---:|---|---:|\n" + rows
    metadata = {"summary": dg.MetadataValue.md(table), "analysis": json_value(summary)}
    curves = {}
    for model_type, entry in summary.items():
        csv = Path(entry.get("run_dir", "")) / METRICS_CSV
        if "run_dir" in entry and csv.exists():
            frame = pd.read_csv(csv)
            if frame["val_loss"].notna().any():
                curves[model_type] = (frame["epoch"].tolist(), frame["val_loss"].tolist())
    if curves:
        png = comparison_png(curves, f"{context.partition_key}: validation loss per epoch / boosting round")
        metadata["validation_loss"] = png_md(png, "validation loss per model")
    return dg.Output(summary, metadata=metadata)


@dg.asset(
    **_common,
    deps=MODEL_KEYS,
    required_resource_keys={"strategy", "mlflow"},
    description="Note 002's ModelSelector: gate-passing models scored by test accuracy - penalty x gap; "
    "decision threshold chosen on validation.",
)
def model_selection(context: dg.AssetExecutionContext, temporal_splits: TemporalSplits) -> dg.Output:
    symbol = context.partition_key
    strategy: StrategyResource = context.resources.strategy
    config = strategy.for_symbol(symbol)
    records = latest_records(symbol)
    candidates, excluded = current_candidates(
        records, splits_fingerprint(temporal_splits), _config_fingerprints(strategy, symbol)
    )
    selection = select_model(symbol, candidates, config.gates)
    for name, reason in excluded.items():
        selection["rejected"][name] = [f"not a candidate: {reason}"]
    chosen = selection["selected_model"]
    if chosen:
        picked = candidates[chosen]
        proba, index = predict_part(Path(picked["run_dir"]), temporal_splits.validation, temporal_splits.feature_names)
        y_val = temporal_splits.validation.loc[index, LABEL].to_numpy()
        selection["decision_threshold"] = optimize_decision_margin(proba, y_val)
        selection.update(model_type=picked["model_type"], run_dir=picked["run_dir"], symbol=symbol)
        selection["registry"] = promote_champion(context.resources.mlflow, symbol, records[picked["model_type"]])
    table = ["| model | test acc | gap | status |", "|---|---:|---:|---|"]
    for name, result in sorted(candidates.items()):
        status = "selected" if name == chosen else "; ".join(selection["rejected"].get(name, ["passed"]))
        if result:
            h = result["history"]
            table.append(f"| {name} | {h['test_accuracy']:.3f} | {h['train_val_gap']:.3f} | {status} |")
        else:
            table.append(f"| {name} | – | – | {status} |")
    context.log.info(f"{symbol}: selected {chosen or 'nothing'} ({selection['reason']})")
    return dg.Output(
        selection,
        metadata={
            "selected_model": chosen or "none (MANUAL_REVIEW_REQUIRED)",
            "reason": selection["reason"],
            "candidates": dg.MetadataValue.md("\n".join(table)),
        },
    )


@dg.asset(
    **_common,
    description="The selected model's signals traded over the test period only, beside buy-and-hold.",
)
def backtest(
    context: dg.AssetExecutionContext,
    strategy: StrategyResource,
    model_selection: dict,
    temporal_splits: TemporalSplits,
    ohlcv: pd.DataFrame,
) -> dg.Output:
    symbol = context.partition_key
    config = strategy.for_symbol(symbol)
    if not model_selection.get("selected_model"):
        return dg.Output({"skipped": "no selected model", "symbol": symbol}, metadata={"skipped": "no selected model"})
    proba, index = predict_part(Path(model_selection["run_dir"]), temporal_splits.test, temporal_splits.feature_names)
    threshold = model_selection["decision_threshold"]["threshold"]
    signals = pd.Series(apply_decision_threshold(proba, threshold), index=index, name="signal")
    timeframe = source_for(symbol).timeframe
    market = config.data.market
    periods = periods_per_year_for(
        parse_timeframe(timeframe), trading_days=365 if market == "crypto" else None, fx_24h=market != "equity"
    )
    result = run_backtest(ohlcv["close"].loc[index], signals, config.backtest, periods)
    report = {
        "symbol": symbol,
        "model": model_selection["selected_model"],
        "decision_threshold": threshold,
        "period": {"first": index[0].isoformat(), "last": index[-1].isoformat(), "bars": len(index)},
        "signal_counts": {s.name: int((signals == s.value).sum()) for s in Signal},
        "metrics": result.metrics,
    }
    lines = ["| metric | strategy | buy & hold |", "|---|---:|---:|"]
    for key, value in result.metrics["strategy"].items():
        other = result.metrics["buy_and_hold"].get(key)
        lines.append(f"| {key} | {_fmt(value)} | {_fmt(other)} |")
    return dg.Output(
        report,
        metadata={
            "metrics": dg.MetadataValue.md("\n".join(lines)),
            "equity_curve": png_md(plot_equity(result), f"{symbol} equity"),
            "total_return": result.metrics["strategy"]["total_return"],
            "sharpe": result.metrics["strategy"]["sharpe"] or 0.0,
        },
    )


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


@dg.asset(
    group_name="selection",
    deps=[dg.AssetKey("model_selection")],
    required_resource_keys={"strategy"},
    check_specs=[
        dg.AssetCheckSpec(
            "every_symbol_deployable",
            asset="deployment_manifest",
            blocking=True,
            description="Every symbol has a deployable model (a current or last good selection)",
        )
    ],
    description="One manifest across all symbols (note 002's schema), rebuilt from every symbol's latest "
    "selection; a symbol whose new selection failed keeps its last good entry, marked stale.",
)
def deployment_manifest(context: dg.AssetExecutionContext):
    strategy: StrategyResource = context.resources.strategy
    gates = strategy.load().gates
    selection_key = dg.AssetKey("model_selection")
    selections = {}
    for symbol in symbol_partitions.get_partition_keys():
        path = asset_path(warehouse_dir(), selection_key, symbol, ".json")
        if path.exists():
            selections[symbol] = json.loads(path.read_text(encoding="utf-8"))
    previous_path = asset_path(warehouse_dir(), context.asset_key, None, ".json")
    previous = json.loads(previous_path.read_text(encoding="utf-8")) if previous_path.exists() else None
    manifest = build_manifest(merge_selections(previous, selections), gates)
    rows = ["| symbol | selected | test acc | gap | note |", "|---|---|---:|---:|---|"]
    for symbol, entry in manifest["selections"].items():
        note = "stale: last good kept" if entry.get("stale") else entry.get("action", "") or entry.get("reason", "")
        acc = entry.get("test_accuracy")
        gap = entry.get("train_val_gap")
        rows.append(f"| {symbol} | {entry.get('selected_model') or '–'} | {_fmt(acc)} | {_fmt(gap)} | {note} |")
    yield dg.Output(manifest, metadata={"selections": dg.MetadataValue.md("\n".join(rows)), **manifest["summary"]})
    missing = sorted(s for s, e in manifest["selections"].items() if not e.get("selected_model"))
    yield dg.AssetCheckResult(
        check_name="every_symbol_deployable",
        passed=not missing and bool(manifest["selections"]),
        metadata={"symbols_without_model": json_value(missing), "summary": json_value(manifest["summary"])},
    )
