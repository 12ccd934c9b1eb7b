"""After the models: per-symbol training analytics, model selection and backtest; the cross-symbol
deployment manifest.

These assets read the models' latest records from the warehouse (they depend on the model assets
without loading them as inputs), so a model that failed is simply absent or stale: it is reported,
never selected.
"""

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.config.models import ModelsConfig
from ktrdr_assets.core.data.signals import Signal
from ktrdr_assets.core.data.splits import LABEL, TemporalSplits
from ktrdr_assets.core.models.loading import predict_part
from ktrdr_assets.core.models.pooled_net import PooledModelSpec
from ktrdr_assets.core.models.registry import candidate_specs, model_specs, pooled_specs
from ktrdr_assets.core.models.run_folder import RunFolder
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.models.training_runs import config_fingerprint, splits_fingerprint
from ktrdr_assets.core.selection.backtest import periods_per_year_for_market, plot_equity, run_backtest
from ktrdr_assets.core.selection.candidates import current_candidates
from ktrdr_assets.core.selection.manifest import build_manifest, merge_selections
from ktrdr_assets.core.selection.selector import select_model
from ktrdr_assets.core.selection.thresholds import apply_decision_threshold, optimize_decision_margin
from ktrdr_assets.core.util.plots import comparison_png
from ktrdr_assets.io import read_asset_if_present
from ktrdr_assets.metadata import json_value, md_table, png_md
from ktrdr_assets.partitions import source_for, symbol_partitions
from ktrdr_assets.resources import MlflowTracking, StrategyResource
from ktrdr_assets.resources.champion import promote_champion

_common = {"partitions_def": symbol_partitions, "group_name": "selection"}


def latest_records(symbol: str) -> dict[str, dict[str, Any] | None]:
    """{model_type: the model asset's latest stored record for `symbol`, or None}, every registered type,
    then every pooled type that has evaluated a record for `symbol`."""
    records = {spec.model_type: read_asset_if_present(spec.asset_name, symbol) for spec in model_specs()}
    pooled = {spec.model_type: read_asset_if_present(spec.asset_name, symbol) for spec in pooled_specs()}
    return records | {model_type: record for model_type, record in pooled.items() if record is not None}


def _strategy_models(strategy: StrategyResource, symbol: str, spec: ModelSpec) -> tuple[ModelsConfig, int]:
    """(models, seed) a model of `spec` is trained with: the symbol's, or the base strategy's for the one
    pooled network of all symbols."""
    config = strategy.load() if isinstance(spec, PooledModelSpec) else strategy.for_symbol(symbol)
    return config.models, config.seed


def _config_fingerprints(strategy: StrategyResource, symbol: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for spec in candidate_specs():
        models, seed = _strategy_models(strategy, symbol, spec)
        try:
            out[spec.model_type] = config_fingerprint(spec.parse_config(models), seed)
        except StrategyError:
            out[spec.model_type] = None
    return out


def _disabled(strategy: StrategyResource, symbol: str) -> set[str]:
    """The model types the strategy switched off for `symbol` (not candidates, whatever is on disk)."""
    return {
        spec.model_type
        for spec in candidate_specs()
        if not spec.is_enabled(_strategy_models(strategy, symbol, spec)[0])
    }


def training_analytics(context: dg.AssetExecutionContext) -> dg.Output:
    """Every model's learning curves, alerts and final analyses side by side."""
    summary: dict[str, Any] = {}
    for model_type, record in latest_records(context.partition_key).items():
        if record is None:
            summary[model_type] = {"status": "not materialized"}
            continue
        folder = RunFolder(Path(record["run_dir"]))
        detailed = folder.file(RunFolder.DETAILED)
        document = folder.read_json(RunFolder.DETAILED) if detailed.exists() else {}
        alerts_txt = folder.file(RunFolder.ALERTS)
        alerts = alerts_txt.read_text(encoding="utf-8") if alerts_txt.exists() else ""
        summary[model_type] = {
            "run_dir": str(folder.path),
            "final_analysis": document.get("final_analysis", {}),
            "alerts": alerts.strip().splitlines(),
        }
    rows = []
    for model_type, entry in summary.items():
        analysis = entry.get("final_analysis", {})
        stop = analysis.get("stopping_trigger", entry.get("status", ""))
        epochs, best = analysis.get("total_epochs_completed"), analysis.get("best_epoch")
        rows.append((model_type, epochs, best, stop, len(entry.get("alerts", []))))
    table = md_table(["model", "epochs", "best epoch", "stop", "alert lines"], rows, align="lrrlr")
    metadata = {"summary": table, "analysis": json_value(summary)}
    curves = {}
    for model_type, entry in summary.items():
        csv = Path(entry.get("run_dir", "")) / RunFolder.METRICS_CSV
        if "run_dir" in entry and csv.exists():
            frame = pd.read_csv(csv)
            if frame["val_loss"].notna().any():
                curves[model_type] = (frame["epoch"].tolist(), frame["val_loss"].tolist())
    if curves:
        png = comparison_png(curves, f"{context.partition_key}: validation loss per epoch / boosting round")
        metadata["validation_loss"] = png_md(png, "validation loss per model")
    return dg.Output(summary, metadata=metadata)


def model_selection(
    context: dg.AssetExecutionContext,
    strategy: StrategyResource,
    mlflow: MlflowTracking,
    temporal_splits: TemporalSplits,
) -> dg.Output:
    """Note 002's ModelSelector: gate-passing models scored by test accuracy - penalty x gap; decision
    threshold chosen on validation."""
    symbol = context.partition_key
    config = strategy.for_symbol(symbol)
    records = latest_records(symbol)
    candidates, excluded = current_candidates(
        records,
        splits_fingerprint(temporal_splits),
        _config_fingerprints(strategy, symbol),
        _disabled(strategy, symbol),
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
        selection["registry"] = promote_champion(mlflow.resolved_uri(), symbol, records[picked["model_type"]])
    rows = []
    for name, result in sorted(candidates.items()):
        status = "selected" if name == chosen else "; ".join(selection["rejected"].get(name, ["passed"]))
        h = result["history"] if result else {}
        rows.append((name, h.get("test_accuracy"), h.get("train_val_gap"), status))
    table = md_table(["model", "test acc", "gap", "status"], rows, float_format=".3f", align="lrrl")
    context.log.info(f"{symbol}: selected {chosen or 'nothing'} ({selection['reason']})")
    return dg.Output(
        selection,
        metadata={
            "selected_model": chosen or "none (MANUAL_REVIEW_REQUIRED)",
            "reason": selection["reason"],
            "candidates": table,
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
    periods = periods_per_year_for_market(source_for(symbol).timeframe, config.data.market)
    result = run_backtest(ohlcv["close"].loc[index], signals, config.backtest, periods)
    report = {
        "symbol": symbol,
        "model": model_selection["selected_model"],
        "decision_threshold": threshold,
        "period": {"first": index[0].isoformat(), "last": index[-1].isoformat(), "bars": len(index)},
        "signal_counts": {s.name: int((signals == s.value).sum()) for s in Signal},
        "metrics": result.metrics,
    }
    rows = [(key, value, result.metrics["buy_and_hold"].get(key)) for key, value in result.metrics["strategy"].items()]
    return dg.Output(
        report,
        metadata={
            "metrics": md_table(["metric", "strategy", "buy & hold"], rows, align="lrr"),
            "equity_curve": png_md(plot_equity(result), f"{symbol} equity"),
            "total_return": result.metrics["strategy"]["total_return"],
            "sharpe": result.metrics["strategy"]["sharpe"] or 0.0,
        },
    )


@dg.asset(
    group_name="selection",
    deps=[dg.AssetKey("model_selection")],
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
def deployment_manifest(context: dg.AssetExecutionContext, strategy: StrategyResource):
    gates = strategy.load().gates
    selections = {}
    for symbol in symbol_partitions.get_partition_keys():
        selection = read_asset_if_present("model_selection", symbol)
        if selection is not None:
            selections[symbol] = selection
    previous = read_asset_if_present(context.asset_key.to_user_string(), None)
    manifest = build_manifest(merge_selections(previous, selections), gates)
    rows = []
    for symbol, entry in manifest["selections"].items():
        note = "stale: last good kept" if entry.get("stale") else entry.get("action", "") or entry.get("reason", "")
        rows.append((symbol, entry.get("selected_model"), entry.get("test_accuracy"), entry.get("train_val_gap"), note))
    table = md_table(["symbol", "selected", "test acc", "gap", "note"], rows, align="llrrl")
    yield dg.Output(manifest, metadata={"selections": table, **manifest["summary"]})
    missing = sorted(s for s, e in manifest["selections"].items() if not e.get("selected_model"))
    yield dg.AssetCheckResult(
        check_name="every_symbol_deployable",
        passed=not missing and bool(manifest["selections"]),
        metadata={"symbols_without_model": json_value(missing), "summary": json_value(manifest["summary"])},
    )


def build_selection_assets() -> list[dg.AssetsDefinition]:
    """The selection group; analytics and selection depend on every registered model type's asset."""
    model_keys = [dg.AssetKey(spec.asset_name) for spec in candidate_specs()]
    per_model = [
        dg.asset(**_common, deps=model_keys, description=fn.__doc__.split("\n")[0])(fn)
        for fn in (training_analytics, model_selection)
    ]
    return [*per_model, backtest, deployment_manifest]
