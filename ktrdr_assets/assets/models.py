"""The model assets: one per registered model type (one factory), each with its quality-gate checks.

Each training is its own MLflow run nested under the Dagster run's parent run, with per-epoch metrics
logged as each epoch ends. Every run writes into a fresh folder; a failing model fails only its own
asset and leaves earlier runs and the other models untouched.
"""

from collections.abc import Callable

import dagster as dg
import pandas as pd

from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.splits import TemporalSplits
from ktrdr_assets.core.models.registry import model_specs
from ktrdr_assets.core.models.run_folder import RunFolder
from ktrdr_assets.core.models.run_record import TrainingRecord
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.models.training_runs import train_model
from ktrdr_assets.core.research.llm_reports import write_run_prompt
from ktrdr_assets.core.selection.candidates import competing_models
from ktrdr_assets.core.selection.gates import GATE_RULES, evaluate_gates
from ktrdr_assets.core.training.tracking import Tracker
from ktrdr_assets.deployment import gpu_op_tags
from ktrdr_assets.metadata import json_value, md_table, png_md
from ktrdr_assets.partitions import symbol_partitions
from ktrdr_assets.paths import warehouse_dir
from ktrdr_assets.resources import MlflowTracking, StrategyResource

#: The Dagster concurrency pool of GPU-bound steps (torch models, experiments, searches): one at a time.
GPU_POOL = "gpu"
#: What the asset of a model type switched off in the strategy (`models.<type>.enabled: false`) reports.
DISABLED = "disabled by strategy"


def _fold_table(evidence: dict) -> dg.MetadataValue:
    header = ["fold", "fit rows", "test from", "test to", "train acc", "val acc", "test acc", "baseline", "rule", "s"]
    rows = [
        (
            f["fold"],
            f["rows"]["fit"],
            f["test_first"][:10],
            f["test_last"][:10],
            f["train_accuracy"],
            f["val_accuracy"],
            f["test_accuracy"],
            f["baseline"],
            f["decision_rule"],
            f"{f['seconds']:.1f}",
        )
        for f in evidence["folds"]
    ]
    return md_table(header, rows, float_format=".3f", align="rrllrrrrlr")


def _evidence_metadata(result: dict) -> dict:
    """The walk-forward evidence and the holdout, for people: figures, a table of the folds, the cost."""
    out: dict = {}
    evidence = result.get("evidence")
    if evidence:
        oof = evidence["oof"]
        persistence = oof["persistence_accuracy"]
        out.update(
            {
                "oof_accuracy": oof["accuracy"],
                "oof_baseline": oof["baseline"],
                "oof_baseline_name": oof["baseline_name"],
                "oof_majority_baseline": oof["majority_accuracy"],
                "oof_persistence_baseline": persistence if persistence is not None else "n/a",
                "oof_p_value": oof["p_value"],
                "oof_n": oof["n"],
                "oof_n_effective": oof["n_effective"],
                "oof_wilson_95": f"[{oof['wilson_low']:.3f}, {oof['wilson_high']:.3f}]",
                "mean_fold_gap": evidence["mean_gap"],
                "oof_predicted_shares": json_value(oof["predicted_shares"]),
                "walk_forward": _fold_table(evidence),
            }
        )
    holdout = result.get("holdout") or {}
    if holdout:
        out["holdout_accuracy"] = holdout["accuracy"]
        out["holdout_baseline"] = holdout["baseline"]
        out["holdout_predicted_shares"] = json_value(holdout["predicted_shares"])
    if result.get("decision_rule"):
        out["decision_rule"] = result["decision_rule"]["description"]
    cost = result.get("training_cost") or {}
    out["training_cost"] = json_value(cost)
    out["walk_forward_seconds"] = round(cost.get("walk_forward_seconds", 0.0), 2)
    return out


def _metadata(record: TrainingRecord, top: int) -> dict:
    result = record.result
    history = record.history
    out = {
        "model": record.model_name,
        "device": record.device,
        **_evidence_metadata(result),
        "train_accuracy": history["train_accuracy"],
        "val_accuracy": history["val_accuracy"],
        "test_accuracy": history["test_accuracy"],
        "train_val_gap": history["train_val_gap"],
        "test_majority_baseline": result["test_majority_baseline"]["accuracy"],
        "test_macro_f1": result["test_metrics"]["f1_score"],
        "training_seconds": round(result["training_duration_seconds"], 2),
        "run_dir": dg.MetadataValue.path(record.run_dir),
        "mlflow_run_id": record.mlflow_run_id or "",
        "top_features": md_table(
            ["feature", "importance", "std"],
            [(f["feature"], f["importance"], f["std"]) for f in result["feature_importance"][:top]],
            float_format=".4f",
        ),
        "warnings": json_value(result["warnings"]),
        "alerts": json_value([a.get("message", a) for a in record.analytics_alerts]),
    }
    if history.get("cv_fold_accuracies") is not None:
        out["cv"] = json_value(
            {k: history[k] for k in ("cv_fold_accuracies", "cv_mean_accuracy", "cv_std_accuracy", "cv_is_stable")}
        )
    for key in ("stop_reason", "best_epoch", "epochs_run", "best_round"):
        if result.get(key) is not None:
            out[key] = result[key]
    return out


def _check_metadata(gate) -> dict:
    """The check's figures: measured value, threshold, baseline and the gate's details (n, p-value, ...)."""
    metadata: dict = {"threshold": gate.threshold}
    if gate.value is not None:
        metadata["value"] = gate.value
    if gate.baseline is not None:
        metadata["baseline"] = gate.baseline
    for key, value in gate.details.items():
        if value is not None:
            metadata[key] = json_value(value) if isinstance(value, dict | list) else value
    return metadata


def _gate_results(record: TrainingRecord, gates, n_models: int) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            check_name=gate.name,
            passed=gate.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=gate.description,
            metadata=_check_metadata(gate),
        )
        for gate in evaluate_gates(record.result, gates, n_models)
    ]


def model_asset(name: str, *, kind: str, pool: str | None, description: str, deps=()):
    """The decorator of a per-symbol model asset `name` with the gate checks of its result. A multi-asset
    that may emit nothing but a report: a model switched off by the strategy materializes no record and
    leaves its gates unevaluated (`model_outputs`, `disabled_output`)."""
    # partitions_def: each evaluation belongs to its symbol (one symbol's result never masks another's).
    checks = [
        dg.AssetCheckSpec(gate, asset=name, description=text, blocking=False, partitions_def=symbol_partitions)
        for gate, text in GATE_RULES.items()
    ]
    out = dg.AssetOut(group_name="models", kinds={kind}, description=description, is_required=False)
    return dg.multi_asset(
        name=name,
        outs={name: out},
        partitions_def=symbol_partitions,
        pool=pool,
        # Under k8s_job_executor a GPU-pool step is its own pod with one GPU, on a GPU node (deployment.py).
        op_tags=gpu_op_tags() if pool == GPU_POOL else None,
        check_specs=checks,
        can_subset=True,
        deps=list(deps),
    )


def disabled_output(context: dg.AssetExecutionContext, name: str, reason: str) -> dg.Output:
    """What a model asset reports when it has nothing to train or evaluate: no record, no gate verdict."""
    context.log.info(f"{name} {context.partition_key}: {reason}")
    return dg.Output(None, output_name=name, metadata={"status": reason})


def model_outputs(
    context: dg.AssetExecutionContext,
    name: str,
    record: TrainingRecord,
    config: StrategyConfig,
    base: StrategyConfig,
    metadata: dict,
):
    """The record as the asset's output, then the gate checks the run selected: the symbol's gates
    (`config`: its strategy), tested at the Bonferroni level of the model types competing for it (as
    model_selection judges them)."""
    yield dg.Output(record.to_stored(), output_name=name, metadata=metadata)
    selected = {key.name for key in context.selected_asset_check_keys}
    checks = _gate_results(record, config.gates, competing_models(config, base))
    yield from (check for check in checks if check.check_name in selected)


def run_training(
    context: dg.AssetExecutionContext,
    mlflow: MlflowTracking,
    model_type: str,
    config: StrategyConfig,
    train: Callable[[RunFolder, Tracker], TrainingRecord],
) -> tuple[TrainingRecord, dict]:
    """`train` into a fresh run folder of this symbol inside its own MLflow run (nested under the Dagster
    run's), with the LLM-ready prompt beside its files; (the record, the asset's metadata)."""
    symbol = context.partition_key
    tags = {
        "symbol": symbol,
        "model_type": model_type,
        "dagster_run_id": context.run_id,
        "partition": symbol,
        "strategy": config.name,
    }
    folder = RunFolder.new(warehouse_dir(), symbol, model_type, context.run_id)
    title = f"{symbol} {model_type} ({config.name})"
    prompt_context = {"symbol": symbol, "model type": model_type, "dagster run": context.run_id}
    with mlflow.training_run(f"{symbol}-{model_type}", tags) as tracker:
        try:
            record = train(folder, tracker)
        except Exception as err:
            if folder.path.exists():  # training started: leave the LLM-ready diagnosis beside its files
                write_run_prompt(folder.path, title=title, context=prompt_context, error=err)
            raise
        write_run_prompt(folder.path, title=title, context=prompt_context, error=None)
    metadata = _metadata(record, config.models.top_features)
    png = folder.file(RunFolder.LEARNING_CURVES)
    if png.exists():
        metadata["learning_curves"] = png_md(png.read_bytes(), f"{symbol} {model_type} learning curves")
        metadata["learning_curves_png"] = dg.MetadataValue.path(str(png))
    return record, metadata


def build_model_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    """The asset that trains `spec`'s model type for one symbol, with the gate checks of its result."""
    name = spec.asset_name

    @model_asset(
        name,
        kind=spec.kind,
        pool=GPU_POOL if spec.is_torch else None,
        description=f"{spec.description or spec.display_name}: judged on a purged walk-forward over the history "
        "before the holdout (out-of-fold predictions in its run folder), then fitted as the deployable model and "
        "scored once on the holdout; saved with its scaler, config, metrics and analytics.",
    )
    def _model(
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
        if not spec.is_enabled(config.models):
            yield disabled_output(context, name, DISABLED)
            return
        record, metadata = run_training(
            context,
            mlflow,
            spec.model_type,
            config,
            lambda folder, tracker: train_model(
                spec.model_type,
                temporal_splits,
                augmented_train_set,
                config,
                symbol=symbol,
                run_dir=folder.path,
                run_info={"run_id": context.run_id, "strategy": config.name},
                strategy_source=str(strategy.resolved_path()),
                tracker=tracker,
                progress=context.log.info,
                features=features,
            ),
        )
        yield from model_outputs(context, name, record, config, base, metadata)

    return _model


def build_model_assets() -> list[dg.AssetsDefinition]:
    """One asset per registered model type."""
    return [build_model_asset(spec) for spec in model_specs()]
