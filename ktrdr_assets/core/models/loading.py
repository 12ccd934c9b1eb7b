"""Reload a saved model run and predict with it exactly as it predicted when it was trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ktrdr_assets.core.models.base import Predictor
from ktrdr_assets.core.models.registry import get_spec
from ktrdr_assets.core.models.run_folder import RunFolder


def load_predictor(run_dir: Path) -> tuple[Predictor, int]:
    """(predict_proba over a part's scaled feature rows, lookback) of the model saved in `run_dir`.

    Predictions line up with rows `lookback - 1 ..` of the part (lookback is 1 except for sequence
    models). Each model type's spec loads its own file: torch weights with `weights_only=True`,
    RandomForest from skops with an allowlist.
    """
    folder = RunFolder(Path(run_dir))
    saved = folder.saved_config()
    spec = get_spec(saved["model_type"])
    n_features = len(folder.feature_names())
    return spec.load(folder.path, spec.config_class.model_validate(saved["config"]), n_features)


def predict_part(run_dir: Path, frame, feature_names: list[str]) -> tuple[np.ndarray, object]:
    """(probabilities, the timestamps they belong to) of the saved model on one split part."""
    predictor, lookback = load_predictor(run_dir)
    proba = predictor(frame[feature_names].to_numpy(dtype=np.float64))
    return proba, frame.index[lookback - 1 :]
