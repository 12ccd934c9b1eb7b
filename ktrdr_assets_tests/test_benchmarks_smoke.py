"""The benchmarks still run: each main() on a tiny size (a few seconds in all), so the scripts cannot rot."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ktrdr_assets.benchmarks import dagster_overhead, feature_stage, raw_load


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


def test_raw_load_bars_csv_is_what_the_loader_reads(tmp_path):
    from ktrdr_assets.core.data.bars import load_bars

    path, text_mb = raw_load.write_bars_csv(tmp_path / "B_1m.csv", 20_000, "dayfirst")  # to 14 January: day-first
    assert path.read_text().splitlines()[1].startswith("01.01.2010 00:00:00.000,")
    assert text_mb == path.stat().st_size / raw_load.MB
    bars = load_bars(path, required_bars=20_000)
    assert bars.index[-1] == pd.Timestamp("2010-01-01", tz="UTC") + pd.Timedelta(minutes=19_999)
    gz, gz_text_mb = raw_load.write_bars_csv(tmp_path / "G_1m.csv", 20_000, "gzip")
    assert gz.name == "G_1m.csv.gz" and gz_text_mb > gz.stat().st_size / raw_load.MB
    pd.testing.assert_frame_equal(load_bars(gz, required_bars=20_000), bars)


def test_raw_load_main_measures_both_contenders_in_fresh_processes(capsys):
    results = raw_load.main(["--bars", "500", "--layout", "iso", "--repeats", "1"])
    rows = results["iso"]
    for name in raw_load.CONTENDERS:
        assert rows[name]["rows"] == 500
        assert rows[name]["best_s"] > 0 and rows[name]["over_baseline_mb"] >= 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("iso")


def test_gate_power_main_runs_the_real_evaluation_on_known_answers(capsys):
    """Tiny: one random walk and one strong planted edge, one model type, three folds (the real benchmark
    runs 20 + 20 per strength with every model type; figures in benchmarks/README.md)."""
    from ktrdr_assets.benchmarks import gate_power

    argv = ["--symbols", "1", "--strengths", "3", "--default-strength", "3", "--bars", "1500", "--folds", "3"]
    results = gate_power.main([*argv, "--model-types", "random_forest", "--jobs", "1"])
    by_kind = {r["kind"]: r for r in results}
    assert set(by_kind) == {"random walk", "planted 3"}
    assert by_kind["random walk"]["deployed"] is None
    (walk,), (planted,) = by_kind["random walk"]["models"], by_kind["planted 3"]["models"]
    assert walk["p_value"] > 0.05 and planted["p_value"] < 1e-3 and planted["accuracy_gate"]
    out = capsys.readouterr().out
    assert "| random walk (no edge) | 1 | 0 (0%) |" in out and "| planted, strength 3 (default) | 1 |" in out


def test_scale_main_measures_a_few_symbols(capsys):
    """The scale benchmark on 3 tiny symbols, without its subprocess loads and webserver."""
    from ktrdr_assets.benchmarks import scale

    results = scale.main(["--symbols", "3", "--bars", "400", "--no-ui", "--no-load"])
    assert set(results[3]) == {"sensor first", "sensor", "schedule", "manifest", "rebuild", "run overhead"}
    assert all(seconds >= 0 for seconds in results[3].values())
    lines = capsys.readouterr().out.splitlines()
    assert "load average" in lines[0] and lines[1].startswith("symbols")
    assert lines[-1].startswith("goals at 3: sensor ")


def test_scale_report_gives_growth_and_goals():
    from ktrdr_assets.benchmarks.scale import report

    lines = report({50: {"load": 2.0, "sensor": 0.1}, 500: {"load": 2.2, "sensor": 0.9}})
    assert lines[-2] == "growth 50 -> 500 (N x10): load x1.10, sensor x9.00"
    assert lines[-1] == "goals at 500: load 2.20 s <= 3 s; sensor 0.90 s <= 2 s"
