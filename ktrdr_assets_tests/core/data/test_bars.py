"""Tests for the ohlcv stage core (ktrdr_assets.core.data.bars): real files, layouts, adjustment, bad inputs."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ktrdr_assets.core.data.bar_stats import bar_stats, one_bar_moves
from ktrdr_assets.core.data.bars import (
    SYMBOL_PATTERN,
    BarsError,
    SourceOverride,
    load_bars,
    load_sources_config,
    parse_raw_filename,
    parse_timeframe,
)

REPO = Path(__file__).resolve().parents[3]
RAW = REPO / "data" / "raw"
HEADER = "Date,Open,High,Low,Close,Volume"


def write(tmp_path: Path, text: str, name: str = "TEST_1d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def csv_rows(name: str) -> dict[str, dict[str, str]]:
    """The real file read independently of pandas: time string -> row."""
    with open(RAW / name, newline="") as handle:
        reader = csv.DictReader(handle)
        key = "Time" if "Time" in reader.fieldnames else "Date"
        return {row[key]: row for row in reader}


def raises(path_or_none, match_parts, fn, *args, **kwargs) -> str:
    """Call fn, expect a one-line BarsError containing every part (and the file name, when given)."""
    with pytest.raises(BarsError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    parts = [*match_parts] + ([path_or_none.name] if path_or_none is not None else [])
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# --------------------------------------------------------------------------- the three real files


@pytest.mark.parametrize(("name", "rows"), [("EURUSD_1h.csv", 6225), ("AAPL_1d.csv", 3270), ("MSFT_1d.csv", 3270)])
def test_real_files_load_fast_with_the_canonical_shape(name: str, rows: int) -> None:
    assert len(csv_rows(name)) == rows
    start = time.perf_counter()
    bars = load_bars(RAW / name, required_bars=300)
    assert time.perf_counter() - start < 1.0
    assert len(bars) == rows
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == np.float64).all()
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert str(bars.index.dtype) == "datetime64[ns, UTC]"
    assert bars.index.name == "timestamp"
    assert bars.index.is_monotonic_increasing and bars.index.is_unique


def test_eurusd_day_first_stamps_are_detected_and_values_kept() -> None:
    bars = load_bars(RAW / "EURUSD_1h.csv", required_bars=300)
    rows = csv_rows("EURUSD_1h.csv")
    assert bars.index[0] == pd.Timestamp("2017-01-01 22:00", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2017-12-29 21:00", tz="UTC")
    # 13.01.2017 can only be the 13th of January (day-first).
    row = rows["13.01.2017 10:00:00.000"]
    bar = bars.loc[pd.Timestamp("2017-01-13 10:00", tz="UTC")]
    assert bar["open"] == float(row["Open"]) and bar["close"] == float(row["Close"])
    assert bar["volume"] == float(row["Volume"])
    february_first = rows["01.02.2017 00:00:00.000"]  # day-first: 1 February, not 2 January
    assert bars.loc[pd.Timestamp("2017-02-01 00:00", tz="UTC"), "close"] == float(february_first["Close"])


def test_eurusd_contradicting_override_is_rejected() -> None:
    path = RAW / "EURUSD_1h.csv"
    raises(
        path,
        ["contradicts", "dayfirst=False"],
        load_bars,
        path,
        required_bars=10,
        source=SourceOverride(dayfirst=False),
    )


def test_aapl_split_adjustment_scales_ohlc_and_volume_by_adj_close_ratio() -> None:
    bars = load_bars(RAW / "AAPL_1d.csv", required_bars=300)
    for day in ("2000-03-01", "2005-02-28", "2013-03-01"):
        row = csv_rows("AAPL_1d.csv")[day]
        ratio = float(row["Adj Close"]) / float(row["Close"])
        bar = bars.loc[pd.Timestamp(day, tz="UTC")]
        for name in ("Open", "High", "Low", "Close"):
            assert bar[name.lower()] == pytest.approx(float(row[name]) * ratio, rel=1e-12)
        assert bar["volume"] == pytest.approx(float(row["Volume"]) / ratio, rel=1e-12)
        assert bar["close"] == pytest.approx(float(row["Adj Close"]), rel=1e-12)


def test_aapl_splits_vanish_and_the_real_crash_is_the_largest_move() -> None:
    rows = csv_rows("AAPL_1d.csv")
    adjusted = one_bar_moves(load_bars(RAW / "AAPL_1d.csv", required_bars=300))
    raw = one_bar_moves(load_bars(RAW / "AAPL_1d.csv", required_bars=300, adjust_with_adj_close=False))
    for split in ("2000-06-21", "2005-02-28"):
        stamp = pd.Timestamp(split, tz="UTC")
        assert raw[stamp] < -0.45  # the unadjusted split gap
        assert abs(adjusted[stamp]) < 0.1
    crash = float(rows["2000-09-29"]["Adj Close"]) / float(rows["2000-09-28"]["Adj Close"]) - 1
    assert -0.53 < crash < -0.51
    stats = bar_stats(load_bars(RAW / "AAPL_1d.csv", required_bars=300), "1d")
    assert stats["largest_move_at"] == "2000-09-29T00:00:00+00:00"
    assert stats["largest_move"] == pytest.approx(crash, rel=1e-9)


def test_adjustment_off_returns_the_file_prices() -> None:
    row = csv_rows("MSFT_1d.csv")["2003-02-18"]
    bar = load_bars(RAW / "MSFT_1d.csv", required_bars=300, adjust_with_adj_close=False).loc[
        pd.Timestamp("2003-02-18", tz="UTC")
    ]
    assert bar.tolist() == [float(row[c]) for c in ("Open", "High", "Low", "Close", "Volume")]
    moves = one_bar_moves(load_bars(RAW / "MSFT_1d.csv", required_bars=300))
    assert abs(moves[pd.Timestamp("2003-02-18", tz="UTC")]) < 0.1  # the 2:1 split is gone once adjusted


def test_real_file_stats() -> None:
    eurusd = bar_stats(load_bars(RAW / "EURUSD_1h.csv", required_bars=300), "1h")
    rows = list(csv_rows("EURUSD_1h.csv").values())
    closes = [float(row["Close"]) for row in rows]
    moves = [(b / a - 1, row["Time"]) for a, b, row in zip(closes, closes[1:], rows[1:], strict=False)]
    move, at = max(moves, key=lambda item: abs(item[0]))
    assert at == "23.04.2017 21:00:00.000"  # the Sunday open after the French election's first round
    # Every Friday-evening -> Sunday-evening closure counts nothing; the one outage is Christmas Day,
    # 2017-12-25 07:00 -> 22:00: 14 hourly bars missing.
    assert eurusd == {
        "bars": 6225,
        "first": "2017-01-01T22:00:00+00:00",
        "last": "2017-12-29T21:00:00+00:00",
        "missing_bars": 14,
        "largest_move": pytest.approx(move, rel=1e-12),
        "largest_move_at": "2017-04-23T21:00:00+00:00",
    }
    aapl = load_bars(RAW / "AAPL_1d.csv", required_bars=300)
    # Daily: every weekday without a bar (exchange holidays, 9/11, Sandy) is missing.
    weekdays = pd.bdate_range("2000-03-01", "2013-03-01")
    assert bar_stats(aapl, "1d")["missing_bars"] == len(weekdays) - len(aapl) == 123


# --------------------------------------------------------------------------- layouts


def test_us_slash_dates_decided_month_first_by_the_data(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1/4/1999,10,11,9,10.5,100\n1/13/1999,10,11,9,10.5,100\n")
    bars = load_bars(path, required_bars=2)
    assert list(bars.index) == [pd.Timestamp("1999-01-04", tz="UTC"), pd.Timestamp("1999-01-13", tz="UTC")]


def test_ambiguous_dates_fail_then_load_with_a_dayfirst_override(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1/4/1999,10,11,9,10.5,100\n2/4/1999,10,11,9,10.5,100\n")
    raises(path, ["ambiguous date order", "'1/4/1999'", "dayfirst"], load_bars, path, required_bars=1)
    dayfirst = load_bars(path, required_bars=1, source=SourceOverride(dayfirst=True))
    assert list(dayfirst.index) == [
        pd.Timestamp("1999-04-01", tz="UTC"),
        pd.Timestamp("1999-04-02", tz="UTC"),
    ]
    monthfirst = load_bars(path, required_bars=1, source=SourceOverride(dayfirst=False))
    assert list(monthfirst.index) == [
        pd.Timestamp("1999-01-04", tz="UTC"),
        pd.Timestamp("1999-02-04", tz="UTC"),
    ]


def test_inconsistent_day_month_order_fails(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n13/01/1999,10,11,9,10.5,100\n01/14/1999,10,11,9,10.5,100\n")
    raises(
        path,
        ["inconsistent day/month order", "'13/01/1999'", "'01/14/1999'"],
        load_bars,
        path,
        required_bars=1,
    )


def test_tz_aware_iso_stamps_are_converted_to_utc(tmp_path: Path) -> None:
    text = "timestamp,open,high,low,close,volume\n"
    text += "2017-01-01T22:00:00+01:00,1,2,0.5,1.5,3\n2017-06-01 22:00:00-04:00,1,2,0.5,1.5,3\n"
    bars = load_bars(write(tmp_path, text), required_bars=2)
    assert list(bars.index) == [
        pd.Timestamp("2017-01-01 21:00", tz="UTC"),
        pd.Timestamp("2017-06-02 02:00", tz="UTC"),
    ]
    assert str(bars.index.dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("31.01.2017", "2017-01-31"),
        ("2017/01/31", "2017-01-31"),
        ("2017.1.31 7:05", "2017-01-31 07:05"),
        ("2017-01-31T07:05:00Z", "2017-01-31 07:05"),
        ("2017-01-31T07:05:00.250", "2017-01-31 07:05:00.250"),
    ],
)
def test_other_decidable_layouts(tmp_path: Path, stamp: str, expected: str) -> None:
    path = write(tmp_path, f"{HEADER}\n{stamp},1,2,0.5,1.5,3\n")
    assert load_bars(path, required_bars=1).index[0] == pd.Timestamp(expected, tz="UTC")


def test_naive_stamps_use_the_source_timezone(tmp_path: Path) -> None:
    path = write(tmp_path, "Datetime,Open,High,Low,Close,Volume\n2017-01-03 09:30:00,1,2,0.5,1.5,3\n")
    bars = load_bars(path, required_bars=1, source=SourceOverride(timezone="America/New_York"))
    assert bars.index[0] == pd.Timestamp("2017-01-03 14:30", tz="UTC")
    assert str(bars.index.dtype) == "datetime64[ns, UTC]"


def test_nonexistent_local_time_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "Datetime,Open,High,Low,Close,Volume\n2017-03-12 02:30:00,1,2,0.5,1.5,3\n")
    raises(
        path,
        ["data row 1", "not a valid America/New_York local time", "2017-03-12 02:30:00"],
        load_bars,
        path,
        required_bars=1,
        source=SourceOverride(timezone="America/New_York"),
    )


def test_mixed_naive_and_aware_stamps_fail(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2017-01-02 10:00+00:00,1,2,0.5,1.5,3\n2017-01-03 10:00,1,2,0.5,1.5,3\n")
    raises(path, ["data row 2", "without a UTC offset"], load_bars, path, required_bars=1)


def test_mixed_date_layouts_fail(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2017-01-02,1,2,0.5,1.5,3\n03.01.2017,1,2,0.5,1.5,3\n")
    raises(path, ["data row 2", "layout differs", "'03.01.2017'"], load_bars, path, required_bars=1)


def test_explicit_date_format_override(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n20170102 0930,1,2,0.5,1.5,3\n")
    raises(path, ["data row 1", "unparseable date", "20170102 0930"], load_bars, path, required_bars=1)
    bars = load_bars(path, required_bars=1, source=SourceOverride(date_format="%Y%m%d %H%M"))
    assert bars.index[0] == pd.Timestamp("2017-01-02 09:30", tz="UTC")


def test_extra_columns_ignored_names_case_insensitive_and_adj_close_variants(tmp_path: Path) -> None:
    text = "TICKER,DATE,OPEN,high,Low,CLOSE,Volume,adj_close,Spread\nX,2017-01-02,10,12,9,11,100,5.5,0.1\n"
    bars = load_bars(write(tmp_path, text), required_bars=1)
    assert bars.iloc[0].tolist() == [5.0, 6.0, 4.5, 5.5, 200.0]
    text = text.replace("adj_close", "AdjClose")
    assert load_bars(write(tmp_path, text), required_bars=1).iloc[0].tolist() == [5.0, 6.0, 4.5, 5.5, 200.0]
    unadjusted = load_bars(write(tmp_path, text), required_bars=1, adjust_with_adj_close=False)
    assert unadjusted.iloc[0].tolist() == [10.0, 12.0, 9.0, 11.0, 100.0]


def test_unnamed_first_column_is_the_time(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"Open": [1.0, 1.5], "High": [2.0, 2.0], "Low": [0.5, 1.0], "Close": [1.5, 1.8], "Volume": [3, 4]},
        index=pd.DatetimeIndex(["2020-05-01", "2020-05-04"]),
    )
    path = tmp_path / "X_1d.csv"
    frame.to_csv(path)
    bars = load_bars(path, required_bars=2)
    assert list(bars.index) == [pd.Timestamp("2020-05-01", tz="UTC"), pd.Timestamp("2020-05-04", tz="UTC")]
    assert bars["close"].tolist() == [1.5, 1.8]


def test_separate_date_and_time_columns_are_joined(tmp_path: Path) -> None:
    text = "Date,Time,Open,High,Low,Close,Volume\n"
    text += "2017.01.02,09:00,1,2,0.5,1.5,3\n2017.01.02,10:00,1,2,0.5,1.5,3\n"
    bars = load_bars(write(tmp_path, text), required_bars=2)
    assert list(bars.index) == [
        pd.Timestamp("2017-01-02 09:00", tz="UTC"),
        pd.Timestamp("2017-01-02 10:00", tz="UTC"),
    ]


@pytest.mark.parametrize("tz", [None, "Europe/Berlin"])
def test_parquet_with_a_datetime_index(tmp_path: Path, tz: str | None) -> None:
    stamps = pd.DatetimeIndex(["2021-03-01 10:00", "2021-03-01 11:00", "2021-03-01 09:00"], tz=tz)
    frame = pd.DataFrame(
        {"Open": [1.0, 2.0, 3.0], "High": [2.0, 3.0, 4.0], "Low": [0.5, 1.5, 2.5], "Close": [1.5, 2.5, 3.5]},
        index=stamps,
    )
    path = tmp_path / "X_1h.parquet"
    frame.to_parquet(path)
    bars = load_bars(path, required_bars=3)
    offset = pd.Timedelta(hours=1 if tz else 0)  # Berlin is UTC+1 in early March
    expected = pd.DatetimeIndex(["2021-03-01 09:00", "2021-03-01 10:00", "2021-03-01 11:00"], tz="UTC") - offset
    assert list(bars.index) == list(expected)
    assert bars["close"].tolist() == [3.5, 1.5, 2.5]
    assert bars["volume"].tolist() == [0.0, 0.0, 0.0]  # no volume column -> 0.0


def test_unsorted_bars_are_sorted_and_exact_duplicates_dropped(tmp_path: Path) -> None:
    text = f"{HEADER}\n2017-01-04,3,4,2,3.5,30\n2017-01-02,1,2,0.5,1.5,10\n2017-01-04,3,4,2,3.5,30\n"
    text += "2017-01-03,2,3,1,2.5,20\n"
    bars = load_bars(write(tmp_path, text), required_bars=3)
    assert [str(t.date()) for t in bars.index] == ["2017-01-02", "2017-01-03", "2017-01-04"]
    assert bars["close"].tolist() == [1.5, 2.5, 3.5]


# --------------------------------------------------------------------------- bad inputs


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    raises(path, ["empty file"], load_bars, path, required_bars=1)


def test_header_only(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "\n")
    raises(path, ["header only"], load_bars, path, required_bars=1)


@pytest.mark.parametrize("drop", ["Close", "Open", "High", "Low"])
def test_missing_price_column(tmp_path: Path, drop: str) -> None:
    columns = [c for c in HEADER.split(",") if c != drop]
    path = write(tmp_path, ",".join(columns) + "\n" + ",".join(["2017-01-02"] + ["1"] * (len(columns) - 1)))
    raises(path, ["missing column(s)", drop.lower()], load_bars, path, required_bars=1)


def test_no_time_column(tmp_path: Path) -> None:
    path = write(tmp_path, "Open,High,Low,Close\n1,2,0.5,1.5\n")
    raises(path, ["no time column found"], load_bars, path, required_bars=1)


def test_several_time_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Timestamp,Open,High,Low,Close\n2017-01-02,2017-01-02,1,2,0.5,1.5\n")
    raises(path, ["several time columns", "Date", "Timestamp"], load_bars, path, required_bars=1)


def test_unparseable_date(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2017-01-02,1,2,0.5,1.5,3\n2017-02-30,1,2,0.5,1.5,3\n")
    raises(path, ["data row 2", "unparseable date", "'2017-02-30'"], load_bars, path, required_bars=1)


def test_two_digit_year_is_unparseable(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1/4/99,1,2,0.5,1.5,3\n")
    raises(path, ["data row 1", "no 4-digit year", "'1/4/99'"], load_bars, path, required_bars=1)


def test_missing_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2017-01-02,1,2,0.5,1.5,3\n,1,2,0.5,1.5,3\n")
    raises(path, ["data row 2", "missing timestamp"], load_bars, path, required_bars=1)


def test_conflicting_duplicate_timestamps(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2017-01-02,1,2,0.5,1.5,3\n2017-01-02,1,2,0.5,1.6,3\n")
    raises(path, ["2017-01-02T00:00:00+00:00", "conflicting duplicate"], load_bars, path, required_bars=1)


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        ("0,2,0.5,1.5,3", "non-positive price"),
        ("1,2,-0.5,1.5,3", "non-positive price"),
        ("1,0.4,0.5,0.45,3", "high below low"),
        ("1,1.4,0.5,1.5,3", "high below max(open, close)"),
        ("1,2,1.2,1.5,3", "low above min(open, close)"),
        ("1,2,0.5,1.5,-3", "negative volume"),
        ("1,2,0.5,,3", "close is missing or not a finite number"),
        ("1,2,abc,1.5,3", "low is missing or not a finite number ('abc')"),
        ("1,2,0.5,1.5,NaN", "volume is missing or not a finite number"),
        ("1,inf,0.5,1.5,3", "high is missing or not a finite number"),
    ],
)
def test_bad_bar_values_name_file_stamp_and_rule(tmp_path: Path, row: str, rule: str) -> None:
    path = write(tmp_path, f"{HEADER}\n2017-01-02,1,2,0.5,1.5,3\n2017-01-03,{row}\n2017-01-04,1,2,0.5,1.5,3\n")
    raises(path, ["2017-01-03T00:00:00+00:00", rule], load_bars, path, required_bars=1)


def test_non_positive_adj_close_fails_only_when_adjusting(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Open,High,Low,Close,Volume,Adj Close\n2017-01-02,1,2,0.5,1.5,3,0\n")
    raises(
        path,
        ["2017-01-02T00:00:00+00:00", "non-positive price", "adjclose=0.0"],
        load_bars,
        path,
        required_bars=1,
    )
    assert len(load_bars(path, required_bars=1, adjust_with_adj_close=False)) == 1


def test_fewer_bars_than_required(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2017-01-02,1,2,0.5,1.5,3\n2017-01-03,1,2,0.5,1.5,3\n")
    raises(path, ["only 2 bars", "required_bars=3"], load_bars, path, required_bars=3)


def test_unsupported_suffix_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2017-01-02,1,2,0.5,1.5,3\n", name="X_1d.txt")
    raises(path, ["unsupported file type .txt"], load_bars, path, required_bars=1)
    raises(tmp_path / "Y_1d.csv", ["no such file"], load_bars, tmp_path / "Y_1d.csv", required_bars=1)


def test_duplicate_role_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Close,Open,High,Low,close\n2017-01-02,1.5,1,2,0.5,1.5\n")
    raises(path, ["'Close' and 'close' both hold close"], load_bars, path, required_bars=1)


# --------------------------------------------------------------------------- sources config


def test_shipped_sources_config() -> None:
    assert load_sources_config(REPO / "data" / "sources.yaml") == {"EURUSD_1h.csv": SourceOverride(dayfirst=True)}


def test_sources_config_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_sources_config(tmp_path / "sources.yaml") == {}


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("A_1d.csv:\n  dayfrist: true\n", ["A_1d.csv", "unknown key 'dayfrist'"]),
        ("A_1d.csv:\n  timezone: Mars/Olympus\n", ["A_1d.csv.timezone", "unknown IANA time zone"]),
        (
            "A_1d.csv:\n  dayfirst: true\n  date_format: '%Y'\n",
            ["A_1d.csv", "either dayfirst or date_format"],
        ),
        ("../A_1d.csv:\n  dayfirst: true\n", ["'../A_1d.csv'", "symbol"]),
        ("- A_1d.csv\n", ["expected a mapping"]),
        ("A_1d.csv: [\n", ["not valid YAML"]),
    ],
)
def test_sources_config_errors(tmp_path: Path, text: str, parts: list[str]) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    raises(path, parts, load_sources_config, path)


# --------------------------------------------------------------------------- names and timeframes


@pytest.mark.parametrize(
    ("tf", "expected"),
    [
        ("1m", "1min"),
        ("5m", "5min"),
        ("15m", "15min"),
        ("1h", "1h"),
        ("4h", "4h"),
        ("1d", "1D"),
        ("1w", "7D"),
    ],
)
def test_parse_timeframe(tf: str, expected: str) -> None:
    assert parse_timeframe(tf) == pd.Timedelta(expected)


@pytest.mark.parametrize("tf", ["0h", "h", "1y", "1.5h", "1H", " 1h", "1h\n", ""])
def test_parse_timeframe_rejects(tf: str) -> None:
    raises(None, ["timeframe", repr(tf)], parse_timeframe, tf)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("EURUSD_1h.csv", ("EURUSD", "1h")),
        ("BRK.B_1d.parquet", ("BRK.B", "1d")),
        ("BTC-USD_15m.csv", ("BTC-USD", "15m")),
        ("ES_F_4h.csv", ("ES_F", "4h")),
    ],
)
def test_parse_raw_filename(name: str, expected: tuple[str, str]) -> None:
    assert parse_raw_filename(name) == expected


@pytest.mark.parametrize(
    "name",
    ["../X_1h.csv", "a/b_1h.csv", "A..B_1h.csv", ".X_1h.csv", "_1h.csv", "EUR USD_1h.csv", "EURUSD.csv",
     "EURUSD_1h.txt", "EURUSD_1y.csv", "EURUSD_1h.csv.bak"],
)  # fmt: skip
def test_parse_raw_filename_rejects(name: str) -> None:
    raises(None, [repr(name)], parse_raw_filename, name)


def test_symbol_pattern() -> None:
    assert SYMBOL_PATTERN.match("EURUSD") and SYMBOL_PATTERN.match("brk.b-2_x")
    for bad in ("", "..", "A..B", "-A", "A/B", "A\n", "A B"):
        assert not SYMBOL_PATTERN.match(bad)


# --------------------------------------------------------------------------- statistics


def _bars(stamps: list[str], closes: list[float]) -> pd.DataFrame:
    close = np.asarray(closes, dtype=np.float64)
    index = pd.DatetimeIndex(stamps, tz="UTC", name="timestamp")
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=index)


def test_one_bar_moves_known_answer() -> None:
    moves = one_bar_moves(_bars(["2020-01-01", "2020-01-02", "2020-01-03"], [100.0, 110.0, 88.0]))
    assert list(moves.index) == [pd.Timestamp("2020-01-02", tz="UTC"), pd.Timestamp("2020-01-03", tz="UTC")]
    assert moves.tolist() == pytest.approx([0.1, -0.2])


def test_bar_stats_hourly_weekend_closure_and_midweek_gap() -> None:
    stamps = [
        "2024-01-03 10:00",  # Wednesday
        "2024-01-03 13:00",  # 11:00, 12:00 missing -> 2
        "2024-01-05 21:00",  # Friday: Wed 14:00 .. Fri 20:00 missing -> 55
        "2024-01-07 22:00",  # Sunday evening: weekend closure -> 0
        "2024-01-07 23:00",
        "2024-01-08 00:00",
    ]
    stats = bar_stats(_bars(stamps, [1.0, 1.1, 1.0, 1.2, 1.2, 1.2]), "1h")
    assert stats["missing_bars"] == 2 + 55
    assert stats["largest_move"] == pytest.approx(0.2) and stats["largest_move_at"] == "2024-01-07T22:00:00+00:00"
    assert (stats["bars"], stats["first"], stats["last"]) == (
        6,
        "2024-01-03T10:00:00+00:00",
        "2024-01-08T00:00:00+00:00",
    )


def test_bar_stats_daily_counts_weekday_holidays_only() -> None:
    stamps = [
        "2024-03-27",  # Wednesday
        "2024-03-28",  # Thursday; Good Friday 29th closed -> 1
        "2024-04-01",  # Monday
        "2024-04-05",  # Friday; Tue-Thu missing -> 3
        "2024-04-09",  # Tuesday; Monday missing -> 1
    ]
    assert bar_stats(_bars(stamps, [1.0] * 5), "1d")["missing_bars"] == 1 + 3 + 1


def test_bar_stats_weekly_and_single_bar() -> None:
    weekly = _bars(["2024-01-01", "2024-01-08", "2024-01-29"], [1.0, 1.0, 1.0])
    assert bar_stats(weekly, "1w")["missing_bars"] == 2
    single = bar_stats(_bars(["2024-01-01"], [1.0]), "1d")
    assert single["missing_bars"] == 0 and single["largest_move"] is None and single["largest_move_at"] is None
