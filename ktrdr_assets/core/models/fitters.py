"""One fitter per model type: train on the prepared arrays, predict any split, save the model.

Every fitter returns a `FittedModel` with the same surface, so evaluation, feature importance,
persistence and analytics are written once for all four types (see `training_runs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.data.signals import Signal
from ktrdr_assets.core.models.persistence import save_random_forest, save_torch_state, save_xgboost
from ktrdr_assets.core.models.torch_nets import LSTMClassifier, MLPClassifier
from ktrdr_assets.core.models.tree_models import train_random_forest, train_xgboost
from ktrdr_assets.core.training.trainer import predict_proba, train_torch_model
from ktrdr_assets.core.training.windows import WindowDataset

log = logging.getLogger(__name__)


#: The name each model type carries in results, selections and the manifest.
MODEL_NAMES = {"random_forest": "RandomForest", "xgboost": "XGBoost", "neural_network": "NeuralNetwork", "lstm": "LSTM"}


class ModelTrainingError(RuntimeError):
    """Training of one model failed (NaN loss, bad hyper-parameters, ...); the message says why."""


@dataclass
class SplitArrays:
    """The model stage's inputs as arrays: `fit_*` is what the model learns from (the augmented
    train set, or the chronological train part for the LSTM), the rest are the untouched parts."""

    fit_X: np.ndarray
    fit_y: np.ndarray
    parts: dict[str, tuple[np.ndarray, np.ndarray]]  # train / validation / test


@dataclass
class FittedModel:
    model_name: str
    model: Any
    model_file: str
    history: list[dict[str, Any]]
    cv: dict[str, Any] | None
    warnings: list[str]
    predict_proba_rows: Callable[[np.ndarray], np.ndarray]  # (n_rows, F) -> (n_aligned, 3)
    lookback: int = 1  # predictions start at row lookback-1 of a part (LSTM windows)
    details: dict[str, Any] = field(default_factory=dict)
    save: Callable[[Path], None] = lambda path: None

    def align(self, y: np.ndarray) -> np.ndarray:
        """The labels that the predictions of a part line up with."""
        return y[self.lookback - 1 :]

    def predict_rows_padded(self, X: np.ndarray) -> np.ndarray:
        """One predicted code per row (the LSTM's first rows see their window edge-padded)."""
        if self.lookback > 1:
            X = np.vstack([np.repeat(X[:1], self.lookback - 1, axis=0), X])
        return self.predict_proba_rows(X).argmax(axis=1)


def fit_random_forest(arrays: SplitArrays, config: Any, **kw: Any) -> FittedModel:
    X_val, y_val = arrays.parts["validation"]
    result = train_random_forest(arrays.fit_X, arrays.fit_y, X_val, y_val, config, kw["seed"])
    return FittedModel(
        model_name=MODEL_NAMES["random_forest"],
        model=result.model,
        model_file="model.skops",
        history=[],
        cv=result.cv,
        warnings=result.warnings,
        predict_proba_rows=result.predict_proba,
        save=lambda path: save_random_forest(result.model, path),
    )


def fit_xgboost(arrays: SplitArrays, config: Any, **kw: Any) -> FittedModel:
    X_val, y_val = arrays.parts["validation"]
    result = train_xgboost(arrays.fit_X, arrays.fit_y, X_val, y_val, config, kw["seed"])
    history = [{"epoch": row["round"], **{k: v for k, v in row.items() if k != "round"}} for row in result.history]
    for row in history:
        kw["on_epoch_end"](row)
    return FittedModel(
        model_name=MODEL_NAMES["xgboost"],
        model=result.model,
        model_file="model.json",
        history=history,
        cv=result.cv,
        warnings=result.warnings,
        predict_proba_rows=result.predict_proba,
        details={"best_round": result.best_round},
        save=lambda path: save_xgboost(result.model, path),
    )


def _check_trainable(y: np.ndarray, name: str) -> None:
    present = np.unique(y)
    if len(present) < 2:
        only = Signal(int(present[0])).name if len(present) else "none"
        raise ValueError(f"{name}: training set has one class only ({only}); a classifier needs at least two")


def _fit_torch(
    model: torch.nn.Module,
    train: Any,
    validation: Any,
    config: Any,
    *,
    model_name: str,
    lookback: int,
    analytics: AnalyticsConfig,
    seed: int,
    run_info: dict[str, Any],
    run_dir: Path,
    on_epoch_end: Callable[[dict[str, Any]], None],
) -> FittedModel:
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.cpu_threads)
    try:
        result = train_torch_model(
            model,
            train,
            validation,
            config,
            analytics,
            seed=seed,
            run_info=run_info,
            on_epoch_end=on_epoch_end,
            analytics_dir=run_dir,
        )
    finally:
        torch.set_num_threads(previous_threads)
    if result.status != "success":
        raise ModelTrainingError(result.error or f"{model_name} training failed ({result.stop_reason})")
    trained = result.model

    def predict_rows(X: np.ndarray) -> np.ndarray:
        tensor = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        if lookback > 1:
            tensor = WindowDataset(tensor, torch.zeros(len(tensor), dtype=torch.long), lookback).windows
        return predict_proba(trained, tensor)

    warnings = [alert["message"] for alert in result.monitor_alerts]
    return FittedModel(
        model_name=model_name,
        model=trained,
        model_file="model.pt",
        history=result.history,
        cv=None,
        warnings=warnings,
        predict_proba_rows=predict_rows,
        lookback=lookback,
        details={
            "device": result.device,
            "device_name": result.device_name,
            "mixed_precision": result.mixed_precision,
            "stop_reason": result.stop_reason,
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "analytics_alerts": result.analytics_alerts,
        },
        save=lambda path: save_torch_state(trained, path),
    )


def fit_neural_network(arrays: SplitArrays, config: Any, **kw: Any) -> FittedModel:
    _check_trainable(arrays.fit_y, "neural_network_model")
    model = MLPClassifier.from_config(config, arrays.fit_X.shape[1])
    return _fit_torch(
        model,
        (arrays.fit_X, arrays.fit_y),
        arrays.parts["validation"],
        config,
        model_name=MODEL_NAMES["neural_network"],
        lookback=1,
        **kw,
    )


def fit_lstm(arrays: SplitArrays, config: Any, **kw: Any) -> FittedModel:
    _check_trainable(arrays.fit_y, "lstm_model")
    model = LSTMClassifier.from_config(config, arrays.fit_X.shape[1])
    train = WindowDataset(arrays.fit_X, arrays.fit_y, config.lookback)
    validation = WindowDataset(*arrays.parts["validation"], config.lookback)
    return _fit_torch(model, train, validation, config, model_name=MODEL_NAMES["lstm"], lookback=config.lookback, **kw)


FITTERS: dict[str, Callable[..., FittedModel]] = {
    "random_forest": fit_random_forest,
    "xgboost": fit_xgboost,
    "neural_network": fit_neural_network,
    "lstm": fit_lstm,
}

#: The LSTM learns from the chronological train part (windows need consecutive bars); the others
#: from the augmented train set.
USES_SEQUENCES = {"lstm"}
#: The torch models: trained epoch by epoch, on CUDA when present (the Dagster `gpu` pool).
TORCH_MODEL_TYPES = frozenset({"neural_network", "lstm"})
