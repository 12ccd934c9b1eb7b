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
    """The scale benchmark on 3 tiny symbols, without its subprocess loads and webserver."""
    from ktrdr_assets.benchmarks import scale

    results = scale.main(["--symbols", "3", "--bars", "400", "--no-ui", "--no-load"])
    assert set(results[3]) == {"sensor first", "sensor", "schedule", "manifest", "rebuild", "run overhead"}
    assert all(seconds >= 0 for seconds in results[3].values())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("symbols") and lines[-1].startswith("goals at 3: sensor ")


def test_scale_report_gives_growth_and_goals():
    from ktrdr_assets.benchmarks.scale import report

    lines = report({50: {"load": 2.0, "sensor": 0.1}, 500: {"load": 2.2, "sensor": 0.9}})
    assert lines[-2] == "growth 50 -> 500 (N x10): load x1.10, sensor x9.00"
    assert lines[-1] == "goals at 500: load 2.20 s <= 3 s; sensor 0.90 s <= 2 s"
