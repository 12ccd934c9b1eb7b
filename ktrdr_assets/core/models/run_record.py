"""The record of one finished training: what the model asset stores and selection, the manifest, the
experiments and the reports read. Stored as JSON; read back with `TrainingRecord.from_stored`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ktrdr_assets.core.util.jsonsafe import to_jsonable


class TrainingRecord(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, protected_namespaces=())

    symbol: str
    model_type: str
    model_name: str  # the spec's display name
    run_dir: str
    model_file: str
    files: list[str]
    splits_fingerprint: str  # which data it was trained on
    config_fingerprint: str  # which config and seed
    mlflow_run_id: str | None = None
    device: str = "cpu"
    lookback: int = 1
    result: dict[str, Any]  # note 002's result schema (metrics.json)
    analytics_alerts: list[Any] = []

    @property
    def history(self) -> dict[str, Any]:
        """The result's accuracy history: train/val/test accuracy, gap, CV figures."""
        return self.result["history"]

    def to_stored(self) -> dict[str, Any]:
        """The JSON-native dict the warehouse keeps."""
        return to_jsonable(self.model_dump(mode="json"))

    @classmethod
    def from_stored(cls, document: dict[str, Any]) -> TrainingRecord:
        return cls.model_validate(document)
