"""One model training run, end to end: arrays -> fit -> evaluate -> importance -> files -> record.

A run writes everything into its own `RunFolder` (never over an earlier run) and returns a
`TrainingRecord` that points at it. The model type's spec (the registry) decides how it is fitted,
saved and what it learns from; everything else here is the same for every type.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.splits import LABEL, TemporalSplits
from ktrdr_assets.core.models.base import FitContext, FittedModel, SplitArrays
from ktrdr_assets.core.models.evaluation import build_result, classification_metrics
from ktrdr_assets.core.models.persistence import save_json
from ktrdr_assets.core.models.registry import get_spec
from ktrdr_assets.core.models.run_folder import RunFolder
from ktrdr_assets.core.models.run_record import TrainingRecord
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.selection.decision import apply_decision_rule, choose_decision_rule, predicted_shares
from ktrdr_assets.core.selection.significance import accuracy_significance, persistence_predictions
from ktrdr_assets.core.selection.walk_forward import SymbolSeries, WalkForwardResult, walk_forward
from ktrdr_assets.core.training.alerts import evaluate_alerts
from ktrdr_assets.core.training.analytics_export import export_run, final_analysis
from ktrdr_assets.core.training.tracking import NullTracker, Tracker
from ktrdr_assets.core.training.trends import LIVE_METRICS, TrendTracker
from ktrdr_assets.core.util.atomic import write_bytes_atomic
from ktrdr_assets.core.util.jsonsafe import to_jsonable
from ktrdr_assets.core.util.plots import learning_curves_png

log = logging.getLogger(__name__)

PARTS = ("train", "validation", "test")


def splits_fingerprint(splits: TemporalSplits) -> str:
    """Identifies the data a model was trained on: the split summary and the fitted scaler."""
    payload = json.dumps(to_jsonable(splits.summary()), sort_keys=True) + splits.scaler.to_json()
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def config_fingerprint(config: Any, seed: int, evaluation: Any = None) -> str:
    """Identifies how a model was trained and judged: its config, the seed and (when given) the strategy's
    walk-forward settings, so a record judged under other evaluation settings never competes."""
    document: dict[str, Any] = {"config": config.model_dump(mode="json"), "seed": seed}
    if evaluation is not None:
        document["evaluation"] = evaluation.model_dump(mode="json")
    payload = json.dumps(document, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _finite(frame: pd.DataFrame, names: list[str], where: str) -> np.ndarray:
    values = frame[names].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{where}: {int(bad.sum())} non-finite feature values (NaN/inf), first in column "
            f"{names[col]!r} at {frame.index[row]}"
        )
    return values


def prepare_arrays(spec: ModelSpec, splits: TemporalSplits, augmented: pd.DataFrame) -> SplitArrays:
    """Arrays of every part, checked finite; the fit set is the augmented train set, or for a sequence
    model the chronological train part."""
    names = splits.feature_names
    parts = {
        part: (_finite(frame, names, f"temporal_splits.{part}"), frame[LABEL].to_numpy(np.int64))
        for part, frame in splits.parts().items()
    }
    if spec.uses_sequences:
        fit_X, fit_y = parts["train"]
    else:
        fit_X = _finite(augmented, names, "augmented_train_set")
        fit_y = augmented[LABEL].to_numpy(np.int64)
    return SplitArrays(fit_X=fit_X, fit_y=fit_y, parts=parts)


def _evaluate(fitted: FittedModel, arrays: SplitArrays) -> dict[str, dict[str, Any]]:
    out = {}
    for part in PARTS:
        X, y = arrays.parts[part]
        proba = fitted.predict_proba_rows(X)
        out[part] = classification_metrics(fitted.align(y), proba.argmax(axis=1))
    return out


def _epoch_logger(
    spec: ModelSpec,
    config: Any,
    strategy: StrategyConfig,
    symbol: str,
    tracker: Tracker,
    progress: Callable[[str], None],
) -> Callable[[dict[str, Any]], None]:
    """on_epoch_end: log the epoch's LIVE_METRICS (torch models: with the loss trend so far) to the
    tracker as the epoch ends, and a progress line with the epoch's time: every epoch of a torch model,
    every tenth of the planned boosting rounds."""
    planned = getattr(config, "epochs", None) or getattr(config, "n_estimators", 100)
    every = 1 if spec.is_torch else max(1, planned // 10)
    trends = TrendTracker(strategy.analytics) if spec.is_torch else None

    def on_epoch_end(row: dict[str, Any]) -> None:
        live = {key: row[key] for key in LIVE_METRICS if key in row}
        if trends is not None:
            live.update(trends.update(int(row["epoch"]), row["train_loss"], row["val_loss"]).metrics())
        tracker.log_epoch(int(row["epoch"]), live)
        if row["epoch"] == 1 or row["epoch"] % every == 0:
            took = row.get("epoch_duration_seconds")
            progress(
                f"{symbol} {spec.model_type} {spec.history_unit} {row['epoch']}/{planned}: "
                f"train_loss={row.get('train_loss', 0):.4f} val_loss={row.get('val_loss', 0):.4f} "
                f"val_acc={row.get('val_acc', 0):.3f}" + (f" ({took:.2f} s)" if took is not None else "")
            )

    return on_epoch_end


def _tree_analytics(
    fitted: FittedModel, rows: list[dict[str, Any]], run_dir: Path, strategy: StrategyConfig, run_info: dict
) -> None:
    """metrics.csv / detailed_metrics.json / alerts.txt for a model without a torch loop: one row per
    boosting round (XGBoost) or a single row (RandomForest), with the columns that have a meaning."""
    best = fitted.details.get("best_round") or len(rows)
    n_rounds = run_info.get("config", {}).get("n_estimators")
    stop = "early_stopping" if fitted.history and len(rows) < (n_rounds or 0) else "completed"
    document = {
        "run_metadata": {**run_info, "total_epochs": len(rows), "stopping_reason": stop},
        "training_config": run_info.get("config", {}),
        "epoch_metrics": rows,
        "alerts": evaluate_alerts(rows, strategy.analytics),
        "monitor_alerts": [],
        "final_analysis": final_analysis(rows, [], stop, best),
    }
    analytics = strategy.analytics
    export_run(
        run_dir,
        export_csv=analytics.export_csv,
        export_json=analytics.export_json,
        export_alerts=analytics.export_alerts,
        rows=rows,
        document=document,
    )


def _write_run_files(
    spec: ModelSpec,
    fitted: FittedModel,
    folder: RunFolder,
    splits: TemporalSplits,
    saved_config: dict[str, Any],
    result: dict[str, Any],
    importance: list[dict[str, Any]],
) -> None:
    fitted.save(folder.file(spec.model_file))
    folder.file(RunFolder.SCALER).write_text(splits.scaler.to_json(), encoding="utf-8")
    save_json(folder.file(RunFolder.FEATURE_NAMES), splits.feature_names)
    save_json(folder.file(RunFolder.CONFIG), saved_config)
    save_json(folder.file(RunFolder.METRICS), result)
    save_json(folder.file(RunFolder.IMPORTANCE), importance)


def _write_analytics(
    spec: ModelSpec,
    fitted: FittedModel,
    folder: RunFolder,
    metrics: dict[str, dict[str, Any]],
    arrays: SplitArrays,
    duration: float,
    strategy: StrategyConfig,
    info: dict[str, Any],
    title: str,
) -> None:
    """Models without the torch loop get their analytics files here (the loop writes its own), and
    every model with a history gets its learning curves."""
    if not spec.is_torch:
        rows = fitted.history or [
            {
                "epoch": 1,
                "train_acc": metrics["train"]["accuracy"],
                "val_acc": metrics["validation"]["accuracy"],
                "total_samples_processed": len(arrays.fit_y),
                "epoch_duration_seconds": duration,
            }
        ]
        _tree_analytics(fitted, rows, folder.path, strategy, info)
    if fitted.history:
        png = learning_curves_png(fitted.history, title, spec.history_unit)
        write_bytes_atomic(folder.file(RunFolder.LEARNING_CURVES), png)


def _log_final_metrics(tracker: Tracker, result: dict[str, Any], duration: float) -> None:
    history = result["history"]
    tracker.log_metrics(
        {
            "final_train_accuracy": history["train_accuracy"],
            "final_val_accuracy": history["val_accuracy"],
            "final_test_accuracy": history["test_accuracy"],
            "train_val_gap": history["train_val_gap"],
            "test_macro_f1": result["test_metrics"]["f1_score"],
            "training_duration_seconds": duration,
        }
    )


def _check_features(features: pd.DataFrame, splits: TemporalSplits) -> None:
    """A ValueError unless `features` is the frame `splits` was cut from (same rows, same timestamps)."""
    if len(features) != splits.source_rows:
        raise ValueError(
            f"features has {len(features)} rows but temporal_splits was cut from {splits.source_rows}: "
            "materialize temporal_splits again from the current features"
        )
    for part, frame in splits.parts().items():
        first, last = splits.row_positions[part]
        if len(frame) and (features.index[first] != frame.index[0] or features.index[last] != frame.index[-1]):
            raise ValueError(f"features and temporal_splits.{part} disagree on timestamps: re-materialize them")


def _holdout(
    fitted: FittedModel,
    arrays: SplitArrays,
    splits: TemporalSplits,
    rule: dict[str, Any],
    features: pd.DataFrame | None,
) -> dict[str, Any]:
    """The untouched figure: the final model with its validation-chosen decision rule on the test part,
    beside the naive baselines on the same rows (scored once; nothing is chosen on it)."""
    X, y = arrays.parts["test"]
    calls = apply_decision_rule(fitted.predict_proba_rows(X), rule)
    y = fitted.align(y)
    first, last = splits.row_positions["test"]
    persistence = None
    if features is not None:
        positions = np.arange(first + fitted.lookback - 1, last + 1)
        persistence = persistence_predictions(features[LABEL].to_numpy(np.int64), positions, splits.lookahead)
    significance = accuracy_significance(y, calls, persistence)
    index = splits.test.index[fitted.lookback - 1 :]
    return {
        **significance.to_dict(),
        "first": index[0].isoformat(),
        "last": index[-1].isoformat(),
        "predicted_shares": predicted_shares(calls),
    }


def train_model(
    model_type: str,
    splits: TemporalSplits,
    augmented: pd.DataFrame,
    strategy: StrategyConfig,
    *,
    symbol: str,
    run_dir: Path,
    run_info: dict[str, Any],
    strategy_source: str = "<strategy>",
    tracker: Tracker | None = None,
    progress: Callable[[str], None] | None = None,
    features: pd.DataFrame | None = None,
    evidence_result: WalkForwardResult | None = None,
) -> TrainingRecord:
    """Train, evaluate and save one model type for one symbol; return the run's record.

    The final model is fitted as before (train part, early stopping on validation), its decision rule
    chosen on validation, and the holdout (the test part) scored once under `result["holdout"]`. With
    `features` (the unscaled features frame `splits` was cut from) its evidence follows: a walk-forward
    over the rows before the holdout (core/selection/walk_forward.py), the out-of-fold predictions
    written to the run folder and summarized under `result["evidence"]`. Without it (experiments,
    searches) only the final model is trained. `evidence_result`: evidence produced where the model was
    trained (the pooled walk-forward), used instead of a walk-forward here; a type whose spec cannot fit per
    fold (`fits_per_fold=False`) gets no evidence without it.

    Raises ValueError/StrategyError for bad input or config and ModelTrainingError when training
    itself fails (e.g. NaN loss); nothing is written outside `run_dir`.
    """
    spec = get_spec(model_type)
    tracker = tracker or NullTracker()
    progress = progress or log.info
    folder = RunFolder(Path(run_dir))
    config = spec.parse_config(strategy.models, strategy_source)
    arrays = prepare_arrays(spec, splits, augmented)
    if features is not None:
        _check_features(features, splits)
    folder.path.mkdir(parents=True, exist_ok=True)
    seed = strategy.seed
    info = {**run_info, "symbol": symbol, "model_type": model_type, "config": config.model_dump(mode="json")}
    tracker.log_params({"model_type": model_type, "seed": seed, **config.model_dump(mode="json")})

    context = FitContext(
        seed=seed,
        analytics=strategy.analytics,
        run_info=info,
        run_dir=folder.path,
        on_epoch_end=_epoch_logger(spec, config, strategy, symbol, tracker, progress),
        purge_bars=splits.purge_bars,
    )
    started = time.perf_counter()
    try:
        fitted = spec.fit(arrays, config, context)
    except Exception as err:
        # The folder keeps what training wrote (e.g. metrics.csv up to a NaN loss) for diagnosis.
        save_json(folder.file(RunFolder.FAILURE), {"status": "failed", "error": f"{type(err).__name__}: {err}", **info})
        raise
    duration = time.perf_counter() - started
    metrics = _evaluate(fitted, arrays)
    X_val, y_val = arrays.parts["validation"]
    rule = choose_decision_rule(
        fitted.predict_proba_rows(X_val), fitted.align(y_val), fitted.details.get("class_weights")
    )
    holdout = _holdout(fitted, arrays, splits, rule, features)
    evidence = None
    wf_seconds = 0.0
    wf = evidence_result
    if wf is None and features is not None and spec.fits_per_fold:
        series = SymbolSeries.of(features, splits, strategy)
        try:
            wf = walk_forward(
                spec,
                config,
                features,
                splits.feature_names,
                strategy,
                evidence_rows=series.evidence_rows,
                purge=series.purge,
                lookahead=series.lookahead,
                run_info=info,
                run_dir=folder.path,
                progress=progress,
                name=f"{symbol} {model_type}",
            )
        except Exception as err:
            failure = {"status": "failed", "error": f"walk-forward: {type(err).__name__}: {err}", **info}
            save_json(folder.file(RunFolder.FAILURE), failure)
            raise
    if wf is not None:
        wf.oof.to_parquet(folder.file(RunFolder.OOF))
        evidence, wf_seconds = wf.evidence, wf.evidence["seconds"]
        oof = evidence["oof"]
        progress(
            f"{symbol} {model_type} walk-forward: out-of-fold accuracy {oof['accuracy']:.3f} vs baseline "
            f"{oof['baseline']:.3f} ({oof['baseline_name']}), p = {oof['p_value']:.3g}, n = {oof['n']} "
            f"(effective {oof['n_effective']}), mean gap {evidence['mean_gap']:+.3f} ({wf_seconds:.1f} s)"
        )

    from ktrdr_assets.core.models.importance import permutation_feature_importance  # scikit-learn, when used

    importance = permutation_feature_importance(
        fitted.predict_rows_padded,
        X_val,
        y_val,
        splits.feature_names,
        repeats=strategy.models.permutation_repeats,
        seed=seed,
    )
    result = build_result(
        symbol,
        spec.display_name,
        metrics["train"],
        metrics["validation"],
        metrics["test"],
        cv=fitted.cv,
        feature_importance=importance,
        warnings=fitted.warnings,
        duration_s=duration,
        extra={
            "model_type": model_type,
            **{k: v for k, v in fitted.details.items() if k != "analytics_alerts"},
            "decision_rule": rule,
            "holdout": holdout,
            "evidence": evidence,
            "training_cost": {
                "walk_forward_seconds": wf_seconds,
                "walk_forward_fits": evidence["fits"] if evidence else 0,
                "final_fit_seconds": duration,
                "total_seconds": wf_seconds + duration,
            },
        },
    )
    saved_config = {"model_type": model_type, "seed": seed, "config": info["config"]}
    _write_run_files(spec, fitted, folder, splits, saved_config, result, importance)
    title = f"{symbol} {spec.display_name}"
    _write_analytics(spec, fitted, folder, metrics, arrays, duration, strategy, info, title)
    _log_final_metrics(tracker, result, duration)
    tracker.log_artifacts(folder.path)
    return TrainingRecord(
        symbol=symbol,
        model_type=model_type,
        model_name=spec.display_name,
        run_dir=str(folder.path),
        model_file=spec.model_file,
        files=folder.files(),
        splits_fingerprint=splits_fingerprint(splits),
        config_fingerprint=config_fingerprint(config, seed, strategy.evaluation),
        mlflow_run_id=tracker.run_id,
        device=fitted.details.get("device", "cpu"),
        lookback=fitted.lookback,
        result=to_jsonable(result),
        analytics_alerts=to_jsonable(fitted.details.get("analytics_alerts", [])),
    )
