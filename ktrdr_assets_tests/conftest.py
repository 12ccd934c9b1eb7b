"""Test isolation: every test session gets its own raw folder (a copy of data/raw plus the synthetic
PLANTED and NOEDGE files of synthetic_symbols.py), warehouse,
DAGSTER_HOME and MLflow store, set before ktrdr_assets is imported (partitions are discovered from
the raw folder at import). Nothing a test does touches the project's own data/ or dagster_home/.

The fixtures import `ktrdr_assets_tests.helpers` and Dagster when first used, not here: both take seconds
to import, which most core tests never need to pay.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import dagster as dg

    from ktrdr_assets_tests.helpers import Inputs
    from ktrdr_assets_tests.postgres import PostgresCluster

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SESSION_DIR = Path(tempfile.mkdtemp(prefix="ktrdr-tests-"))
RAW_COPY = SESSION_DIR / "raw"
shutil.copytree(PROJECT_ROOT / "data" / "raw", RAW_COPY)
# PLANTED (a planted edge) and NOEDGE (a random walk): partitions whose answer is known.
from ktrdr_assets_tests.synthetic_symbols import write_synthetic_raw_files  # noqa: E402

write_synthetic_raw_files(RAW_COPY)
(SESSION_DIR / "dagster_home").mkdir()
os.environ["KTRDR_RAW_DIR"] = str(RAW_COPY)
os.environ["KTRDR_WAREHOUSE_DIR"] = str(SESSION_DIR / "warehouse")
os.environ["DAGSTER_HOME"] = str(SESSION_DIR / "dagster_home")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{SESSION_DIR / 'mlflow.db'}"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# Tiny test models train fastest single-threaded, and do not fight the other test process for 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _module_folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new folder named after the requesting test module."""
    return tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return SESSION_DIR


@pytest.fixture(scope="session")
def fast_strategy(session_dir: Path) -> Path:
    from ktrdr_assets_tests.helpers import write_strategy

    return write_strategy(session_dir / "fast_strategy.yaml")


@pytest.fixture(scope="module")
def module_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's own folder; its `warehouse` subfolder replaces the session's warehouse from the first test
    that asks for it to the end of the module."""
    root = _module_folder(request, tmp_path_factory)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KTRDR_WAREHOUSE_DIR", str(root / "warehouse"))
        yield root


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    """A Dagster instance of this module's own (runs, sensor cursors, the symbol partitions of the session's
    raw files), kept for all of its tests."""
    import dagster as dg

    from ktrdr_assets.symbol_registry import register_symbols

    with dg.instance_for_test() as inst:
        register_symbols(inst)  # the session's raw files are its symbol partitions
        yield inst


@pytest.fixture(scope="module")
def msft_inputs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    """MSFT's splits and augmented train set, built through the core functions with tiny NN / LSTM settings."""
    from ktrdr_assets_tests.helpers import TINY, build_inputs, write_strategy

    path = write_strategy(_module_folder(request, tmp_path_factory) / "strategy.yaml", models=TINY)
    return build_inputs("MSFT", path)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL cluster for the session (see postgres.py); skipped with the reason when the
    machine has no PostgreSQL, failed instead when KTRDR_REQUIRE_POSTGRES=1 (CI)."""
    from ktrdr_assets_tests.postgres import PostgresUnavailable, postgres_cluster, postgres_required

    try:
        with postgres_cluster() as cluster:
            yield cluster
    except PostgresUnavailable as err:
        if postgres_required():
            pytest.fail(f"PostgreSQL is required here (KTRDR_REQUIRE_POSTGRES=1) but unavailable: {err}")
        pytest.skip(f"PostgreSQL unavailable: {err}")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_DIR, ignore_errors=True)
