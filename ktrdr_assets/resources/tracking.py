"""MLflow tracking through dagster-mlflow: one parent MLflow run per Dagster run, one nested run per
model training, the store under DAGSTER_HOME unless MLFLOW_TRACKING_URI names another."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import dagster as dg
from pydantic import Field, PrivateAttr

from ktrdr_assets.core.training.tracking import MlflowTracker
from ktrdr_assets.paths import dagster_home, default_tracking_uri

EXPERIMENT_NAME = "ktrdr_assets"


def ensure_experiment(name: str, tracking_uri: str) -> str:
    """Create the experiment with its artifacts under DAGSTER_HOME (not ./mlruns) if it is missing."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:") or tracking_uri.startswith("file:"):
        location = (dagster_home() / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def parent_run_id(tracking_uri: str, experiment_id: str, dagster_run_id: str) -> str | None:
    """The Dagster run's parent MLflow run: tagged with its id and not nested (the children carry the tag too,
    so dagster-mlflow's own lookup, which takes the newest tagged run, could return a child)."""
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri)
    runs = client.search_runs([experiment_id], filter_string=f"tags.dagster_run_id = '{dagster_run_id}'")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
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
        self._parent_run_id = resource.mlflow_run_id or mlflow.active_run().info.run_id
        # Each training re-activates the parent and ends it after (training_run). Ended here as well, a
        # run without a model step (select_symbol, a failed data stage) never leaves it RUNNING, nor
        # active for the next run in this process to adopt.
        mlflow.end_run()

    @property
    def parent_run_id(self) -> str | None:
        return self._parent_run_id

    @contextmanager
    def training_run(self, run_name: str, tags: dict[str, str]) -> Iterator[MlflowTracker]:
        """One nested MLflow run for one model training (see `nested_training_run`)."""
        with nested_training_run(self._parent_run_id, run_name, tags) as tracker:
            yield tracker


@contextmanager
def nested_training_run(parent_id: str | None, run_name: str, tags: dict[str, str]) -> Iterator[MlflowTracker]:
    """One MLflow run for one model training, nested under the Dagster run's parent run `parent_id`.

    The parent is (re)activated first and terminated after, so it never stays RUNNING and the next
    step, in this process or another, attaches to it again. A training that raises ends its run
    FAILED; the tracker is closed exactly once either way.
    """
    import mlflow

    active = mlflow.active_run()
    if active is None or active.info.run_id != parent_id:
        if active is not None:
            mlflow.end_run()
        mlflow.start_run(run_id=parent_id)
    child = mlflow.start_run(run_name=run_name, nested=True, tags=tags)
    tracker = MlflowTracker(mlflow.tracking.MlflowClient(), child.info.run_id)
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    finally:
        try:
            tracker.close()
        finally:
            mlflow.end_run(status=status)
            mlflow.end_run()
