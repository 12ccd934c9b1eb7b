"""The one surface every model type shares (Qlib's `Model.fit/predict`): what a fit receives and returns.

A model type's module turns `SplitArrays` and its typed config into a `FittedModel`; evaluation,
feature importance, persistence and analytics are then written once for all types (`training_runs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.data.signals import Signal

#: (n_rows, n_features) scaled feature rows -> (n_aligned, 3) class probabilities, column i = signal code i.
Predictor = Callable[[np.ndarray], np.ndarray]
#: The saved state_dict of a torch model type (here, not in torch_fit: the model modules load without torch).
TORCH_MODEL_FILE = "model.pt"


class ModelTrainingError(RuntimeError):
    """Training of one model failed (NaN loss, bad hyper-parameters, ...); the message says why."""


@dataclass
class SplitArrays:
    """The model stage's inputs as arrays: `fit_*` is what the model learns from (the augmented
    train set, or the chronological train part for a sequence model), the rest are the untouched parts."""

    fit_X: np.ndarray
    fit_y: np.ndarray
    parts: dict[str, tuple[np.ndarray, np.ndarray]]  # train / validation / test


@dataclass
class FitContext:
    """What a fit may use besides the data and its config."""

    seed: int
    analytics: AnalyticsConfig
    run_info: dict[str, Any]
    run_dir: Path
    on_epoch_end: Callable[[dict[str, Any]], None] = lambda row: None
    # False inside a walk-forward fold: the walk-forward is the evaluation, a model's own internal one
    # (the trees' time-series CV) is skipped.
    inner_cv: bool = True
    purge_bars: int = 0  # rows a model's internal time-series CV leaves between its fit and score rows


@dataclass
class FittedModel:
    model: Any
    history: list[dict[str, Any]]
    cv: dict[str, Any] | None
    warnings: list[str]
    predict_proba_rows: Predictor
    lookback: int = 1  # predictions start at row lookback-1 of a part (sequence windows)
    details: dict[str, Any] = field(default_factory=dict)
    save: Callable[[Path], None] = lambda path: None

    def align(self, y: np.ndarray) -> np.ndarray:
        """The labels that the predictions of a part line up with."""
        return y[self.lookback - 1 :]

    def predict_rows_padded(self, X: np.ndarray) -> np.ndarray:
        """One predicted code per row (a sequence model's first rows see their window edge-padded)."""
        if self.lookback > 1:
            X = np.vstack([np.repeat(X[:1], self.lookback - 1, axis=0), X])
        return self.predict_proba_rows(X).argmax(axis=1)


def check_trainable(y: np.ndarray, name: str) -> None:
    """A ValueError when the training labels hold fewer than two classes."""
    present = np.unique(y)
    if len(present) < 2:
        only = Signal(int(present[0])).name if len(present) else "none"
        raise ValueError(f"{name}: training set has one class only ({only}); a classifier needs at least two")
