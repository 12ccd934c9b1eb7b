"""Dagster resources: the strategy file, MLflow tracking, the MLflow model registry."""
