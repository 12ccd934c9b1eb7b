"""Pooled multi-symbol models in Dagster (design note 003).

- `pooled_models` (not partitioned): one network per pooled type (`models.pooled.model_types`) trained on
  every symbol with the same feature names, then its pooled walk-forward (calendar-aligned folds, one
  pooled network per fold: core/selection/pooled_walk_forward.py) for every symbol's evidence; it depends
  on ALL partitions of `features`, `temporal_splits` and `augmented_train_set` (a cross-partition
  dependency, drawn in the UI). Symbols left out, and why, are in its metadata. The weekly retraining
  rebuilds it once, after every symbol's run (`jobs/pooled.py`).
- `pooled_<type>_model` (per symbol): that network evaluated on the symbol's own validation and test rows,
  judged by the same gates on the symbol's pooled walk-forward evidence, and a candidate in the symbol's
  `model_selection`. A symbol without that evidence (not pooled, or tested in fewer than
  `models.pooled.min_evidence_folds` calendar folds) is reported with the reason and fails the gates
  (gates.NO_EVIDENCE): it is never deployed on the holdout alone.
  A symbol that was not in the pooled training is scored through the unknown-asset embedding row, and its
  metadata says so. When it cannot evaluate (no pooled model yet, trained on other data or config, another
  feature set, an error) it reports why and materializes no record: it never fails the symbol's run.
"""

from typing import Any

import dagster as dg
import pandas as pd

from ktrdr_assets.assets.models import (
    DISABLED,
    GPU_POOL,
    disabled_output,
    model_asset,
    model_outputs,
    run_training,
)
from ktrdr_assets.core.data.splits import TemporalSplits
from ktrdr_assets.core.models.pooled import (
    SymbolData,
    evaluate_pooled,
    evaluation_status,
    evidence_status,
    pooled_run_folder,
    pooled_strategy,
    skipped,
    train_pooled,
)
from ktrdr_assets.core.models.pooled_net import PooledModelSpec
from ktrdr_assets.core.models.registry import pooled_specs
from ktrdr_assets.core.models.training_runs import config_fingerprint
from ktrdr_assets.io import read_asset_if_present
from ktrdr_assets.metadata import json_value, md_table
from ktrdr_assets.partitions import symbol_partitions
from ktrdr_assets.paths import warehouse_dir
from ktrdr_assets.resources import MlflowTracking, StrategyResource

POOLED_MODELS = "pooled_models"
_EVERY_SYMBOL = dg.AllPartitionMapping()


def symbol_data(symbols: list[str]) -> tuple[dict[str, SymbolData], dict[str, str]]:
    """({symbol: its stored splits, augmented set and features}, {symbol without them: why})."""
    data, missing = {}, {}
    for symbol in symbols:
        splits = read_asset_if_present("temporal_splits", symbol)
        augmented = read_asset_if_present("augmented_train_set", symbol)
        features = read_asset_if_present("features", symbol)
        if splits is None or augmented is None or features is None:
            missing[symbol] = "its features / temporal_splits / augmented_train_set are not materialized"
        else:
            data[symbol] = SymbolData(splits, augmented, features)
    return data, missing


def _stored(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary the asset stores (the per-epoch history stays in the run folder's pooled.json)."""
    return {k: v for k, v in summary.items() if k != "history"}


def _summary_metadata(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows, left_out, no_evidence = [], [], []
    for model_type, summary in summaries.items():
        symbols = ", ".join(summary.get("symbols", {})) or "-"
        evidence = summary.get("evidence") or {}
        rows.append(
            (
                model_type,
                summary["status"],
                symbols,
                summary.get("details", {}).get("epochs_run"),
                summary.get("mean_epoch_seconds"),
                summary.get("duration_s"),
                len(evidence.get("with_evidence", ())),
                evidence.get("seconds"),
                summary.get("reason") or summary.get("error") or "",
            )
        )
        no_evidence += [(model_type, symbol, why) for symbol, why in evidence.get("without_evidence", {}).items()]
        left_out += [(model_type, symbol, why) for symbol, why in summary.get("excluded", {}).items()]
    header = ["type", "status", "symbols", "epochs", "s / epoch", "training s", "with evidence", "walk-forward s"]
    header.append("note")
    return {
        "pooled": md_table(header, rows, float_format=".2f", align="lllrrrrrl"),
        "left_out": md_table(["type", "symbol", "reason"], left_out) if left_out else "none",
        "without_evidence": md_table(["type", "symbol", "reason"], no_evidence) if no_evidence else "none",
        "summary": json_value(summaries),
    }


@dg.asset(
    name=POOLED_MODELS,
    group_name="pooled",
    deps=[
        dg.AssetDep("features", partition_mapping=_EVERY_SYMBOL),
        dg.AssetDep("temporal_splits", partition_mapping=_EVERY_SYMBOL),
        dg.AssetDep("augmented_train_set", partition_mapping=_EVERY_SYMBOL),
    ],
    pool=GPU_POOL,
    kinds={"pytorch"},
    description="One network per pooled model type, trained on the train rows of every symbol with the same "
    "feature names (asset-id embedding), then its calendar-aligned pooled walk-forward for every symbol's "
    "evidence; splits, scalers and augmentation stay per symbol.",
)
def pooled_models(context: dg.AssetExecutionContext, strategy: StrategyResource, mlflow: MlflowTracking):
    base = strategy.load()
    data, missing = symbol_data(symbol_partitions.get_partition_keys(dynamic_partitions_store=context.instance))
    summaries: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for spec in pooled_specs():
        model_type = spec.base.model_type
        if not spec.is_enabled(base.models):
            summaries[model_type] = skipped(model_type, f"{DISABLED} (models.pooled)")
            continue
        folder = pooled_run_folder(warehouse_dir(), model_type, context.run_id)
        tags = {
            "symbol": "pooled",
            "model_type": spec.model_type,
            "dagster_run_id": context.run_id,
            "partition": "all",
            "strategy": base.name,
        }
        try:
            with mlflow.training_run(f"pooled-{model_type}", tags) as tracker:
                summary = train_pooled(
                    model_type,
                    data,
                    base,
                    run_dir=folder.path,
                    run_info={"run_id": context.run_id, "strategy": base.name},
                    strategy_source=str(strategy.resolved_path()),
                    tracker=tracker,
                    progress=context.log.info,
                )
        except Exception as err:  # one pooled type failing leaves the others trained and stored
            failed[model_type] = f"{type(err).__name__}: {err}"
            summary = {"model_type": model_type, "status": "failed", "error": failed[model_type]}
            context.log.error(f"pooled {model_type} failed: {failed[model_type]}")
        summary["excluded"] = {**missing, **summary.get("excluded", {})}
        summaries[model_type] = _stored(summary)
    yield dg.Output(summaries, metadata=_summary_metadata(summaries))
    if failed:
        raise dg.Failure(f"pooled training failed for {sorted(failed)}", metadata={"errors": json_value(failed)})


def build_pooled_model_asset(spec: PooledModelSpec) -> dg.AssetsDefinition:
    """The per-symbol evaluation of `spec`'s pooled network, with the gate checks of its result."""
    name = spec.asset_name
    model_type = spec.base.model_type

    @model_asset(
        name,
        kind=spec.kind,
        pool=None,  # evaluation only: the training ran in pooled_models
        description=f"The pooled {spec.base.display_name} evaluated on this symbol's validation and test rows "
        "(unknown-asset embedding for a symbol it never saw).",
        deps=[POOLED_MODELS],
    )
    def _evaluate(
        context: dg.AssetExecutionContext,
        strategy: StrategyResource,
        mlflow: MlflowTracking,
        temporal_splits: TemporalSplits,
        augmented_train_set: pd.DataFrame,
        features: pd.DataFrame,
    ):
        symbol = context.partition_key
        base = strategy.load()
        config = base.for_symbol(symbol)
        if not spec.is_enabled(base.models):
            yield disabled_output(context, name, f"{DISABLED} (models.pooled)")
            return
        source = str(strategy.resolved_path())
        summary = (read_asset_if_present(POOLED_MODELS, None) or {}).get(model_type)
        # Nothing here may fail the symbol's run: the selection after it would be skipped. A bad config or
        # a broken pooled model is reported (and fails the asset that trains, pooled_models), never fatal.
        try:
            current = config_fingerprint(spec.parse_config(base.models, source), base.seed, base.evaluation)
            reason = evaluation_status(summary, symbol, temporal_splits, current)
            if reason is None:
                record, metadata = run_training(
                    context,
                    mlflow,
                    spec.model_type,
                    config,
                    lambda folder, tracker: evaluate_pooled(
                        summary,
                        temporal_splits,
                        augmented_train_set,
                        pooled_strategy(config, base),
                        symbol=symbol,
                        run_dir=folder.path,
                        run_info={"run_id": context.run_id, "strategy": config.name},
                        strategy_source=source,
                        tracker=tracker,
                        progress=context.log.info,
                        features=features,
                    ),
                )
        except Exception as err:
            context.log.error(f"{name} {symbol}: {type(err).__name__}: {err}")
            reason = f"{type(err).__name__}: {err}"
        if reason is not None:
            yield disabled_output(context, name, f"not evaluated: {reason}")
            return
        pooled = record.result["pooled"]
        metadata["asset_embedding"] = pooled["asset_embedding"]
        metadata["pooled_symbols"] = ", ".join(pooled["symbols"])
        metadata["pooled_run_dir"] = dg.MetadataValue.path(pooled["run_dir"])
        metadata["pooled_evidence"] = evidence_status(summary, symbol)
        if pooled["asset_embedding"] != "trained":
            context.log.warning(f"{symbol} was not in the pooled training: scored through the unknown-asset row")
        yield from model_outputs(context, name, record, config, base, metadata)

    return _evaluate


def build_pooled_assets() -> list[dg.AssetsDefinition]:
    """`pooled_models` and one per-symbol evaluation asset per pooled model type."""
    return [pooled_models, *(build_pooled_model_asset(spec) for spec in pooled_specs())]
