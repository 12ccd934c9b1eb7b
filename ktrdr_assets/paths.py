"""Where things live: raw bars, strategies, the warehouse of materialized assets, DAGSTER_HOME.

Every location can be moved with an environment variable (tests point them at a tmp folder).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    return _env_path("KTRDR_DATA_DIR", PROJECT_ROOT / "data")


def raw_dir() -> Path:
    return _env_path("KTRDR_RAW_DIR", data_dir() / "raw")


def warehouse_dir() -> Path:
    """One root for every materialized asset: one folder per asset, one file or folder per symbol."""
    return _env_path("KTRDR_WAREHOUSE_DIR", data_dir() / "warehouse")


def sources_config_path() -> Path:
    return _env_path("KTRDR_SOURCES_CONFIG", data_dir() / "sources.yaml")


def default_strategy_path() -> Path:
    return data_dir() / "strategies" / "neuro_mean_reversion.yaml"


def dagster_home() -> Path:
    return _env_path("DAGSTER_HOME", PROJECT_ROOT / "dagster_home")


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set (a real server), else the embedded SQLite store under DAGSTER_HOME."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{dagster_home() / 'mlflow.db'}"
