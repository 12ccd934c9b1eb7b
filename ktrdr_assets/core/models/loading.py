"""Reload a saved model run and predict with it exactly as it predicted when it was trained."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ktrdr_assets.core.config.models import MODEL_CONFIGS
from ktrdr_assets.core.models.persistence import load_random_forest, load_torch_state, load_xgboost
from ktrdr_assets.core.models.torch_nets import LSTMClassifier, MLPClassifier
from ktrdr_assets.core.models.tree_models import tree_predict_proba
from ktrdr_assets.core.training.trainer import predict_proba
from ktrdr_assets.core.training.windows import WindowDataset

Predictor = Callable[[np.ndarray], np.ndarray]


def load_predictor(run_dir: Path) -> tuple[Predictor, int]:
    """(predict_proba over a part's scaled feature rows, lookback) of the model saved in `run_dir`.

    Predictions line up with rows `lookback - 1 ..` of the part (lookback is 1 except for the LSTM).
    Torch weights load with `weights_only=True`; RF loads from skops with an allowlist.
    """
    run_dir = Path(run_dir)
    saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    model_type = saved["model_type"]
    n_features = len(json.loads((run_dir / "feature_names.json").read_text(encoding="utf-8")))
    if model_type == "random_forest":
        model = load_random_forest(run_dir / "model.skops")
        return (lambda X: tree_predict_proba(model, X)), 1
    if model_type == "xgboost":
        booster = load_xgboost(run_dir / "model.json")
        return (lambda X: tree_predict_proba(booster, X)), 1
    config = MODEL_CONFIGS[model_type].model_validate(saved["config"])
    if model_type == "neural_network":
        net = load_torch_state(MLPClassifier.from_config(config, n_features), run_dir / "model.pt")
        return (lambda X: predict_proba(net, np.asarray(X, dtype=np.float32))), 1
    lstm = load_torch_state(LSTMClassifier.from_config(config, n_features), run_dir / "model.pt")

    def predict_windows(X: np.ndarray) -> np.ndarray:
        rows = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        windows = WindowDataset(rows, torch.zeros(len(rows), dtype=torch.long), config.lookback).windows
        return predict_proba(lstm, windows)

    return predict_windows, config.lookback


def predict_part(run_dir: Path, frame, feature_names: list[str]) -> tuple[np.ndarray, object]:
    """(probabilities, the timestamps they belong to) of the saved model on one split part."""
    predictor, lookback = load_predictor(run_dir)
    proba = predictor(frame[feature_names].to_numpy(dtype=np.float64))
    return proba, frame.index[lookback - 1 :]
