"""`ktrdr-run`: the README's main command, in-process. Exit 0 when every step did its job, deployed or not;
1 when a step failed; 2 for bad arguments. Progress lines instead of Dagster's DEBUG events, no stack
trace, and the verdict paragraph last."""

import re
import shutil
from pathlib import Path

import dagster as dg
import pytest

from ktrdr_assets.cli.run import EXIT_OK, EXIT_STEP_FAILED, EXIT_USAGE, _report, main
from ktrdr_assets.partitions import SYMBOL_PARTITIONS
from ktrdr_assets.paths import raw_dir
from ktrdr_assets_tests.helpers import restored, run_job, write_strategy
from ktrdr_assets_tests.synthetic_symbols import NOEDGE

FRESH = "FRESH"  # a symbol whose raw file appears during the test


@pytest.mark.parametrize(("symbol", "message"), [("../../etc", "invalid partition key"), ("NOPE", "no raw bar file")])
def test_a_bad_symbol_is_refused_before_anything_runs(symbol, message, capsys) -> None:
    assert main(["--symbol", symbol]) == EXIT_USAGE == 2
    assert message in capsys.readouterr().err


def test_a_healthy_run_without_a_deployable_model_exits_0_and_ends_with_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The symbol is a raw file dropped a second ago (FRESH: a copy of NOEDGE's random walk, no edge): no
    sensor tick, no reload; ktrdr-run registers it as a partition."""
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir(), raw)
    shutil.copy(raw / f"{NOEDGE}_1d.csv", raw / f"{FRESH}_1d.csv")
    monkeypatch.setenv("KTRDR_RAW_DIR", str(raw))
    warehouse = tmp_path / "warehouse"
    monkeypatch.setenv("KTRDR_WAREHOUSE_DIR", str(warehouse))
    strategy = write_strategy(tmp_path / "fast.yaml")
    assert main(["--symbol", FRESH, "--strategy", str(strategy)]) == EXIT_OK == 0
    out = capsys.readouterr().out
    assert f"materialized ohlcv                    {warehouse / 'ohlcv' / f'{FRESH}.parquet'}" in out
    assert "materialize_symbol run" in out and "build_manifest run" in out
    assert (warehouse / "deployment_manifest" / "all.json").exists()
    # progress: a line per step with its time, per walk-forward fold and per epoch; no DEBUG events
    assert "> lstm_model" in out and "+ lstm_model done (" in out
    assert f"{FRESH} lstm walk-forward fold 3/3:" in out and f"{FRESH} lstm epoch 1/3:" in out
    assert "STEP_START" not in out and "DEBUG" not in out and "Traceback" not in out
    assert "check deployment_manifest.every_symbol_deployable red (ERROR)" in out
    # the verdict is the last paragraph
    verdict = out.strip().split("\n\n")[-1].replace("\n", " ")
    assert verdict.startswith(f"{FRESH}: no model deployed.")
    assert "Every step did its job (exit code 0)." in verdict and f"Results under {warehouse}" in verdict
    for model in ("RandomForest", "XGBoost", "NeuralNetwork", "LSTM"):
        assert re.search(rf"  {model} +out-of-fold 0\.\d{{3}} vs baseline 0\.\d{{3}} .*: rejected by .*accuracy", out)
    with dg.DagsterInstance.get() as instance:
        assert FRESH in instance.get_dynamic_partitions(SYMBOL_PARTITIONS)


def test_a_failed_step_exits_1_naming_it_without_a_stack_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("KTRDR_WAREHOUSE_DIR", str(tmp_path / "warehouse"))
    strategy = write_strategy(tmp_path / "too_few.yaml", data={"min_bars": 100_000})
    assert main(["--symbol", NOEDGE, "--strategy", str(strategy)]) == EXIT_STEP_FAILED == 1
    out = capsys.readouterr().out
    assert "! ohlcv FAILED:" in out and "Traceback" not in out
    assert "The run FAILED in materialize_symbol.ohlcv (exit code 1)." in out.replace("\n", " ")


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
