"""A tiny model type that the platform was never told about, registered by the tests that need it: a
multinomial logistic regression, its config, fit, save and load written against the ModelSpec surface
only. If adding a model type needed anything beyond this module and one `register` call, those tests fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from sklearn.linear_model import LogisticRegression

from ktrdr_assets.core.config.base import StrictConfig
from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.base import FitContext, FittedModel, Predictor, SplitArrays, check_trainable
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.util.atomic import write_text_atomic

MODEL_FILE = "model_coefficients.json"


class TinyLogisticConfig(StrictConfig):
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(300, ge=1)


def _predictor(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray) -> Predictor:
    def predict(X: np.ndarray) -> np.ndarray:
        logits = np.asarray(X, dtype=np.float64) @ coef.T + intercept
        logits -= logits.max(axis=1, keepdims=True)
        present = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        proba = np.zeros((len(logits), N_CLASSES))
        proba[:, classes] = present
        return proba

    return predict


def fit(arrays: SplitArrays, config: TinyLogisticConfig, context: FitContext) -> FittedModel:
    check_trainable(arrays.fit_y, "tiny_logistic_model")
    model = LogisticRegression(C=config.C, max_iter=config.max_iter, random_state=context.seed)
    model.fit(arrays.fit_X, arrays.fit_y)
    coef, intercept, classes = model.coef_, model.intercept_, model.classes_.astype(np.int64)
    if len(classes) == 2:  # sklearn's binary form: one row for the second class
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    document = {"coef": coef.tolist(), "intercept": intercept.tolist(), "classes": classes.tolist()}
    return FittedModel(
        model=model,
        history=[],
        cv=None,
        warnings=[],
        predict_proba_rows=_predictor(coef, intercept, classes),
        save=lambda path: write_text_atomic(Path(path), json.dumps(document)),
    )


def load(run_dir: Path, config: Any, n_features: int) -> tuple[Predictor, int]:
    saved = json.loads((Path(run_dir) / MODEL_FILE).read_text(encoding="utf-8"))
    arrays = (np.asarray(saved["coef"]), np.asarray(saved["intercept"]), np.asarray(saved["classes"]))
    return _predictor(*arrays), 1


TINY_LOGISTIC = ModelSpec(
    model_type="tiny_logistic",
    display_name="TinyLogistic",
    config_class=TinyLogisticConfig,
    fit=fit,
    load=load,
    model_file=MODEL_FILE,
    kind="sklearn",
    description="Multinomial logistic regression (registered by the tests)",
)
