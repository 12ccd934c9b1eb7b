"""Walk-forward evaluation: a model type's evidence, for any registered type (it fits through the spec).

Layout (positions are rows of the features frame, which holds every labelled bar in time order):

    [0 ........................ evidence_rows) [purge] [holdout = the temporal splits' test part]
    [initial | test block 1 | test block 2 | ... | test block K]

The evidence region ends where the final model's validation part ends, so the holdout (the most recent
rows, after a purge gap) never enters a fold. The first `initial_train_fraction` of the evidence rows only
train; the rest is cut into `folds` test blocks of (almost) equal size. Fold k, testing on block [a, b):

- training rows: expanding [0, a - purge), or rolling: the last `initial - purge` rows of that range;
- of those, the last `validation_fraction` (at least 10 rows) are the fold's validation part, and the
  rows before them less another purge gap are its fit rows;
- the scaler is fitted on the fit rows only (as `temporal_split` does), the augmentation runs on the
  scaled fit rows only (synthetic rows never reach validation or test), and the model type's config is
  fitted afresh with the strategy's seed (torch epochs capped at `max_epochs_per_fold`; the fit skips
  any internal CV of its own, `FitContext.inner_cv = False`);
- the decision rule is chosen on the fold's validation part (core/selection/decision.py) and applied to
  the test block. A sequence model sees the `lookback - 1` rows before the block as context (features
  only, known at that time), so every model predicts every row of every block.

Out-of-fold predictions (OOF): one row per test row with the true label, the class probabilities, the
call, the fold and the persistence forecast. Evidence: pooled accuracy against the best naive baseline
with the exact binomial test (core/selection/significance.py), per fold the train and validation
accuracy (gap), test accuracy and its own best baseline, and the cost (seconds, epochs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_assets.core.config.evaluation import EvaluationConfig
from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.augmentation import augment_train_set
from ktrdr_assets.core.data.labels import LABEL
from ktrdr_assets.core.data.scaling import FeatureScaler
from ktrdr_assets.core.data.signals import CLASS_NAMES
from ktrdr_assets.core.data.splits import TemporalSplits
from ktrdr_assets.core.models.base import FitContext, FittedModel, SplitArrays
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.selection.decision import apply_decision_rule, choose_decision_rule, predicted_shares
from ktrdr_assets.core.selection.significance import (
    accuracy_significance,
    majority_accuracy,
    persistence_predictions,
)

MIN_FIT_ROWS = 30
MIN_PART_ROWS = 10
PROBA_COLUMNS = tuple(f"proba_{name}" for name in CLASS_NAMES)
OOF_COLUMNS = (LABEL, *PROBA_COLUMNS, "prediction", "fold", "persistence")


@dataclass(frozen=True)
class Fold:
    """Row ranges [start, end) of one fold in the features frame."""

    number: int
    fit: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]

    def rows(self) -> dict[str, int]:
        return {part: end - start for part, (start, end) in self.parts().items()}

    def parts(self) -> dict[str, tuple[int, int]]:
        return {"fit": self.fit, "validation": self.validation, "test": self.test}


def evaluation_purge(config: EvaluationConfig, splits_purge: int, lookahead: int) -> int:
    """The gap between a fold's parts: `config.purge_bars` or the splits' gap, never below the lookahead."""
    requested = splits_purge if config.purge_bars is None else config.purge_bars
    return max(int(requested), int(lookahead))


@dataclass(frozen=True)
class SymbolSeries:
    """One symbol's unscaled features frame and its walk-forward's evidence region (the rows before the
    holdout), purge gap and label lookahead: what the per-symbol and the pooled walk-forwards read."""

    features: pd.DataFrame
    evidence_rows: int
    purge: int
    lookahead: int

    @classmethod
    def of(cls, features: pd.DataFrame, splits: TemporalSplits, strategy: StrategyConfig) -> SymbolSeries:
        """The series of `features`, the frame `splits` was cut from, under `strategy`'s evaluation settings."""
        return cls(
            features=features,
            evidence_rows=splits.row_positions["validation"][1] + 1,
            purge=evaluation_purge(strategy.evaluation, splits.purge_bars, splits.lookahead),
            lookahead=splits.lookahead,
        )

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.features.index[: self.evidence_rows]


def fold_between(number: int, a: int, b: int, window_rows: int, config: EvaluationConfig, purge: int) -> Fold:
    """Fold `number` testing rows [a, b): training ends `purge` rows before `a` and starts at 0 (expanding)
    or `window_rows - purge` rows earlier (rolling); its last `validation_fraction` are the validation part."""
    end = a - purge
    start = 0 if config.window == "expanding" else max(0, end - (window_rows - purge))
    n_val = max(MIN_PART_ROWS, int(round((end - start) * config.validation_fraction)))
    return Fold(number, (start, end - n_val - purge), (end - n_val, end), (int(a), int(b)))


def fold_shortfall(fold: Fold) -> str | None:
    """Why `fold` is too small to fit and judge a model (None: it is not)."""
    rows = fold.rows()
    if rows["fit"] < MIN_FIT_ROWS or rows["validation"] < MIN_PART_ROWS or rows["test"] < MIN_PART_ROWS:
        return (
            f"fold {fold.number} would have {rows['fit']} fit, {rows['validation']} validation and {rows['test']} "
            f"test rows (needs >= {MIN_FIT_ROWS} / {MIN_PART_ROWS} / {MIN_PART_ROWS})"
        )
    return None


def plan_folds(evidence_rows: int, config: EvaluationConfig, purge: int) -> list[Fold]:
    """The folds of the module docstring's layout; ValueError naming the sizes when a part is too small."""
    initial = int(round(evidence_rows * config.initial_train_fraction))
    edges = np.linspace(initial, evidence_rows, config.folds + 1).round().astype(int)
    folds = []
    for number, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True), start=1):
        fold = fold_between(number, int(a), int(b), initial, config, purge)
        if shortfall := fold_shortfall(fold):
            raise ValueError(
                f"walk-forward: {evidence_rows} evidence rows, {config.folds} folds, purge {purge}: {shortfall}; "
                "supply more bars or lower evaluation.folds / raise evaluation.initial_train_fraction"
            )
        folds.append(fold)
    return folds


@dataclass
class WalkForwardResult:
    oof: pd.DataFrame  # indexed by timestamp, OOF_COLUMNS
    evidence: dict[str, Any]  # JSON-ready: scheme, folds, pooled significance, cost


def fold_config(config: Any, cap: int | None) -> Any:
    """`config` with its `epochs` capped at `cap` (configs without epochs are returned as they are)."""
    epochs = getattr(config, "epochs", None)
    if cap is None or epochs is None or epochs <= cap:
        return config
    return config.model_copy(update={"epochs": cap})


def _accuracy(fitted: FittedModel, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(fitted.predict_proba_rows(X).argmax(axis=1) == fitted.align(y)))


@dataclass
class FoldData:
    """One fold's parts of one symbol, scaled by the scaler fitted on its fit rows."""

    fold: Fold
    scaler: FeatureScaler
    parts: dict[str, tuple[np.ndarray, np.ndarray]]  # fit / validation / test: (X, y), scaled
    fit_X: np.ndarray  # what the model learns from: the fit rows, augmented unless a sequence type
    fit_y: np.ndarray
    augmented_rows: int


def prepare_fold(
    features: pd.DataFrame, fold: Fold, feature_names: list[str], strategy: StrategyConfig, uses_sequences: bool
) -> FoldData:
    """`fold`'s rows of `features`: the scaler fitted on the fit rows only, the augmentation (rows models
    only) run on the scaled fit rows only, so nothing synthetic or fitted reaches validation or test."""
    columns = [*feature_names, LABEL]
    raw = {part: features.iloc[a:b][columns] for part, (a, b) in fold.parts().items()}
    scaler = FeatureScaler.fit(raw["fit"], feature_names, strategy.splits.robust_scale_patterns)
    scaled = {part: scaler.transform(frame) for part, frame in raw.items()}
    parts = {
        part: (frame[feature_names].to_numpy(np.float64), frame[LABEL].to_numpy(np.int64))
        for part, frame in scaled.items()
    }
    if uses_sequences:
        return FoldData(fold, scaler, parts, *parts["fit"], augmented_rows=0)
    fit_part = scaled["fit"].astype({LABEL: np.int8})
    augmented = augment_train_set(fit_part, feature_names, strategy.augmentation, strategy.seed).frame
    return FoldData(
        fold,
        scaler,
        parts,
        augmented[feature_names].to_numpy(np.float64),
        augmented[LABEL].to_numpy(np.int64),
        augmented_rows=len(augmented) - len(fit_part),
    )


def score_fold(
    fitted: FittedModel,
    data: FoldData,
    features: pd.DataFrame,
    feature_names: list[str],
    lookahead: int,
    seconds: float,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(the fold's out-of-fold rows, its record): the decision rule chosen on the validation part, applied
    to the test block (a sequence model sees the `lookback - 1` rows before it as context)."""
    fold = data.fold
    X_val, y_val = data.parts["validation"]
    val_proba = fitted.predict_proba_rows(X_val)
    y_val_aligned = fitted.align(y_val)
    rule = choose_decision_rule(val_proba, y_val_aligned, fitted.details.get("class_weights"))
    a, b = fold.test
    context = features.iloc[a - (fitted.lookback - 1) : b][[*feature_names, LABEL]]
    proba = fitted.predict_proba_rows(data.scaler.transform(context)[feature_names].to_numpy(np.float64))
    calls = apply_decision_rule(proba, rule)
    labels = features[LABEL].to_numpy(dtype=np.int64)
    y_test = labels[a:b]
    persistence = persistence_predictions(labels, np.arange(a, b), lookahead)
    frame = pd.DataFrame(proba, columns=list(PROBA_COLUMNS), index=features.index[a:b])
    frame.insert(0, LABEL, y_test)
    frame["prediction"] = calls
    frame["fold"] = fold.number
    frame["persistence"] = persistence
    train_acc = _accuracy(fitted, *data.parts["fit"])
    val_acc = float(np.mean(val_proba.argmax(axis=1) == y_val_aligned))
    test_acc = float(np.mean(calls == y_test))
    majority_name, majority = majority_accuracy(y_test)
    persistence_acc = float(np.mean(persistence == y_test)) if (persistence >= 0).any() else None
    baseline = max(majority, persistence_acc or 0.0)
    record = {
        "fold": fold.number,
        "rows": fold.rows(),
        "augmented_rows": data.augmented_rows,
        "fit_first": features.index[fold.fit[0]].isoformat(),
        "test_first": features.index[a].isoformat(),
        "test_last": features.index[b - 1].isoformat(),
        "train_accuracy": train_acc,
        "val_accuracy": val_acc,
        "gap": train_acc - val_acc,
        "test_accuracy": test_acc,
        "majority_class": majority_name,
        "majority_accuracy": majority,
        "persistence_accuracy": persistence_acc,
        "baseline": baseline,
        "above_baseline": test_acc > baseline,
        "decision_rule": rule["description"],
        "epochs_run": fitted.details.get("epochs_run", fitted.details.get("best_round")),
        "seconds": seconds,
    }
    return frame, record


def fold_line(name: str, record: dict[str, Any], n_folds: int) -> str:
    """The progress line of one scored fold."""
    return (
        f"{name} walk-forward fold {record['fold']}/{n_folds}: fit {record['rows']['fit']} rows, test "
        f"{record['test_first'][:10]}..{record['test_last'][:10]}: accuracy {record['test_accuracy']:.3f} vs "
        f"baseline {record['baseline']:.3f}, gap {record['gap']:+.3f} ({record['seconds']:.1f} s)"
    )


def walk_forward(
    spec: ModelSpec,
    config: Any,
    features: pd.DataFrame,
    feature_names: list[str],
    strategy: StrategyConfig,
    *,
    evidence_rows: int,
    purge: int,
    lookahead: int,
    run_info: dict[str, Any] | None = None,
    run_dir: Path | None = None,
    progress: Callable[[str], None] = lambda line: None,
    name: str = "",
) -> WalkForwardResult:
    """Fit `spec` on every fold of `plan_folds` over `features[:evidence_rows]`; see the module docstring.

    `features`: the unscaled features frame (feature columns + `label`), every labelled bar in order.
    """
    evaluation = strategy.evaluation
    if not 0 < evidence_rows <= len(features):
        raise ValueError(f"walk-forward: evidence_rows {evidence_rows} outside the {len(features)} feature rows")
    folds = plan_folds(evidence_rows, evaluation, purge)
    capped = fold_config(config, evaluation.max_epochs_per_fold)
    frames, records = [], []
    started = time.perf_counter()
    for fold in folds:
        fold_started = time.perf_counter()
        data = prepare_fold(features, fold, feature_names, strategy, spec.uses_sequences)
        arrays = SplitArrays(
            fit_X=data.fit_X,
            fit_y=data.fit_y,
            parts={"train": data.parts["fit"], "validation": data.parts["validation"], "test": data.parts["test"]},
        )
        context = FitContext(
            seed=strategy.seed,
            analytics=AnalyticsConfig(enabled=False),
            run_info={**(run_info or {}), "walk_forward_fold": fold.number},
            run_dir=(run_dir / "walk_forward" / f"fold_{fold.number}") if run_dir else Path("."),
            inner_cv=False,
            purge_bars=purge,
        )
        try:
            fitted = spec.fit(arrays, capped, context)
        except Exception as err:
            raise type(err)(f"walk-forward fold {fold.number}/{len(folds)}: {err}") from err
        frame, record = score_fold(fitted, data, features, feature_names, lookahead, time.perf_counter() - fold_started)
        frames.append(frame)
        records.append(record)
        progress(fold_line(name, record, len(folds)))
    oof = pd.concat(frames)
    return WalkForwardResult(
        oof=oof,
        evidence=walk_forward_evidence(
            oof, records, evaluation, purge, lookahead, evidence_rows, time.perf_counter() - started, capped
        ),
    )


def walk_forward_evidence(
    oof: pd.DataFrame,
    folds: list[dict[str, Any]],
    evaluation: EvaluationConfig,
    purge: int,
    lookahead: int,
    evidence_rows: int,
    seconds: float,
    config: Any,
) -> dict[str, Any]:
    significance = accuracy_significance(
        oof[LABEL].to_numpy(),
        oof["prediction"].to_numpy(),
        oof["persistence"].to_numpy(),
        blocks=oof["fold"].to_numpy(),
    )
    accuracies = np.array([f["test_accuracy"] for f in folds])
    gaps = np.array([f["gap"] for f in folds])
    above = np.array([f["above_baseline"] for f in folds])
    return {
        "scheme": {
            **evaluation.model_dump(mode="json"),
            "purge_bars": purge,
            "lookahead": lookahead,
            "evidence_rows": evidence_rows,
            "epochs_per_fold": getattr(config, "epochs", None),
        },
        "oof": {
            **significance.to_dict(),
            "first": oof.index[0].isoformat(),
            "last": oof.index[-1].isoformat(),
            "predicted_shares": predicted_shares(oof["prediction"].to_numpy()),
            "true_shares": predicted_shares(oof[LABEL].to_numpy()),
        },
        "folds": folds,
        "fold_accuracies": accuracies.tolist(),
        "fold_accuracy_mean": float(accuracies.mean()),
        "fold_accuracy_std": float(accuracies.std()),
        "mean_gap": float(gaps.mean()),
        "folds_above_baseline": int(above.sum()),
        "share_folds_above_baseline": float(above.mean()),
        "seconds": seconds,
        "fits": len(folds),
    }
