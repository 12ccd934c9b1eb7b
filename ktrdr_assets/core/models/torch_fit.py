"""What the torch model types share around the one training loop: thread limits, the result as a
`FittedModel`, and predicting over rows or windows, the same after training and after reloading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ktrdr_assets.core.models.base import TORCH_MODEL_FILE, FitContext, FittedModel, ModelTrainingError, Predictor
from ktrdr_assets.core.models.persistence import load_torch_state, save_torch_state
from ktrdr_assets.core.training.losses import weighting_weights
from ktrdr_assets.core.training.trainer import predict_proba, train_torch_model
from ktrdr_assets.core.training.windows import WindowDataset

__all__ = ["TORCH_MODEL_FILE", "fit_torch", "load_torch", "torch_predictor"]


def torch_predictor(net: torch.nn.Module, lookback: int) -> Predictor:
    """Probabilities over a part's feature rows: per row (lookback 1) or per window of `lookback` rows."""

    def predict_rows(X: np.ndarray) -> np.ndarray:
        tensor = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        if lookback > 1:
            tensor = WindowDataset(tensor, torch.zeros(len(tensor), dtype=torch.long), lookback).windows
        return predict_proba(net, tensor)

    return predict_rows


def fit_torch(
    net: torch.nn.Module, train: Any, validation: Any, config: Any, context: FitContext, *, name: str, lookback: int
) -> FittedModel:
    """Train `net` with the shared loop on `config.cpu_threads` CPU threads; ModelTrainingError on failure."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.cpu_threads)
    try:
        result = train_torch_model(
            net,
            train,
            validation,
            config,
            context.analytics,
            seed=context.seed,
            run_info=context.run_info,
            on_epoch_end=context.on_epoch_end,
            analytics_dir=context.run_dir,
        )
    finally:
        torch.set_num_threads(previous_threads)
    if result.status != "success":
        raise ModelTrainingError(result.error or f"{name} training failed ({result.stop_reason})")
    trained = result.model
    labels = train.tensors[1] if hasattr(train, "tensors") else train[1]
    weights = weighting_weights(torch.as_tensor(np.asarray(labels), dtype=torch.long), config.class_weighting)
    return FittedModel(
        model=trained,
        history=result.history,
        cv=None,
        warnings=[alert["message"] for alert in result.monitor_alerts],
        predict_proba_rows=torch_predictor(trained, lookback),
        lookback=lookback,
        details={
            "device": result.device,
            "device_name": result.device_name,
            "mixed_precision": result.mixed_precision,
            "stop_reason": result.stop_reason,
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "analytics_alerts": result.analytics_alerts,
            "class_weighting": config.class_weighting,
            # what the loss weighted each class by: the decision rule may undo it (core/selection/decision.py)
            "class_weights": None if weights is None else weights.tolist(),
        },
        save=lambda path: save_torch_state(trained, path),
    )


def load_torch(run_dir: Path, net: torch.nn.Module, lookback: int) -> tuple[Predictor, int]:
    """The saved weights (weights_only=True) in `net`, rebuilt from the run's config, as a predictor."""
    return torch_predictor(load_torch_state(net, Path(run_dir) / TORCH_MODEL_FILE), lookback), lookback
