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


#: The instance profiles: `sqlite` (embedded, the default) and `postgres` (a team's PostgreSQL server).
PROFILES = {"sqlite": PROJECT_ROOT / "dagster_home", "postgres": PROJECT_ROOT / "dagster_home" / "postgres"}
#: MLflow's backend store in the postgres profile: database `mlflow` on the server the libpq variables name
#: (PGHOST, PGPORT, PGUSER, PGPASSWORD), the same variables the profile's dagster.yaml reads.
POSTGRES_MLFLOW_URI = "postgresql+psycopg2:///mlflow"


def profile() -> str:
    """KTRDR_PROFILE (`sqlite` or `postgres`; default sqlite)."""
    name = os.environ.get("KTRDR_PROFILE", "sqlite").strip() or "sqlite"
    if name not in PROFILES:
        raise ValueError(f"KTRDR_PROFILE={name!r}: use one of {', '.join(PROFILES)}")
    return name


def dagster_home() -> Path:
    """DAGSTER_HOME, else the selected profile's folder (dagster_home/ or dagster_home/postgres/)."""
    return _env_path("DAGSTER_HOME", PROFILES[profile()])


def instance_uses_postgres(home: Path | None = None) -> bool:
    """Whether the instance under `home` (default DAGSTER_HOME) keeps its storage in PostgreSQL."""
    import yaml

    config_file = (home or dagster_home()) / "dagster.yaml"
    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return False
    storage = config.get("storage") if isinstance(config, dict) else None
    return isinstance(storage, dict) and "postgres" in storage


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set (a real server, or any backend store); else, with a PostgreSQL instance,
    the `mlflow` database on the same server; else the embedded SQLite store under DAGSTER_HOME."""
    explicit = os.environ.get("MLFLOW_TRACKING_URI")
    if explicit:
        return explicit
    if instance_uses_postgres():
        return POSTGRES_MLFLOW_URI
    return f"sqlite:///{dagster_home() / 'mlflow.db'}"


def mlflow_artifact_root() -> str:
    """Where experiments created on a database store (SQLite, PostgreSQL) keep their artifacts:
    KTRDR_MLFLOW_ARTIFACTS (any MLflow artifact URI: a folder, s3://...), else DAGSTER_HOME/mlartifacts."""
    return os.environ.get("KTRDR_MLFLOW_ARTIFACTS") or (dagster_home() / "mlartifacts").as_uri()
