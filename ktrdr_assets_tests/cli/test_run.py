"""`ktrdr-run`: the README's main command, in-process."""

from pathlib import Path

import pytest

from ktrdr_assets.cli.run import _report, main
from ktrdr_assets.paths import raw_dir
from ktrdr_assets_tests.helpers import restored, run_job, write_strategy


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


def test_a_raw_file_that_is_not_a_partition_is_named_with_its_reason(capsys) -> None:
    path = raw_dir() / "XYZ_1y.csv"
    path.write_text("Date,Open,High,Low,Close\n")
    try:
        assert main(["--symbol", "XYZ"]) == 2
    finally:
        path.unlink()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "error: no raw bar file for 'XYZ'; not used: XYZ_1y.csv: timeframe '1y': expected a count" in err


def test_a_bad_raw_file_is_reported_on_one_line(tmp_path: Path, capsys) -> None:
    with restored(raw_dir() / "AAPL_1d.csv") as path:
        path.write_text("Date,Open,High,Low,Close\n")
        result = run_job(write_strategy(tmp_path / "fast.yaml"), "AAPL", ["ohlcv"])
    _report("materialize_symbol", result)
    out = capsys.readouterr().out
    assert f"\n  step failed: ohlcv: {path}: header only, no bars\n" in out
