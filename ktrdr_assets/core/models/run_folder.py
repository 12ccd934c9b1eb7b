"""A model training's folder: where it lives and what its files are called, defined once.

    {warehouse}/model_runs/{SYMBOL}/{model_type}/{YYYYmmddTHHMMSSZ}_{run id[:8]}/
        model.{skops|json|pt}   the model (its spec names the file)
        scaler.json             the train-fitted scaler; feature_names.json; config.json (what was used)
        metrics.json            note 002's result schema
        feature_importance.json permutation importance on validation
        metrics.csv, detailed_metrics.json, alerts.txt   note 000's analytics
        learning_curves.png     train vs validation loss and accuracy per epoch / boosting round
        oof_predictions.parquet the walk-forward's out-of-fold predictions (timestamp, label, class
                                probabilities, call, fold, persistence forecast), when it ran
        failure.json            only when training failed: the error, beside what was written until then

A folder is never reused: a new training gets a new time stamp and run id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ktrdr_assets.core.training.analytics_export import ALERTS_TXT, DETAILED_JSON, METRICS_CSV
from ktrdr_assets.core.util.names import validate_symbol

MODEL_RUNS_DIR = "model_runs"


@dataclass(frozen=True)
class RunFolder:
    path: Path

    CONFIG = "config.json"
    METRICS = "metrics.json"
    SCALER = "scaler.json"
    FEATURE_NAMES = "feature_names.json"
    IMPORTANCE = "feature_importance.json"
    FAILURE = "failure.json"
    LEARNING_CURVES = "learning_curves.png"
    OOF = "oof_predictions.parquet"
    METRICS_CSV = METRICS_CSV
    DETAILED = DETAILED_JSON
    ALERTS = ALERTS_TXT

    @staticmethod
    def runs_root(warehouse: Path) -> Path:
        """The folder holding every symbol's model runs."""
        return Path(warehouse) / MODEL_RUNS_DIR

    @classmethod
    def new(cls, warehouse: Path, symbol: str, model_type: str, run_id: str, now: datetime | None = None) -> RunFolder:
        """A fresh folder path (not created) for one training of `model_type` on `symbol` in run `run_id`."""
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        return cls(cls.runs_root(warehouse) / validate_symbol(symbol) / model_type / f"{stamp}_{run_id[:8]}")

    def file(self, name: str) -> Path:
        return self.path / name

    def read_json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text(encoding="utf-8"))

    def saved_config(self) -> dict[str, Any]:
        """{model_type, seed, config} as the training saved it."""
        return self.read_json(self.CONFIG)

    def feature_names(self) -> list[str]:
        return self.read_json(self.FEATURE_NAMES)

    def files(self) -> list[str]:
        """The run's file names, sorted (temporary files of an interrupted write excluded)."""
        return sorted(p.name for p in self.path.iterdir() if p.is_file() and not p.name.startswith("."))
