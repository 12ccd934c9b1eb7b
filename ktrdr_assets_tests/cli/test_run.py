"""`ktrdr-run`: the README's main command, in-process."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from ktrdr_assets.cli.run import main
from ktrdr_assets.partitions import SYMBOL_PARTITIONS
from ktrdr_assets.paths import raw_dir
from ktrdr_assets_tests.helpers import write_strategy


@pytest.mark.parametrize(("symbol", "message"), [("../../etc", "invalid partition key"), ("NOPE", "no raw bar file")])
def test_a_bad_symbol_is_refused_before_anything_runs(symbol, message, capsys) -> None:
    assert main(["--symbol", symbol]) == 2
    assert message in capsys.readouterr().err


def test_a_symbol_run_materializes_the_graph_and_says_where_results_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The symbol is a raw file dropped a second ago (a copy of MSFT's bars): no sensor tick, no reload."""
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir(), raw)
    shutil.copy(raw / "MSFT_1d.csv", raw / "NEWCO_1d.csv")
    monkeypatch.setenv("KTRDR_RAW_DIR", str(raw))
    warehouse = tmp_path / "warehouse"
    monkeypatch.setenv("KTRDR_WAREHOUSE_DIR", str(warehouse))
    strategy = write_strategy(tmp_path / "fast.yaml")
    assert main(["--symbol", "NEWCO", "--strategy", str(strategy)]) == 0
    out = capsys.readouterr().out
    assert f"materialized ohlcv                    {warehouse / 'ohlcv' / 'NEWCO.parquet'}" in out
    assert "materialize_symbol run" in out and "build_manifest run" in out
    assert (warehouse / "deployment_manifest" / "all.json").exists()
    assert "NEWCO: " in out and "deployment manifest: " in out and f"results under {warehouse}" in out
    with dg.DagsterInstance.get() as instance:
        assert "NEWCO" in instance.get_dynamic_partitions(SYMBOL_PARTITIONS)
