"""`ohlcv_valid` is blocking: an unacknowledged one-bar move fails it and nothing downstream of `ohlcv` runs.

AAPL's real 2000-09-29 crash (-52 %) is acknowledged by the shipped strategy's AAPL override; with that
acknowledgement removed, the move is unexplained."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ktrdr_assets_tests.helpers import check_evaluations, materialized, run_job, write_strategy


def test_an_unacknowledged_move_fails_ohlcv_valid_and_blocks_downstream(module_dir: Path) -> None:
    strategy = write_strategy(
        module_dir / "unacknowledged.yaml", symbol_overrides={"AAPL": {"data": {"acknowledged_moves": []}}}
    )
    result = run_job(strategy, "AAPL", ["ohlcv", "indicators", "zigzag_labels"])
    check = check_evaluations(result)[("ohlcv", "ohlcv_valid")]
    assert check.passed is False
    assert "2000-09-29" in " ".join(check.metadata["unexplained"].value)
    assert set(materialized(result)) == {"ohlcv"}  # written (for inspection), but nothing below it ran
    started = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START}
    assert started == {"ohlcv"}  # indicators and zigzag_labels never started
    assert not result.success
