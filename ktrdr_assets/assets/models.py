"""The four model assets (one factory, one asset per model type) and their quality-gate checks.

Each training is its own MLflow run nested under the Dagster run's parent run, with per-epoch metrics
logged as each epoch ends. Every run writes into a fresh folder; a failing model fails only its own
asset and leaves earlier runs and the other models untouched.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from ktrdr_assets.core.data.splits import TemporalSplits
from ktrdr_assets.core.models.fitters import TORCH_MODEL_TYPES
from ktrdr_assets.core.models.training_runs import MODEL_TYPES, train_model
from ktrdr_assets.core.research.llm_reports import write_run_prompt
from ktrdr_assets.core.selection.gates import evaluate_gates
from ktrdr_assets.metadata import json_value, png_md
from ktrdr_assets.partitions import symbol_partitions, validate_symbol
from ktrdr_assets.paths import warehouse_dir
from ktrdr_assets.resources.tracking import StrategyResource, nested_training_run

KINDS = {"random_forest": "sklearn", "xgboost": "xgboost", "neural_network": "pytorch", "lstm": "pytorch"}
GATES = {
    "overfitting_gap": "train accuracy - validation accuracy <= gates.max_gap",
    "accuracy": "test accuracy >= gates.min_accuracy and above the test set's majority-class baseline",
    "stability": "|validation accuracy - test accuracy| <= gates.max_val_test_diff",
}


def model_asset_name(model_type: str) -> str:
    return f"{model_type}_model"


def run_folder(symbol: str, model_type: str, run_id: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return warehouse_dir() / "model_runs" / validate_symbol(symbol) / model_type / f"{stamp}_{run_id[:8]}"


def _top_features_md(importance: list[dict], top: int) -> dg.MetadataValue:
    lines = ["| feature | importance | std |", "|---|---:|---:|"]
    lines += [f"| {f['feature']} | {f['importance']:.4f} | {f['std']:.4f} |" for f in importance[:top]]
    return dg.MetadataValue.md("\n".join(lines))


def _metadata(record: dict, top: int) -> dict:
    result = record["result"]
    history = result["history"]
    out = {
        "model": record["model_name"],
        "device": record["device"],
        "train_accuracy": history["train_accuracy"],
        "val_accuracy": history["val_accuracy"],
        "test_accuracy": history["test_accuracy"],
        "train_val_gap": history["train_val_gap"],
        "test_majority_baseline": result["test_majority_baseline"]["accuracy"],
        "test_macro_f1": result["test_metrics"]["f1_score"],
        "training_seconds": round(result["training_duration_seconds"], 2),
        "run_dir": dg.MetadataValue.path(record["run_dir"]),
        "mlflow_run_id": record["mlflow_run_id"] or "",
        "top_features": _top_features_md(result["feature_importance"], top),
        "warnings": json_value(result["warnings"]),
        "alerts": json_value([a.get("message", a) for a in record["analytics_alerts"]]),
    }
    if history.get("cv_fold_accuracies") is not None:
        out["cv"] = json_value(
            {k: history[k] for k in ("cv_fold_accuracies", "cv_mean_accuracy", "cv_std_accuracy", "cv_is_stable")}
        )
    for key in ("stop_reason", "best_epoch", "epochs_run", "best_round"):
        if result.get(key) is not None:
            out[key] = result[key]
    return out


def build_model_asset(model_type: str) -> dg.AssetsDefinition:
    name = model_asset_name(model_type)
    # partitions_def: each evaluation belongs to its symbol (one symbol's result never masks another's).
    checks = [
        dg.AssetCheckSpec(gate, asset=name, description=text, blocking=False, partitions_def=symbol_partitions)
        for gate, text in GATES.items()
    ]

    @dg.asset(
        name=name,
        partitions_def=symbol_partitions,
        group_name="models",
        pool="gpu" if model_type in TORCH_MODEL_TYPES else None,
        kinds={KINDS[model_type]},
        required_resource_keys={"mlflow", "strategy"},
        check_specs=checks,
        description=f"{model_type.replace('_', ' ').title()} trained on the augmented train set, "
        "evaluated on validation and test, saved with its scaler, config, metrics and analytics.",
    )
    def _model(
        context: dg.AssetExecutionContext,
        temporal_splits: TemporalSplits,
        augmented_train_set: pd.DataFrame,
    ):
        symbol = context.partition_key
        strategy: StrategyResource = context.resources.strategy
        config = strategy.for_symbol(symbol)
        tags = {
            "symbol": symbol,
            "model_type": model_type,
            "dagster_run_id": context.run_id,
            "partition": symbol,
            "strategy": config.name,
        }
        run_dir = run_folder(symbol, model_type, context.run_id)
        title = f"{symbol} {model_type} ({config.name})"
        prompt_context = {"symbol": symbol, "model type": model_type, "dagster run": context.run_id}
        with nested_training_run(context.resources.mlflow, f"{symbol}-{model_type}", tags) as tracker:
            try:
                record = train_model(
                    model_type,
                    temporal_splits,
                    augmented_train_set,
                    config,
                    symbol=symbol,
                    run_dir=run_dir,
                    run_info={"run_id": context.run_id, "strategy": config.name},
                    strategy_source=str(strategy.resolved_path()),
                    tracker=tracker,
                    progress=context.log.info,
                )
            except Exception as err:
                if run_dir.exists():  # training started: leave the LLM-ready diagnosis beside its files
                    write_run_prompt(run_dir, title=title, context=prompt_context, error=err)
                raise
            write_run_prompt(run_dir, title=title, context=prompt_context, error=None)
        metadata = _metadata(record, config.models.top_features)
        png = run_dir / "learning_curves.png"
        if png.exists():
            metadata["learning_curves"] = png_md(png.read_bytes(), f"{symbol} {model_type} learning curves")
            metadata["learning_curves_png"] = dg.MetadataValue.path(str(png))
        yield dg.Output(record, metadata=metadata)
        for gate in evaluate_gates(record["result"], config.gates):
            yield dg.AssetCheckResult(
                check_name=gate.name,
                passed=gate.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=gate.description,
                metadata={
                    "value": gate.value,
                    "threshold": gate.threshold,
                    **({"baseline": gate.baseline} if gate.baseline is not None else {}),
                },
            )

    return _model


model_assets = [build_model_asset(model_type) for model_type in MODEL_TYPES]
