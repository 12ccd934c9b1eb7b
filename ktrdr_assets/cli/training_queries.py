"""Model trainings in the MLflow tracking store: the one run lookup and epoch reading behind `ktrdr-monitor`,
`ktrdr-analyze` and `ktrdr-mcp`.

Each model training of a Dagster run is one MLflow run nested under that run's parent run and tagged
symbol, model_type, dagster_run_id, partition and strategy (`resources.tracking.nested_training_run`), whose
per-epoch metrics (`core/training/trends.LIVE_METRICS`) reach the store moments after each epoch ends.
A `Selection` picks runs:

    run_id                    that MLflow run (any run, experiment and HPO trainings included)
    dagster_run               the training runs of that Dagster run, oldest first (model_type: only that one)
    symbol / model_type       the latest training run with those tags (either or both)

Every argument is validated before it reaches a query (symbols as partition keys are), and every failure
is one of `query_errors`: InvalidQuery, NotFound, or StoreUnavailable when the store itself cannot be
read (a missing SQLite file, a server that does not answer), never "no such run".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ktrdr_assets.cli.query_errors import InvalidQuery, NotFound, QueryError, StoreUnavailable, one_line
from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.models.registry import candidate_types
from ktrdr_assets.core.training.trends import LIVE_METRICS, loss_trend

EPOCH_COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc")
TERMINAL = frozenset({"FINISHED", "FAILED", "KILLED"})
STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
#: MLflow's own run id rule; Dagster run ids are UUIDs.
_RUN_ID = re.compile(r"^[A-Za-z0-9][\w-]{0,255}$")
_DAGSTER_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: Model trainings are nested under a Dagster run's parent run: not that parent, nor top-level experiment runs.
_NESTED_TRAININGS = "tags.`mlflow.parentRunId` IS NOT NULL and tags.model_type IS NOT NULL"
_INT_METRICS = ("best_epoch", "epochs_since_improvement")
_FLAG_METRICS = ("is_overfitting", "is_plateaued")
_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}
MAX_PAGE = 200


# --------------------------------------------------------------------------- arguments
def validate_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise InvalidQuery(f"invalid MLflow run id {run_id!r}: letters, digits, '_' and '-' only")
    return run_id


def validate_dagster_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _DAGSTER_RUN_ID.fullmatch(run_id):
        raise InvalidQuery(f"invalid Dagster run id {run_id!r}: a run id is letters, digits and '-' (a UUID)")
    return run_id


def validate_model_type(model_type: str) -> str:
    if model_type not in candidate_types():
        raise InvalidQuery(f"invalid model type {model_type!r}: one of {', '.join(candidate_types())}")
    return model_type


def validate_symbol_key(symbol: str) -> str:
    """A symbol validated as partition keys are, as an InvalidQuery."""
    from ktrdr_assets.partitions import PartitionKeyError, validate_symbol  # imports Dagster: only when needed

    try:
        return validate_symbol(symbol)
    except PartitionKeyError as err:
        raise InvalidQuery(str(err)) from None


@dataclass(frozen=True)
class Selection:
    run_id: str | None = None
    dagster_run: str | None = None
    symbol: str | None = None
    model_type: str | None = None

    def __post_init__(self) -> None:
        if self.run_id is not None:
            validate_run_id(self.run_id)
        if self.dagster_run is not None:
            validate_dagster_run_id(self.dagster_run)
        if self.symbol is not None:
            validate_symbol_key(self.symbol)
        if self.model_type is not None:
            validate_model_type(self.model_type)

    def describe(self) -> str:
        if self.run_id:
            return f"MLflow run {self.run_id}"
        tags = self.tags()
        return "training runs tagged " + ", ".join(f"{k}={v}" for k, v in tags.items()) if tags else "training runs"

    def tags(self) -> dict[str, str]:
        """The run tags that the selection asks for (nested_training_run sets them)."""
        wanted = {"dagster_run_id": self.dagster_run, "symbol": self.symbol, "model_type": self.model_type}
        return {key: value for key, value in wanted.items() if value}

    def search_filter(self, status: str | None = None) -> str:
        """MLflow filter for the model trainings with these tags (values validated: no quotes in them)."""
        clauses = [_NESTED_TRAININGS] + [f"tags.{key} = '{value}'" for key, value in self.tags().items()]
        if status is not None:
            if status not in STATUSES:
                raise InvalidQuery(f"invalid status {status!r}: one of {', '.join(STATUSES)}")
            clauses.append(f"attributes.status = '{status}'")
        return " and ".join(clauses)


# --------------------------------------------------------------------------- the store
class TrainingStore:
    """An existing MLflow tracking store, read only (a missing SQLite file is never created)."""

    def __init__(self, uri: str):
        self.uri = uri
        if uri.startswith("sqlite:///"):
            path = Path(uri.removeprefix("sqlite:///"))
            if not path.is_file():
                raise StoreUnavailable(f"no MLflow store at {path}")
        with self._reading("open"):
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(uri)
            self.client.search_experiments(max_results=1)

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Any failure of the store itself (MLflow, database, network, file) as StoreUnavailable."""
        import requests
        import sqlalchemy.exc
        from mlflow.exceptions import MlflowException

        try:
            yield
        except QueryError:
            raise
        except (MlflowException, sqlalchemy.exc.SQLAlchemyError, requests.RequestException, OSError) as err:
            raise StoreUnavailable(f"MLflow store {self.uri} could not be read ({what}): {one_line(err)}") from None

    def run(self, run_id: str) -> Any:
        """That MLflow run; NotFound if the store has no such run."""
        from mlflow.exceptions import MlflowException

        validate_run_id(run_id)
        with self._reading(f"run {run_id}"):
            try:
                return self.client.get_run(run_id)
            except MlflowException as err:
                if err.error_code in _NOT_FOUND_CODES:
                    raise NotFound(f"no MLflow run {run_id} in {self.uri}") from None
                raise

    def status(self, run_id: str) -> str:
        return self.run(run_id).info.status

    def _experiments(self) -> list[str]:
        with self._reading("experiments"):
            return [e.experiment_id for e in self.client.search_experiments()]

    def search(
        self, selection: Selection, status: str | None = None, max_results: int = 1000, page_token: str | None = None
    ) -> tuple[list[Any], str | None]:
        """(model trainings with the selection's tags and `status`, newest first; the next page's token)."""
        from mlflow.exceptions import MlflowException

        experiments = self._experiments()
        if not experiments:
            return [], None
        with self._reading("search"):
            try:
                page = self.client.search_runs(
                    experiments,
                    selection.search_filter(status),
                    max_results=max_results,
                    order_by=["attributes.start_time DESC"],
                    page_token=page_token,
                )
            except MlflowException as err:
                if page_token and err.error_code == "INVALID_PARAMETER_VALUE":
                    raise InvalidQuery(f"invalid page_token {page_token[:40]!r}: pass one a page returned") from None
                raise
        return list(page), page.token or None

    def find(self, selection: Selection) -> list[Any]:
        """The runs of `selection` (see the module doc); [] when none match."""
        if selection.run_id:
            try:
                return [self.run(selection.run_id)]
            except NotFound:
                return []
        runs, _ = self.search(selection, max_results=1000 if selection.dagster_run else 1)
        return sorted(runs, key=lambda run: run.info.start_time) if selection.dagster_run else runs

    def epoch_table(self, run_id: str, keys: Sequence[str]) -> dict[int, dict[str, float]]:
        """{epoch: {key: value, "_logged_ms": latest timestamp}} of a run's per-epoch metrics `keys`."""
        table: dict[int, dict[str, float]] = {}
        with self._reading(f"metrics of run {run_id}"):
            for key in keys:
                for metric in self.client.get_metric_history(run_id, key):
                    row = table.setdefault(int(metric.step), {"_logged_ms": 0})
                    row[key] = metric.value
                    row["_logged_ms"] = max(row["_logged_ms"], metric.timestamp)
        return table


# --------------------------------------------------------------------------- epochs
def _complete(table: dict[int, dict[str, float]], epoch: int) -> bool:
    """Whether an epoch has all its metrics: the keys of the epoch before it (the tracker writes epochs
    in order, but may split one over two writes), or the four losses/accuracies for the first."""
    before = [e for e in table if e < epoch]
    expected = set(table[max(before)]) if before else {*EPOCH_COLUMNS, "_logged_ms"}
    return expected <= set(table[epoch])


def ready_epochs(table: dict[int, dict[str, float]], after: int, terminal: bool) -> list[int]:
    """The epochs after `after` that can be reported: all of them once the run has ended (nothing more is
    coming), else those up to the first whose metrics are still on their way. The table is read one metric
    at a time while the training writes, so under load any epoch of it, not only the latest, may be half
    read; the next poll reads it whole."""
    new = sorted(epoch for epoch in table if epoch > after)
    if terminal:
        return new
    ready = []
    for epoch in new:
        if not _complete(table, epoch):
            break
        ready.append(epoch)
    return ready


def epoch_record(epoch: int, values: dict[str, float]) -> dict[str, Any]:
    """One epoch's live metrics, typed: epochs as ints, trend flags as booleans, when it was logged."""
    record: dict[str, Any] = {"epoch": epoch}
    for key in LIVE_METRICS:
        if key not in values:
            continue
        value = values[key]
        if key in _INT_METRICS and value == value:  # not NaN
            value = int(value)
        elif key in _FLAG_METRICS:
            value = bool(value)
        record[key] = value
    record["logged_at"] = _utc(values["_logged_ms"])
    return record


def _utc(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


# --------------------------------------------------------------------------- answers
def identity(run: Any) -> dict[str, Any]:
    tags = run.data.tags
    return {"run_id": run.info.run_id, "symbol": tags.get("symbol"), "model_type": tags.get("model_type")}


def label(run: Any) -> str:
    tags = run.data.tags
    return f"{tags.get('symbol', '?')}/{tags.get('model_type', '?')}"


def summary(run: Any) -> dict[str, Any]:
    """A training run as a listing shows it: identity, tags, status, times and its latest epoch metrics."""
    tags, info = run.data.tags, run.info
    return {
        **identity(run),
        "dagster_run_id": tags.get("dagster_run_id"),
        "strategy": tags.get("strategy"),
        "status": info.status,
        "started_at": _utc(info.start_time),
        "ended_at": _utc(info.end_time),
        "latest": {key: run.data.metrics[key] for key in LIVE_METRICS if key in run.data.metrics},
    }


def list_trainings(
    store: TrainingStore, selection: Selection, status: str | None, limit: int, page_token: str | None
) -> dict[str, Any]:
    """One page of model trainings, newest first, and the token of the next page (None: the last)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidQuery(f"invalid limit {limit}: 1 to {MAX_PAGE}")
    runs, token = store.search(selection, status, max_results=limit, page_token=page_token)
    return {"trainings": [summary(run) for run in runs], "next_page_token": token}


def training_metrics(store: TrainingStore, run_id: str, since_epoch: int = 0) -> dict[str, Any]:
    """The run's epochs after `since_epoch` with their trend fields; poll again with `next_since_epoch`
    until `finished` (the status is read before the metrics, so a finished answer holds every epoch)."""
    if since_epoch < 0:
        raise InvalidQuery(f"invalid since_epoch {since_epoch}: 0 (from the start) or an epoch already seen")
    run = store.run(run_id)
    status = run.info.status
    table = store.epoch_table(run_id, LIVE_METRICS)
    epochs = ready_epochs(table, since_epoch, status in TERMINAL)
    return {
        **identity(run),
        "dagster_run_id": run.data.tags.get("dagster_run_id"),
        "status": status,
        "finished": status in TERMINAL,
        "since_epoch": since_epoch,
        "epochs": [epoch_record(epoch, table[epoch]) for epoch in epochs],
        "next_since_epoch": epochs[-1] if epochs else since_epoch,
    }


def analyze_run(store: TrainingStore, run: Any, config: AnalyticsConfig) -> dict[str, Any]:
    """loss_trend over the run's per-epoch history, with the run's identity, status and last metrics."""
    table = store.epoch_table(run.info.run_id, EPOCH_COLUMNS)
    history = [{"epoch": epoch, **values} for epoch, values in sorted(table.items()) if epoch >= 1]
    history = [row for row in history if "train_loss" in row and "val_loss" in row]
    head = {**identity(run), "status": store.status(run.info.run_id)}
    if not history:
        return {**head, "trend": None, "message": "no metrics yet: no epoch with train_loss and val_loss"}
    last = history[-1]
    return {
        **head,
        **loss_trend(history, config),
        "last": {key: last[key] for key in EPOCH_COLUMNS if key in last},
    }


def analytics_config(strategy: StrategyConfig | None, symbol: str | None) -> AnalyticsConfig:
    """The strategy's analytics rules (with the symbol's overrides), else the defaults."""
    if strategy is None:
        return AnalyticsConfig()
    return (strategy.for_symbol(symbol) if symbol else strategy).analytics
