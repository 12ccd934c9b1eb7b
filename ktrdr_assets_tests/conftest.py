"""Test isolation: every test session gets its own raw folder (a copy of data/raw), warehouse,
DAGSTER_HOME and MLflow store, set before ktrdr_assets is imported (partitions are discovered from
the raw folder at import). Nothing a test does touches the project's own data/ or dagster_home/.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SESSION_DIR = Path(tempfile.mkdtemp(prefix="ktrdr-tests-"))
RAW_COPY = SESSION_DIR / "raw"
shutil.copytree(PROJECT_ROOT / "data" / "raw", RAW_COPY)
(SESSION_DIR / "dagster_home").mkdir()
os.environ["KTRDR_RAW_DIR"] = str(RAW_COPY)
os.environ["KTRDR_WAREHOUSE_DIR"] = str(SESSION_DIR / "warehouse")
os.environ["DAGSTER_HOME"] = str(SESSION_DIR / "dagster_home")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{SESSION_DIR / 'mlflow.db'}"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# Tiny test models train fastest single-threaded, and do not fight the other test process for 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

SHIPPED_STRATEGY = PROJECT_ROOT / "data" / "strategies" / "neuro_mean_reversion.yaml"

from ktrdr_assets.benchmarks.fast_models import FAST_MODELS  # noqa: E402  (after the environment is set)


def write_strategy(path: Path, **sections) -> Path:
    """The shipped strategy with fast models and `sections` deep-merged over it, written to `path`."""
    from ktrdr_assets.core.strategy import _deep_merge

    raw = yaml.safe_load(SHIPPED_STRATEGY.read_text())
    raw = _deep_merge(raw, {"models": FAST_MODELS})
    raw = _deep_merge(raw, sections)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def strategy_run_config(path: Path) -> dict:
    return {"resources": {"strategy": {"config": {"path": str(path)}}}}


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return SESSION_DIR


@pytest.fixture(scope="session")
def fast_strategy(session_dir: Path) -> Path:
    return write_strategy(session_dir / "fast_strategy.yaml")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_DIR, ignore_errors=True)
