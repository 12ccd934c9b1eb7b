"""MLflow tracking through dagster-mlflow: one parent MLflow run per Dagster run, one nested run per
model training, the store under DAGSTER_HOME unless MLFLOW_TRACKING_URI names another."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
from pydantic import Field, PrivateAttr

from ktrdr_assets.core.training.tracking import MlflowTracker
from ktrdr_assets.core.util.locks import file_lock
from ktrdr_assets.paths import default_tracking_uri, mlflow_artifact_root

EXPERIMENT_NAME = "ktrdr_assets"
#: Tracking URIs of stores MLflow writes directly (no server): their experiments need an artifact location.
DATABASE_STORES = ("sqlite:", "file:", "postgresql", "mysql", "mssql")

log = logging.getLogger(__name__)


def ensure_experiment(name: str, tracking_uri: str) -> str:
    """Create the experiment if it is missing; on a database store with its artifacts under
    `mlflow_artifact_root()` (DAGSTER_HOME/mlartifacts by default, never ./mlruns). Safe when concurrent runs
    create the store or the experiment at once."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    client, experiment = _open_store(name, tracking_uri)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if tracking_uri.startswith(DATABASE_STORES):  # a server (http) chooses its own artifact store
        location = mlflow_artifact_root()
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # another process created it a moment ago
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _open_store(name: str, tracking_uri: str):
    """(a client of the store, the experiment `name` or None). Opening a new database store creates and
    migrates it; two processes doing so at once collide (SQLite: "table _alembic_tmp_... already exists",
    "duplicate column"; PostgreSQL: a duplicate table). On one machine a file lock beside a SQLite store
    serializes it; across machines the loser retries once the winner's schema is in place."""
    import mlflow

    lock = _sqlite_init_lock(tracking_uri)
    for attempt in range(5):
        try:
            with file_lock(lock, timeout_s=300) if lock else nullcontext():
                client = mlflow.tracking.MlflowClient(tracking_uri)
                return client, client.get_experiment_by_name(name)
        except Exception as err:  # a concurrent migration of a new store
            if attempt == 4 or not _is_schema_race(err):
                raise
            log.info("MLflow store %s is being created by another process; retrying (%s)", tracking_uri, err)
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def _sqlite_init_lock(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return database.with_name(f".{database.name}.init.lock")


def _is_schema_race(err: Exception) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return any(marker in text for marker in ("already exists", "duplicate", "unique", "alembic", "locked"))


def parent_run_id(tracking_uri: str, experiment_id: str, dagster_run_id: str) -> str | None:
    """The Dagster run's parent MLflow run: tagged with its id and not nested (the children carry the tag too,
    so dagster-mlflow's own lookup, which takes the newest tagged run, could return a child). When two step
    processes of one run (k8s_job_executor) both started a parent, every step picks the same one: the
    earliest started (then the smallest id)."""
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri)
    runs = client.search_runs([experiment_id], filter_string=f"tags.dagster_run_id = '{dagster_run_id}'")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    parents.sort(key=lambda run: (run.info.start_time or 0, run.info.run_id))
    return parents[0].info.run_id if parents else None


class MlflowTracking(dg.ConfigurableResource):
    """dagster-mlflow tracking for one Dagster run: its parent MLflow run is found (a later step, another
    process) or started when the resource is set up, then left for `training_run` to re-activate."""

    experiment_name: str = EXPERIMENT_NAME
    tracking_uri: str | None = Field(None, description="default: MLFLOW_TRACKING_URI, else dagster_home/mlflow.db")
    _parent_run_id: str | None = PrivateAttr(None)

    def resolved_uri(self) -> str:
        return self.tracking_uri or default_tracking_uri()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        import mlflow
        from dagster_mlflow.resources import MlFlow

        uri = self.resolved_uri()
        config = {"experiment_name": self.experiment_name, "mlflow_tracking_uri": uri}
        parent = parent_run_id(uri, ensure_experiment(self.experiment_name, uri), context.run_id)
        if parent is not None:  # a later step (or process) of this Dagster run: attach to its parent
            config["mlflow_run_id"] = parent
        shim = SimpleNamespace(
            log=context.log, dagster_run=context.dagster_run, run_id=context.run_id, resource_config=config
        )
        resource = MlFlow(shim)
        # dagster-mlflow starts a fresh parent run without recording its id; the nested runs need it.
        started = resource.mlflow_run_id or mlflow.active_run().info.run_id
        # Ended here: a run without a model step (select_symbol, a failed data stage) never leaves it
        # RUNNING, nor active for the next run in this process to adopt. Trainings attach to it by id.
        mlflow.end_run()
        experiment_id = mlflow.tracking.MlflowClient(uri).get_run(started).info.experiment_id
        self._parent_run_id = parent_run_id(uri, experiment_id, context.run_id) or started

    @property
    def parent_run_id(self) -> str | None:
        return self._parent_run_id

    @contextmanager
    def training_run(self, run_name: str, tags: dict[str, str]) -> Iterator[MlflowTracker]:
        """One nested MLflow run for one model training (see `nested_training_run`)."""
        with nested_training_run(self._parent_run_id, run_name, tags, self.resolved_uri()) as tracker:
            yield tracker


@contextmanager
def nested_training_run(
    parent_id: str | None, run_name: str, tags: dict[str, str], tracking_uri: str | None = None
) -> Iterator[MlflowTracker]:
    """One MLflow run for one model training, nested under the Dagster run's parent run `parent_id`.

    Created and ended by id through the tracking client, never through MLflow's process-wide active run:
    concurrent trainings (threads, processes, Dagster runs) can never attach to each other's runs. The run
    ends FINISHED only when the training succeeded and every metric was written; otherwise FAILED (a
    failure while closing the tracker after a failed training is logged, and the training's own error is
    the one raised). The tracker is closed exactly once. The parent's end time follows its last training.
    """
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri or default_tracking_uri())
    if parent_id is None:
        raise ValueError("nested_training_run: no parent MLflow run (the mlflow resource was not set up)")
    parent = client.get_run(parent_id)
    child = client.create_run(
        parent.info.experiment_id, run_name=run_name, tags={**tags, "mlflow.parentRunId": parent_id}
    )
    tracker = MlflowTracker(client, child.info.run_id)
    status = "FAILED"
    try:
        try:
            yield tracker
        except BaseException:
            try:
                tracker.close()
            except Exception as close_error:  # the training's error matters more; this one is logged
                log.warning("MLflow run %s: closing the tracker failed too: %s", child.info.run_id, close_error)
            raise
        tracker.close()  # raises when metrics could not be written: the run is then FAILED
        status = "FINISHED"
    finally:
        client.set_terminated(child.info.run_id, status)
        client.set_terminated(parent_id, "FINISHED")
