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

from ktrdr_assets.assets.manifest_inputs import MANIFEST_POOL, manifest_path, rebuild_deployment_manifest
from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.calendar import infer_market
from ktrdr_assets.core.data.signals import Signal
from ktrdr_assets.core.data.splits import TemporalSplits
from ktrdr_assets.core.models.loading import predict_part
from ktrdr_assets.core.models.registry import candidate_specs, model_specs, pooled_specs
from ktrdr_assets.core.models.run_folder import RunFolder
from ktrdr_assets.core.models.training_runs import config_fingerprint, splits_fingerprint
from ktrdr_assets.core.selection.backtest import periods_per_year_for_market, run_backtest
from ktrdr_assets.core.selection.candidate_backtests import oof_backtests
from ktrdr_assets.core.selection.candidates import (
    competing_models,
    current_candidates,
    disabled_types,
    trained_with,
)
from ktrdr_assets.core.selection.decision import apply_decision_rule
from ktrdr_assets.core.selection.manifest import selection_criteria
from ktrdr_assets.core.selection.selector import evidence_figures, select_model
from ktrdr_assets.core.selection.sharpe import count_trials
from ktrdr_assets.core.util.plots import comparison_png, equity_comparison_png
from ktrdr_assets.io import read_asset_if_present
from ktrdr_assets.metadata import json_value, md_table, png_md
from ktrdr_assets.partitions import source_for, symbol_partitions
from ktrdr_assets.paths import warehouse_dir
from ktrdr_assets.resources import MlflowTracking, StrategyResource
from ktrdr_assets.resources.champion import promote_champion

_common = {"partitions_def": symbol_partitions, "group_name": "selection"}


def latest_records(symbol: str) -> dict[str, dict[str, Any] | None]:
    """{model_type: the model asset's latest stored record for `symbol`, or None}, every registered type,
    then every pooled type that has evaluated a record for `symbol`."""
    records = {spec.model_type: read_asset_if_present(spec.asset_name, symbol) for spec in model_specs()}
    pooled = {spec.model_type: read_asset_if_present(spec.asset_name, symbol) for spec in pooled_specs()}
    return records | {model_type: record for model_type, record in pooled.items() if record is not None}


def _config_fingerprints(config: StrategyConfig, base: StrategyConfig) -> dict[str, str | None]:
    """{model type: the fingerprint of the config it is trained and judged with now, or None when invalid}."""
    out: dict[str, str | None] = {}
    for spec in candidate_specs():
        own = trained_with(spec, config, base)
        try:
            out[spec.model_type] = config_fingerprint(spec.parse_config(own.models), own.seed, own.evaluation)
        except StrategyError:
            out[spec.model_type] = None
    return out


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


def calendar_for(symbol: str, config, ohlcv: pd.DataFrame) -> dict[str, Any]:
    """{market, why, periods_per_year}: the strategy's `data.market`, else the calendar read from the bars;
    `backtest.periods_per_year`, when set, wins."""
    if config.data.market is not None:
        market, why = config.data.market, "set by the strategy (data.market)"
    else:
        market, why = infer_market(ohlcv.index)
    periods = periods_per_year_for_market(source_for(symbol).timeframe, market)
    if config.backtest.periods_per_year:
        periods, why = config.backtest.periods_per_year, "set by the strategy (backtest.periods_per_year)"
    return {"market": market, "why": why, "periods_per_year": periods}


def _trials(symbol: str, candidates: int) -> dict[str, int]:
    from ktrdr_assets.jobs.research import EXPERIMENTS_DIR, HPO_DIR

    root = warehouse_dir()
    return count_trials(symbol, candidates, root / EXPERIMENTS_DIR, root / HPO_DIR)


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def model_selection(
    context: dg.AssetExecutionContext,
    strategy: StrategyResource,
    mlflow: MlflowTracking,
    temporal_splits: TemporalSplits,
    ohlcv: pd.DataFrame,
) -> dg.Output:
    """Note 002's ModelSelector on the walk-forward evidence: gate-passing models scored by out-of-fold
    accuracy - penalty x mean fold gap; every candidate's out-of-fold backtest and deflated Sharpe ratio."""
    symbol = context.partition_key
    base = strategy.load()
    config = base.for_symbol(symbol)
    records = latest_records(symbol)
    candidates, excluded = current_candidates(
        records,
        splits_fingerprint(temporal_splits),
        _config_fingerprints(config, base),
        disabled_types(config, base),
    )
    trained = {name: result for name, result in candidates.items() if result is not None}
    calendar = calendar_for(symbol, config, ohlcv)
    trials = _trials(symbol, len(trained))
    backtests = oof_backtests(
        {name: result["run_dir"] for name, result in trained.items()},
        ohlcv["close"],
        config.backtest,
        calendar["periods_per_year"],
        trials["total"],
    )
    sharpe = {name: entry["sharpe"] for name, entry in backtests.items()}
    competing = competing_models(config, base)
    selection = select_model(symbol, candidates, config.gates, n_models=competing, sharpe=sharpe)
    selection["selection_criteria"] = selection_criteria(config.gates)  # this symbol's own gates, for the manifest
    for name, reason in excluded.items():
        selection["rejected"][name] = [f"not a candidate: {reason}"]
    chosen = selection["selected_model"]
    selection["candidates"] = {
        name: {
            "model_type": result["model_type"],
            "run_dir": result["run_dir"],
            "decision_rule": result.get("decision_rule"),
            **evidence_figures(result),
            "oof_backtest": backtests.get(name, {}).get("metrics"),
            "sharpe": sharpe.get(name),
            "deployed": name == chosen,
        }
        for name, result in sorted(trained.items())
    }
    selection["trials"] = trials
    selection["calendar"] = calendar
    if chosen:
        picked = candidates[chosen]
        selection.update(
            model_type=picked["model_type"],
            run_dir=picked["run_dir"],
            symbol=symbol,
            decision_rule=picked.get("decision_rule"),
            sharpe=sharpe.get(chosen),
        )
        selection["registry"] = promote_champion(mlflow.resolved_uri(), symbol, records[picked["model_type"]])
    rows = []
    for name in sorted(candidates):
        entry = selection["candidates"].get(name, {})
        status = "selected" if name == chosen else "; ".join(selection["rejected"].get(name, ["passed"]))
        dsr = (entry.get("sharpe") or {}).get("dsr")
        rows.append(
            (
                name,
                entry.get("oof_accuracy"),
                entry.get("baseline"),
                _fmt(entry.get("p_value"), ".2g"),
                entry.get("train_val_gap"),
                entry.get("test_accuracy"),
                _fmt(dsr),
                status,
            )
        )
    header = ["model", "OOF acc", "baseline", "p", "gap", "holdout acc", "DSR", "status"]
    table = md_table(header, rows, float_format=".3f", align="lrrrrrrl")
    context.log.info(f"{symbol}: selected {chosen or 'nothing'} ({selection['reason']})")
    return dg.Output(
        selection,
        metadata={
            "selected_model": chosen or "none (MANUAL_REVIEW_REQUIRED)",
            "reason": selection["reason"],
            "candidates": table,
            "trials": json_value(trials),
        },
    )


def _holdout_backtest(entry: dict, temporal_splits: TemporalSplits, close: pd.Series, config, periods: int):
    proba, index = predict_part(Path(entry["run_dir"]), temporal_splits.test, temporal_splits.feature_names)
    rule = entry.get("decision_rule") or {"kind": "argmax"}
    signals = pd.Series(apply_decision_rule(proba, rule), index=index, name="signal")
    return run_backtest(close.loc[index], signals, config.backtest, periods), signals


@dg.asset(
    **_common,
    description="Every trained candidate's calls traded over the holdout (the test period, scored once) and "
    "over its walk-forward's out-of-fold test blocks, beside buy-and-hold, marked deployed or not; "
    "probabilistic and deflated Sharpe ratios of the out-of-fold returns.",
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
    candidates = model_selection.get("candidates") or {}
    if not candidates:
        return dg.Output({"skipped": "no trained model", "symbol": symbol}, metadata={"skipped": "no trained model"})
    calendar = model_selection.get("calendar") or calendar_for(symbol, config, ohlcv)
    periods = calendar["periods_per_year"]
    report: dict[str, Any] = {
        "symbol": symbol,
        "selected_model": model_selection.get("selected_model"),
        "calendar": calendar,
        "trials": model_selection.get("trials"),
        "candidates": {},
    }
    # buy-and-hold over the whole holdout (a sequence model's calls start lookback - 1 bars later)
    test_index = temporal_splits.test.index
    hold_signals = pd.Series(int(Signal.HOLD), index=test_index)
    market = run_backtest(ohlcv["close"].loc[test_index], hold_signals, config.backtest, periods)
    report["buy_and_hold"] = {"holdout": market.metrics["buy_and_hold"]}
    rows, curves = [], {}
    for name, entry in sorted(candidates.items()):
        result, signals = _holdout_backtest(entry, temporal_splits, ohlcv["close"], config, periods)
        index = signals.index
        strategy_metrics = result.metrics["strategy"]
        report["candidates"][name] = {
            "deployed": entry["deployed"],
            "decision_rule": (entry.get("decision_rule") or {}).get("description", "argmax"),
            "holdout": {
                "period": {"first": index[0].isoformat(), "last": index[-1].isoformat(), "bars": len(index)},
                "signal_counts": {s.name: int((signals == s.value).sum()) for s in Signal},
                "metrics": strategy_metrics,
            },
            "oof": {"metrics": entry.get("oof_backtest"), "sharpe": entry.get("sharpe")},
        }
        curves[name] = result.equity
        oof = entry.get("oof_backtest") or {}
        sharpe = entry.get("sharpe") or {}
        rows.append(
            (
                name + (" (deployed)" if entry["deployed"] else ""),
                _fmt(strategy_metrics["total_return"], "+.1%"),
                _fmt(strategy_metrics["sharpe"], ".2f"),
                _fmt(strategy_metrics["max_drawdown"], ".1%"),
                _fmt(oof.get("total_return"), "+.1%"),
                _fmt(oof.get("sharpe"), ".2f"),
                _fmt(sharpe.get("psr")),
                _fmt(sharpe.get("dsr")),
            )
        )
    bh = report["buy_and_hold"]["holdout"]
    rows.append(
        (
            "buy & hold",
            _fmt(bh["total_return"], "+.1%"),
            _fmt(bh["sharpe"], ".2f"),
            _fmt(bh["max_drawdown"], ".1%"),
            "",
            "",
            "",
            "",
        )
    )
    header = ["model", "holdout return", "holdout Sharpe", "holdout max DD", "OOF return", "OOF Sharpe", "PSR", "DSR"]
    curves["buy & hold"] = market.buy_and_hold_equity
    deployed = model_selection.get("selected_model")
    metadata = {
        "candidates": md_table(header, rows, align="lrrrrrrr"),
        "equity_curve": png_md(
            equity_comparison_png(curves, f"{symbol}: holdout equity per candidate"), f"{symbol} equity"
        ),
        "selected_model": deployed or "none",
        "periods_per_year": periods,
        "calendar": f"{calendar['market']}: {calendar['why']}",
    }
    if deployed and deployed in report["candidates"]:
        chosen = report["candidates"][deployed]["holdout"]["metrics"]
        metadata["total_return"] = chosen["total_return"]
        metadata["sharpe"] = chosen["sharpe"] or 0.0
    return dg.Output(report, metadata=metadata)


@dg.asset(
    group_name="selection",
    deps=[dg.AssetKey("model_selection")],
    check_specs=[
        dg.AssetCheckSpec(
            "every_symbol_deployable",
            asset="deployment_manifest",
            blocking=False,
            description="Every symbol has a deployable model (a current or last good selection). Red (severity "
            "ERROR) lists the symbols without one and why; it never fails the run: no qualifying model is an "
            "outcome of a healthy run. `newly_lost` in its metadata names the symbols that lost a current "
            "deployable model with this manifest (the `deployable_model_lost` sensor alerts on them).",
        )
    ],
    description="One manifest across all symbols (note 002's schema), rebuilt from every symbol's latest "
    "selection; a symbol whose new selection failed keeps its last good entry, marked stale; a symbol whose "
    "raw file is gone moves to `retired`.",
    # Rebuilds are serialized (a lost update otherwise): this pool (limit 1) across runs, a file lock inside.
    pool=MANIFEST_POOL,
)
def deployment_manifest(context: dg.AssetExecutionContext, strategy: StrategyResource):
    # Written by the rebuild itself, under its lock (not by the IO manager, after the lock is released);
    # `alerts.newly_lost` compares it with the manifest it replaced, read under the same lock.
    manifest = rebuild_deployment_manifest(strategy.load())
    lost = manifest["alerts"]["newly_lost"]
    rows = []
    for symbol, entry in manifest["selections"].items():
        note = "stale: last good kept" if entry.get("stale") else entry.get("action", "") or entry.get("reason", "")
        dsr = (entry.get("sharpe") or {}).get("dsr")
        rows.append(
            (
                symbol,
                entry.get("selected_model"),
                entry.get("oof_accuracy"),
                entry.get("baseline"),
                _fmt(entry.get("p_value"), ".2g"),
                entry.get("test_accuracy"),
                _fmt(dsr),
                note,
            )
        )
    header = ["symbol", "selected", "OOF acc", "baseline", "p", "holdout acc", "DSR", "note"]
    table = md_table(header, rows, float_format=".3f", align="llrrrrrl")
    metadata = {
        "selections": table,
        "path": dg.MetadataValue.path(str(manifest_path())),
        **manifest["summary"],
        "newly_lost": json_value(lost),
    }
    if manifest["retired"]:
        metadata["retired"] = json_value({s: e["retired_at"] for s, e in manifest["retired"].items()})
    yield dg.MaterializeResult(metadata=metadata)
    missing = {
        symbol: "; ".join(
            f"{name}: {reasons[0]}" for name, reasons in sorted((entry.get("rejected") or {}).items()) if reasons
        )
        or entry.get("reason", "")
        for symbol, entry in manifest["selections"].items()
        if not entry.get("selected_model")
    }
    if missing:
        description = (
            f"{len(missing)} of {len(manifest['selections'])} symbols without a deployable model: "
            + ", ".join(sorted(missing))
        )
    elif manifest["selections"]:
        description = f"all {len(manifest['selections'])} symbols have a deployable model"
    else:
        description = "no symbol has a selection yet"
    if lost:
        description += f"; newly lost: {', '.join(sorted(lost))}"
    yield dg.AssetCheckResult(
        check_name="every_symbol_deployable",
        passed=not missing and bool(manifest["selections"]),
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "symbols_without_model": json_value(sorted(missing)),
            "reasons": json_value(missing),
            "newly_lost": json_value(lost),
            "summary": json_value(manifest["summary"]),
        },
    )


def build_selection_assets() -> list[dg.AssetsDefinition]:
    """The selection group; analytics and selection depend on every registered model type's asset."""
    model_keys = [dg.AssetKey(spec.asset_name) for spec in candidate_specs()]
    per_model = [
        dg.asset(**_common, deps=model_keys, description=fn.__doc__.split("\n")[0])(fn)
        for fn in (training_analytics, model_selection)
    ]
    return [*per_model, backtest, deployment_manifest]
