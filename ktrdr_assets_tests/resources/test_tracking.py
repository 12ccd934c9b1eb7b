"""MLflow tracking of model trainings: a failure while logging ends the runs FAILED (never RUNNING), the
training's own error is the one raised, and concurrent trainings never attach to each other's parent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from ktrdr_assets.resources.tracking import EXPERIMENT_NAME, ensure_experiment, nested_training_run


@dataclass
class Store:
    uri: str
    client: MlflowClient
    experiment: str

    def parent(self, dagster_run: str) -> str:
        return self.client.create_run(self.experiment, tags={"dagster_run_id": dagster_run}).info.run_id

    def status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    try:
        yield Store(uri, MlflowClient(uri), ensure_experiment(EXPERIMENT_NAME, uri))
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture
def metrics_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store refuses every metric batch (params still go through)."""
    original = MlflowClient.log_batch

    def log_batch(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        if metrics:
            raise ConnectionError("the tracking store went away")
        return original(self, run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", log_batch)


def _children(store: Store, parent: str) -> list:
    return store.client.search_runs([store.experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def test_a_logging_failure_after_a_good_training_ends_both_runs_not_running(store: Store, metrics_refused) -> None:
    parent = store.parent("dagster-1")
    with pytest.raises(RuntimeError, match="logging metrics failed: the tracking store went away"):  # noqa: SIM117
        with nested_training_run(parent, "AAPL-nn", {"symbol": "AAPL"}, store.uri) as tracker:
            tracker.log_params({"lr": 0.1})
            tracker.log_epoch(1, {"val_loss": 0.5})
    (child,) = _children(store, parent)
    assert child.info.status == "FAILED"  # it used to stay RUNNING: close() was called twice and raised again
    assert store.status(parent) == "FINISHED"
    assert child.data.params == {"lr": "0.1"}


def test_a_failed_training_whose_logging_fails_too_raises_its_own_error(store: Store, metrics_refused) -> None:
    parent = store.parent("dagster-2")
    with pytest.raises(ValueError, match="diverged"):  # noqa: SIM117
        with nested_training_run(parent, "AAPL-lstm", {"symbol": "AAPL"}, store.uri) as tracker:
            tracker.log_epoch(1, {"val_loss": 0.5})
            raise ValueError("training diverged")
    (child,) = _children(store, parent)
    assert child.info.status == "FAILED" and store.status(parent) == "FINISHED"


def test_a_good_training_finishes_with_every_epoch_written(store: Store) -> None:
    parent = store.parent("dagster-3")
    with nested_training_run(parent, "AAPL-rf", {"symbol": "AAPL"}, store.uri) as tracker:
        for epoch in range(1, 4):
            tracker.log_epoch(epoch, {"val_loss": 1.0 / epoch})
    (child,) = _children(store, parent)
    assert child.info.status == "FINISHED" and child.data.tags["symbol"] == "AAPL"
    assert [m.step for m in store.client.get_metric_history(child.info.run_id, "val_loss")] == [1, 2, 3]
    assert mlflow.active_run() is None  # nothing is left active in the process


def test_concurrent_trainings_stay_under_their_own_parent(store: Store) -> None:
    """Two Dagster runs training at once in one process: each child under its own run's parent."""
    parents = {symbol: store.parent(f"dagster-{symbol}") for symbol in ("AAPL", "MSFT")}
    inside = threading.Barrier(2, timeout=30)

    def train(symbol: str) -> None:
        with nested_training_run(parents[symbol], f"{symbol}-nn", {"symbol": symbol}, store.uri) as tracker:
            inside.wait()  # both runs open at the same time
            tracker.log_epoch(1, {"val_loss": 0.5})
            inside.wait()

    threads = [threading.Thread(target=train, args=(symbol,)) for symbol in parents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for symbol, parent in parents.items():
        children = _children(store, parent)
        assert [c.data.tags["symbol"] for c in children] == [symbol]
        assert children[0].info.status == "FINISHED"
