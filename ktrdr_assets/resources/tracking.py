"""Resources: the strategy file (selectable per run) and MLflow tracking under DAGSTER_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg

from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.training.tracking import MlflowTracker
from ktrdr_assets.paths import PROJECT_ROOT, dagster_home, default_strategy_path, default_tracking_uri


class StrategyResource(dg.ConfigurableResource):
    """Which strategy YAML drives the run. Relative paths are resolved from the project root."""

    path: str = str(default_strategy_path().relative_to(PROJECT_ROOT))

    def resolved_path(self) -> Path:
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path

    def load(self) -> StrategyConfig:
        return load_strategy(self.resolved_path())

    def for_symbol(self, symbol: str) -> StrategyConfig:
        """The validated strategy with this symbol's overrides merged in."""
        return self.load().for_symbol(symbol)


# --------------------------------------------------------------------------- MLflow
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


@dg.resource(
    config_schema={
        "experiment_name": dg.Field(str, default_value=EXPERIMENT_NAME),
        "tracking_uri": dg.Field(dg.Noneable(str), default_value=None, description="default: see README"),
    },
    description="dagster-mlflow tracking: one parent MLflow run per Dagster run, store under DAGSTER_HOME.",
)
def mlflow_tracking_resource(context):
    import mlflow
    from dagster_mlflow.resources import MlFlow

    uri = context.resource_config["tracking_uri"] or default_tracking_uri()
    name = context.resource_config["experiment_name"]
    config = {"experiment_name": name, "mlflow_tracking_uri": uri}
    parent = parent_run_id(uri, ensure_experiment(name, uri), context.run_id)
    if parent is not None:  # a later step (or process) of this Dagster run: attach to its parent
        config["mlflow_run_id"] = parent
    shim = SimpleNamespace(
        log=context.log, dagster_run=context.dagster_run, run_id=context.run_id, resource_config=config
    )
    resource = MlFlow(shim)
    # dagster-mlflow starts a fresh parent run without recording its id; the nested runs need it.
    resource.mlflow_run_id = resource.mlflow_run_id or mlflow.active_run().info.run_id
    # Each training re-activates the parent and ends it after (nested_training_run). Ended here as well,
    # a run without a model step (select_symbol, a failed data stage) never leaves it RUNNING, nor
    # active for the next run in this process to adopt.
    mlflow.end_run()
    return resource


def parent_run_id(tracking_uri: str, experiment_id: str, dagster_run_id: str) -> str | None:
    """The Dagster run's parent MLflow run: tagged with its id and not nested (the children carry the tag too,
    so dagster-mlflow's own lookup, which takes the newest tagged run, could return a child)."""
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri)
    runs = client.search_runs([experiment_id], filter_string=f"tags.dagster_run_id = '{dagster_run_id}'")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return parents[0].info.run_id if parents else None


@contextmanager
def nested_training_run(mlf: Any, run_name: str, tags: dict[str, str]) -> Iterator[MlflowTracker]:
    """One MLflow run for one model training, nested under the Dagster run's parent run.

    The parent is (re)activated first and terminated after, so it never stays RUNNING and the next
    step, in this process or another, attaches to it again.
    """
    import mlflow

    parent_id = mlf.mlflow_run_id
    active = mlflow.active_run()
    if active is None or active.info.run_id != parent_id:
        if active is not None:
            mlflow.end_run()
        mlflow.start_run(run_id=parent_id)
    child = mlflow.start_run(run_name=run_name, nested=True, tags=tags)
    tracker = MlflowTracker(mlflow.tracking.MlflowClient(), child.info.run_id)
    try:
        yield tracker
        tracker.close()
    except BaseException:
        tracker.close()
        mlflow.end_run(status="FAILED")
        mlflow.end_run()
        raise
    mlflow.end_run()
    mlflow.end_run()
