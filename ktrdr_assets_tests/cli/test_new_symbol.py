"""A raw file dropped a second ago is a partition for the commands users type, with no sensor tick and no
reload: `dagster asset materialize ... --partition X` (the definitions register the files present when they
load) and `ktrdr-run --symbol X` (it registers X before running; see test_run.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ktrdr_assets.partitions import SYMBOL_PARTITIONS
from ktrdr_assets.paths import PROJECT_ROOT, raw_dir
from ktrdr_assets.symbol_registry import REGISTER_AT_LOAD_ENV, register_at_load
from ktrdr_assets_tests.synthetic_symbols import ALL_SYMBOLS


def _folders(tmp_path: Path) -> dict[str, str]:
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir(), raw)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        "KTRDR_RAW_DIR": str(raw),
        "KTRDR_WAREHOUSE_DIR": str(tmp_path / "warehouse"),
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }


def _drop(raw: str, name: str) -> None:
    lines = (Path(raw) / "MSFT_1d.csv").read_text().splitlines(keepends=True)
    (Path(raw) / name).write_text("".join(lines[:800]))


def test_dagster_asset_materialize_runs_a_file_dropped_a_second_ago(tmp_path: Path) -> None:
    env = _folders(tmp_path)
    _drop(env["KTRDR_RAW_DIR"], "NEWCO_1d.csv")
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "ktrdr_assets.definitions"]
    done = subprocess.run(
        [*command, "--select", "ohlcv", "--partition", "NEWCO"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (Path(env["KTRDR_WAREHOUSE_DIR"]) / "ohlcv" / "NEWCO.parquet").is_file()
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert "NEWCO" in instance.get_dynamic_partitions(SYMBOL_PARTITIONS)


def test_loading_the_definitions_registers_the_files_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the command above relies on, in-process; switched off by KTRDR_REGISTER_SYMBOLS_AT_LOAD=0."""
    env = _folders(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _drop(env["KTRDR_RAW_DIR"], "LATE_1d.csv")
    monkeypatch.setenv(REGISTER_AT_LOAD_ENV, "0")
    assert register_at_load() == []
    monkeypatch.delenv(REGISTER_AT_LOAD_ENV)
    everything = sorted([*ALL_SYMBOLS, "LATE"])  # the session's raw files and the one dropped here
    assert register_at_load() == everything
    assert register_at_load() == []  # already there
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert sorted(instance.get_dynamic_partitions(SYMBOL_PARTITIONS)) == everything
    monkeypatch.delenv("DAGSTER_HOME")
    assert register_at_load() == []  # no persistent instance to register into: nothing, and no error
