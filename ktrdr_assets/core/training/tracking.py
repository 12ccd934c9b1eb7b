"""Experiment tracking for one training: params, per-epoch metrics as each epoch ends, artifacts.

`MlflowTracker` writes to an MLflow run through the tracking client synchronously, so another process
reading the same store (a monitor, `mlflow ui`) sees every epoch as soon as it ends. `NullTracker`
does nothing (tests, or tracking switched off).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ktrdr_assets.core.util.jsonsafe import to_jsonable


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_epoch(self, step: int, metrics: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, Any]) -> None: ...
    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def close(self) -> None: ...


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

    def close(self) -> None:
        pass


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Keep the finite numbers (bools as 0/1) of a metrics row; MLflow metrics are floats."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or isinstance(value, (int, float)) and math.isfinite(float(value)):
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
    """Logs to one MLflow run (already created) through an MlflowClient.

    Epoch metrics go through a background thread that sends everything pending in one batch, so a
    slow store (SQLite commits) never slows training, while each epoch still reaches the store
    moments after it ends. `close()` waits until everything is written.
    """

    MAX_BATCH = 1000  # MLflow's log_batch limit on metrics

    def __init__(self, client: Any, run_id: str):
        self.client = client
        self.run_id = run_id
        self._pending: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._drain, name=f"mlflow-{run_id[:8]}", daemon=True)
        self._worker.start()

    def _drain(self) -> None:
        from mlflow.entities import Metric

        while True:
            items = [self._pending.get()]
            while not self._pending.empty() and len(items) < self.MAX_BATCH:
                items.append(self._pending.get_nowait())
            done = items[-1] is None
            metrics = [Metric(*item) for item in items if item is not None]
            try:
                for start in range(0, len(metrics), self.MAX_BATCH):
                    self.client.log_batch(self.run_id, metrics=metrics[start : start + self.MAX_BATCH])
            except BaseException as err:  # reported by close(); training goes on
                self._error = err
            if done:
                return

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten_params(params).items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_epoch(self, step: int, metrics: Mapping[str, Any]) -> None:
        now = int(time.time() * 1000)
        for key, value in numeric_metrics(metrics).items():
            self._pending.put((key, value, now, step))

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        self.log_epoch(0, metrics)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def close(self) -> None:
        """Wait for every queued metric to be written; raise if the store refused them."""
        if self._worker.is_alive():
            self._pending.put(None)
            self._worker.join()
        if self._error is not None:
            raise RuntimeError(f"MLflow run {self.run_id}: logging metrics failed: {self._error}") from self._error
