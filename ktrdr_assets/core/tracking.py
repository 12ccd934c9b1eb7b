"""Experiment tracking for one training: params, per-epoch metrics as each epoch ends, artifacts.

`MlflowTracker` writes to an MLflow run through the tracking client synchronously, so another process
reading the same store (a monitor, `mlflow ui`) sees every epoch as soon as it ends. `NullTracker`
does nothing (tests, or tracking switched off).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from .jsonsafe import to_jsonable


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_epoch(self, step: int, metrics: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, Any]) -> None: ...
    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...


class NullTracker:
    run_id = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_epoch(self, step: int, metrics: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        pass

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Keep the finite numbers (bools as 0/1) of a metrics row; MLflow metrics are floats."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[key] = float(value)
        elif hasattr(value, "item"):
            item = value.item()
            if isinstance(item, (int, float)) and math.isfinite(float(item)):
                out[key] = float(item)
    return out


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> flat `a.b.c` string params (MLflow params are strings of <= 6000 chars)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, f"{name}."))
        else:
            out[name] = str(to_jsonable(value))[:6000]
    return out


class MlflowTracker:
    """Logs to one MLflow run (already created) through an MlflowClient."""

    def __init__(self, client: Any, run_id: str):
        self.client = client
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten_params(params)
        items = [Param(k, v) for k, v in flat.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_epoch(self, step: int, metrics: Mapping[str, Any]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = [Metric(k, v, now, step) for k, v in numeric_metrics(metrics).items()]
        if values:
            self.client.log_batch(self.run_id, metrics=values)

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        self.log_epoch(0, metrics)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))
