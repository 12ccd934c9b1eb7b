"""Dagster resources, each a typed `ConfigurableResource` passed to assets as a typed parameter: the
strategy file (`strategy`) and MLflow tracking (`mlflow`); the MLflow model registry's champion alias."""

from ktrdr_assets.resources.strategy import StrategyResource
from ktrdr_assets.resources.tracking import MlflowTracking

__all__ = ["MlflowTracking", "StrategyResource"]
