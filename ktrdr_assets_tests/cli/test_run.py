"""`ktrdr-run`: the README's main command, in-process."""

from pathlib import Path

import pytest

from ktrdr_assets.cli.run import main
from ktrdr_assets_tests.helpers import write_strategy


@pytest.mark.parametrize(("symbol", "message"), [("../../etc", "invalid partition key"), ("NOPE", "no raw bar file")])
def test_a_bad_symbol_is_refused_before_anything_runs(symbol, message, capsys) -> None:
    assert main(["--symbol", symbol]) == 2
    assert message in capsys.readouterr().err


def test_a_symbol_run_materializes_the_graph_and_says_where_results_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    warehouse = tmp_path / "warehouse"
    monkeypatch.setenv("KTRDR_WAREHOUSE_DIR", str(warehouse))
    strategy = write_strategy(tmp_path / "fast.yaml")
    assert main(["--symbol", "MSFT", "--strategy", str(strategy)]) == 0
    out = capsys.readouterr().out
    assert f"materialized ohlcv                    {warehouse / 'ohlcv' / 'MSFT.parquet'}" in out
    assert "materialize_symbol run" in out and "build_manifest run" in out
    assert (warehouse / "deployment_manifest" / "all.json").exists()
    assert "MSFT: " in out and "deployment manifest: " in out and f"results under {warehouse}" in out
