"""The benchmarks still run: each main() on a tiny size (a few seconds in all), so the scripts cannot rot."""

from __future__ import annotations

import numpy as np

from ktrdr_assets.benchmarks import dagster_overhead, feature_stage


def test_synthetic_bars_are_valid_ohlcv():
    bars = feature_stage.synthetic_bars(500)
    assert bars.index.tz is not None and str(bars.index.tz) == "UTC"
    assert bars.index.is_monotonic_increasing and (np.diff(bars.index.asi8) == 3_600 * 10**9).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars > 0).all().all()
    assert bars.equals(feature_stage.synthetic_bars(500))  # seeded


def test_feature_stage_main_prints_every_stage(capsys):
    timings = feature_stage.main(["--bars", "2000", "--repeats", "1"])
    assert list(timings)[0] == "TA-Lib alone" and list(timings)[-1] == feature_stage.WHOLE_STAGE
    assert all(seconds > 0 for seconds in timings.values())
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + len(timings)
    assert lines[-1].startswith(feature_stage.WHOLE_STAGE)


def test_dagster_overhead_main_times_an_in_process_run(capsys):
    results = dagster_overhead.main(["--symbol", "MSFT", "--assets", "ohlcv,indicators", "--no-multiprocess"])
    row = results["in_process"]
    assert row["success"] and row["steps"] == 2
    assert row["wall_s"] > row["steps_s"] > 0
    assert row["ratio"] == row["wall_s"] / row["steps_s"]
    assert capsys.readouterr().out.splitlines()[-1].startswith("in_process")


def test_scale_main_measures_a_few_symbols(capsys):
    """The scale benchmark on 3 tiny symbols, without its subprocess loads and webserver (tens of seconds)."""
    from ktrdr_assets.benchmarks import scale

    results = scale.main(["--symbols", "2,3", "--bars", "400", "--no-ui", "--no-load"])
    for n, row in results.items():
        assert set(row) == {"sensor first", "sensor", "schedule", "manifest", "rebuild", "run overhead"}, n
        assert all(seconds >= 0 for seconds in row.values())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("symbols") and lines[-2].startswith("growth 2 -> 3")
    assert lines[-1].startswith("goals at 3: sensor ")
