"""Raw files as people have them (issue 11): UTC offsets in every common form, epoch numbers, compressed and
zipped CSVs, monthly bars, European CSVs with sources.yaml options, volume-like headers, and the errors each
gives. Every case is a small crafted file with a known answer."""

from __future__ import annotations

import gzip
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ktrdr_assets import partitions
from ktrdr_assets.core.data import bars as bars_module
from ktrdr_assets.core.data.bar_stats import bar_stats
from ktrdr_assets.core.data.bars import (
    AVERAGE_MONTH,
    RAW_SUFFIXES,
    BarsError,
    SourceOverride,
    load_bars,
    load_raw_bars,
    load_sources_config,
    parse_raw_filename,
    parse_timeframe,
    timeframe_months,
)
from ktrdr_assets.core.data.raw import stamps as stamps_module

HEADER = "Date,Open,High,Low,Close,Volume"
ROWS = "2017-01-02,1,2,0.5,1.5,3\n2017-01-03,2,3,1.5,2.5,4\n"


def write(tmp_path: Path, text: str | bytes, name: str = "TEST_1d.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def raises(path: Path | None, parts: list[str], fn, *args, **kwargs) -> str:
    """Call fn, expect a one-line BarsError containing every part (and the file name, when given)."""
    with pytest.raises(BarsError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for part in [*parts] + ([path.name] if path is not None else []):
        assert part in message, f"{part!r} not in {message!r}"
    return message


def utc(*stamps: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(s, tz="UTC") for s in stamps]


# --------------------------------------------------------------------------- UTC offsets


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2020-03-06 16:00:00-05", "2020-03-06 21:00"),  # PostgreSQL's short offset
        ("2020-03-06T16:00:00-05:00", "2020-03-06 21:00"),
        ("2020-03-06 16:00:00+0100", "2020-03-06 15:00"),
        ("2020-03-06 16:00:00+01:00", "2020-03-06 15:00"),
        ("2020-03-06T16:00:00Z", "2020-03-06 16:00"),
        ("2020-03-06 16:00:00.500+0530", "2020-03-06 10:30:00.500"),
        ("16.03.2020 16:00:00.000-05", "2020-03-16 21:00"),  # day-first layout, parsed by the loader itself
        ("3/16/2020 16:00+0100", "2020-03-16 15:00"),  # month-first layout
    ],
)
def test_every_common_utc_offset_form(tmp_path: Path, stamp: str, expected: str) -> None:
    path = write(tmp_path, f"{HEADER}\n{stamp},1,2,0.5,1.5,3\n")
    bars = load_bars(path, required_bars=1)
    assert list(bars.index) == utc(expected)
    assert str(bars.index.dtype) == "datetime64[ns, UTC]"


def test_offset_forms_mixed_in_one_file(tmp_path: Path) -> None:
    text = f"{HEADER}\n2020-03-06 16:00:00-05,1,2,0.5,1.5,3\n2020-03-09 09:00:00+0100,1,2,0.5,1.5,3\n"
    text += "2020-03-10T09:00:00Z,1,2,0.5,1.5,3\n"
    bars = load_bars(write(tmp_path, text), required_bars=3)
    assert list(bars.index) == utc("2020-03-06 21:00", "2020-03-09 08:00", "2020-03-10 09:00")


def test_a_naive_stamp_among_short_offsets_fails(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n16.03.2020 16:00-05,1,2,0.5,1.5,3\n17.03.2020 16:00,1,2,0.5,1.5,3\n")
    raises(path, ["data row 2", "without a UTC offset", "17.03.2020 16:00"], load_bars, path, required_bars=1)


# --------------------------------------------------------------------------- epoch numbers

INSTANTS = utc("2020-03-06 21:00", "2020-03-09 13:30")
SECONDS = [int(t.timestamp()) for t in INSTANTS]


@pytest.mark.parametrize(("unit", "factor"), [("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)])
def test_epoch_numbers_are_detected_by_magnitude(tmp_path: Path, unit: str, factor: int) -> None:
    rows = "".join(f"{s * factor},1,2,0.5,1.5,3\n" for s in SECONDS)
    bars = load_bars(write(tmp_path, "timestamp,open,high,low,close,volume\n" + rows), required_bars=2)
    assert list(bars.index) == INSTANTS


def test_fractional_epoch_seconds_and_quoted_epoch_text(tmp_path: Path) -> None:
    text = f'timestamp,open,high,low,close\n{SECONDS[0]}.5,1,2,0.5,1.5\n"{SECONDS[1]}",1,2,0.5,1.5\n'
    bars = load_bars(write(tmp_path, text), required_bars=2)
    assert list(bars.index) == [INSTANTS[0] + pd.Timedelta(milliseconds=500), INSTANTS[1]]


def test_declared_epoch_unit_reads_stamps_outside_the_detection_window(tmp_path: Path) -> None:
    # 1975: before 1980, so not detected; declared as milliseconds it loads.
    millis = int(pd.Timestamp("1975-06-02", tz="UTC").timestamp() * 1000)
    path = write(tmp_path, f"time,open,high,low,close\n{millis},1,2,0.5,1.5\n")
    raises(path, ["not Unix epoch", "epoch: s|ms|us", "'%Y%m%d'"], load_bars, path, required_bars=1)
    bars = load_bars(path, required_bars=1, source=SourceOverride(epoch="ms"))
    assert list(bars.index) == utc("1975-06-02")


def test_compact_dates_are_not_taken_for_epoch_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n20170102,1,2,0.5,1.5,3\n20170103,1,2,0.5,1.5,3\n")
    raises(path, ["(20170102)", "not Unix epoch", "date_format"], load_bars, path, required_bars=1)
    bars = load_bars(path, required_bars=2, source=SourceOverride(date_format="%Y%m%d"))
    assert list(bars.index) == utc("2017-01-02", "2017-01-03")
    minutes = write(tmp_path, f"{HEADER}\n201701020930,1,2,0.5,1.5,3\n", name="M_1m.csv")  # not 1976 in ms
    raises(minutes, ["not Unix epoch"], load_bars, minutes, required_bars=1)


def test_epoch_unit_declared_for_date_text_fails(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n02.01.2017,1,2,0.5,1.5,3\n")
    raises(
        path,
        ["data row 1", "not an epoch number (ms)"],
        load_bars,
        path,
        required_bars=1,
        source=SourceOverride(epoch="ms"),
    )


def test_a_date_format_that_does_not_match_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2017-01-02,1,2,0.5,1.5,3\n02.01.2017,1,2,0.5,1.5,3\n")
    raises(
        path,
        ["data row 2", "does not match date_format '%Y-%m-%d'", "'02.01.2017'"],
        load_bars,
        path,
        required_bars=1,
        source=SourceOverride(date_format="%Y-%m-%d"),
    )


# --------------------------------------------------------------------------- compressed and zipped CSVs


def _compressed(tmp_path: Path, text: str, suffix: str) -> Path:
    path = tmp_path / f"Z_1d{suffix}"
    data = text.encode()
    if suffix == ".csv.gz":
        path.write_bytes(gzip.compress(data))
    elif suffix == ".csv.zst":
        with pa.output_stream(str(path), compression="zstd") as out:
            out.write(data)
    else:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("__MACOSX/._Z_1d.csv", b"\x00resource fork")
            archive.writestr("README.txt", "not bars")
            archive.writestr("export/Z_1d.csv", data)
    return path


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.zst", ".zip", ".csv.zip"])
def test_compressed_and_zipped_csv_load_like_the_plain_file(tmp_path: Path, suffix: str) -> None:
    text = f"{HEADER}\n{ROWS}"
    plain = load_bars(write(tmp_path, text), required_bars=2)
    path = _compressed(tmp_path, text, suffix)
    assert parse_raw_filename(path.name) == ("Z", "1d")
    pd.testing.assert_frame_equal(load_bars(path, required_bars=2), plain)
    assert plain["close"].tolist() == [1.5, 2.5]


def test_every_raw_suffix_has_a_reader(tmp_path: Path) -> None:
    text = f"{HEADER}\n{ROWS}"
    for suffix in RAW_SUFFIXES:
        if suffix == ".csv":
            path = write(tmp_path, text, "Z_1d.csv")
        elif suffix == ".parquet":
            path = tmp_path / "Z_1d.parquet"
            pd.read_csv(tmp_path / "Z_1d.csv").to_parquet(path)
        else:
            path = _compressed(tmp_path, text, suffix)
        assert len(load_bars(path, required_bars=2)) == 2, suffix


def test_a_zip_must_hold_exactly_one_csv(tmp_path: Path) -> None:
    path = tmp_path / "Z_1d.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", f"{HEADER}\n{ROWS}")
        archive.writestr("b.csv", f"{HEADER}\n{ROWS}")
    raises(path, ["exactly one .csv file", "2 .csv files (a.csv, b.csv)"], load_bars, path, required_bars=1)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "x")
    raises(path, ["no .csv file (notes.txt)"], load_bars, path, required_bars=1)


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.zst", ".zip"])
def test_corrupt_compressed_files_fail_on_one_line(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path, b"this is not compressed data at all", name=f"Z_1d{suffix}")
    raises(path, ["cannot be read as"], load_bars, path, required_bars=1)


def test_empty_compressed_csv(tmp_path: Path) -> None:
    path = _compressed(tmp_path, "", ".csv.gz")
    raises(path, ["empty file"], load_bars, path, required_bars=1)


def test_discovery_and_loader_share_one_suffix_list(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert partitions.RAW_SUFFIXES is bars_module.RAW_SUFFIXES
    raw = tmp_path / "raw"
    raw.mkdir()
    text = f"{HEADER}\n{ROWS}"
    for name, suffix in (("GZ", ".csv.gz"), ("ZST", ".csv.zst"), ("ZIP", ".zip")):
        (raw / f"{name}_1d{suffix}").write_bytes(_compressed(tmp_path, text, suffix).read_bytes())
    for name in ("BTC_1mo.csv", "ETH_1M.csv", "OLD_1d.csv.bz2", "BTC_1d.csv", ".hidden_1d.csv", "NEW_1y.csv"):
        write(raw, text, name)
    write(raw, "# notes", "SOURCES.md")
    with caplog.at_level(logging.WARNING, logger="ktrdr_assets.partitions"):
        scan = partitions.scan_raw_folder(raw)
    assert {s: (src.timeframe, src.path.name) for s, src in scan.sources.items()} == {
        "BTC": ("1d", "BTC_1d.csv"),  # sorted: BTC_1d.csv comes before BTC_1mo.csv
        "ETH": ("1M", "ETH_1M.csv"),
        "GZ": ("1d", "GZ_1d.csv.gz"),
        "ZIP": ("1d", "ZIP_1d.zip"),
        "ZST": ("1d", "ZST_1d.csv.zst"),
    }
    assert scan.ignored == {
        "BTC_1mo.csv": "symbol BTC already comes from BTC_1d.csv",
        "NEW_1y.csv": "timeframe '1y': expected a count and a unit m, h, d, w or mo (e.g. 1m 15m 1h 4h 1d 1w 1mo; "
        "1M is a month)",
        "OLD_1d.csv.bz2": "not a raw bar file kind (expected {SYMBOL}_{TIMEFRAME} and one of .csv, .csv.gz, "
        ".csv.zst, .csv.zip, .zip, .parquet)",
    }
    assert scan.reasons_for("OLD") == [f"OLD_1d.csv.bz2: {scan.ignored['OLD_1d.csv.bz2']}"]
    assert "ignoring raw file OLD_1d.csv.bz2: not a raw bar file kind" in caplog.text
    assert "SOURCES.md" not in caplog.text and ".hidden" not in caplog.text
    for source in scan.sources.values():
        assert len(load_bars(source.path, required_bars=2)) == 2


# --------------------------------------------------------------------------- timeframes


def test_monthly_timeframes() -> None:
    assert parse_timeframe("1mo") == parse_timeframe("1M") == AVERAGE_MONTH == pd.Timedelta(days=30.4375)
    assert parse_timeframe("3mo") == 3 * AVERAGE_MONTH
    assert [timeframe_months(tf) for tf in ("1mo", "1M", "3mo", "1m", "1w")] == [1, 1, 3, None, None]
    assert parse_raw_filename("BTC_1mo.csv") == ("BTC", "1mo")
    assert parse_raw_filename("SPX_1M.csv.gz") == ("SPX", "1M")
    for bad in ("1Mo", "0mo", "1mon", "mo"):
        raises(None, [repr(bad)], parse_timeframe, bad)


def _bars(stamps: list[str]) -> pd.DataFrame:
    index = pd.DatetimeIndex(stamps, tz="UTC", name="timestamp")
    return pd.DataFrame({c: 1.0 for c in ("open", "high", "low", "close", "volume")}, index=index)


@pytest.mark.parametrize(
    ("stamps", "timeframe", "missing"),
    [
        (["2024-01-01", "2024-02-01", "2024-03-01", "2024-05-01"], "1mo", 1),  # April missing
        (["2024-01-31", "2024-02-29", "2024-04-30"], "1M", 1),  # month-end stamps: March missing
        (["2023-12-31", "2024-01-31", "2024-02-29", "2024-03-31"], "1mo", 0),  # uneven month lengths, none missing
        (["2024-01-01", "2024-07-01", "2025-04-01"], "3mo", 1 + 2),  # quarters: Apr 2024; Oct 2024 and Jan 2025
        (["2024-03-25", "2024-03-28", "2024-04-01"], "1w", 0),  # Good Friday week stamped on Thursday
        (["2024-01-05", "2024-01-19", "2024-02-09"], "1w", 1 + 2),
    ],
)
def test_calendar_aware_missing_bars(stamps: list[str], timeframe: str, missing: int) -> None:
    assert bar_stats(_bars(stamps), timeframe)["missing_bars"] == missing


def test_a_monthly_file_loads_and_describes_itself(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,0.5,1.5,3\n2024-02-01,1,2,0.5,1.5,3\n"
    text += "2024-04-01,1,2,0.5,1.5,3\n"
    path = write(tmp_path, text, "BTC_1mo.csv")
    stats = bar_stats(load_bars(path, required_bars=3), parse_raw_filename(path.name)[1])
    assert (stats["bars"], stats["missing_bars"]) == (3, 1)


# --------------------------------------------------------------------------- European CSVs and sources.yaml

GERMAN = (
    "Datum;Eröffnung;Hoch;Tief;Schluss;Volumen\n"
    "02.01.2017;1.234,50;1.240,00;1.230,25;1.238,75;12.345\n"
    "13.01.2017;1.238,75;1.250,00;1.235,00;1.249,50;987\n"
)
GERMAN_COLUMNS = {"Datum": "time", "Eröffnung": "open", "Hoch": "high", "Tief": "low", "Schluss": "close"}


def test_a_german_export_loads_with_its_sources_entry(tmp_path: Path) -> None:
    path = write(tmp_path, GERMAN.encode("cp1252"), "DAX_1d.csv")
    config = tmp_path / "sources.yaml"
    config.write_text(
        "DAX_1d.csv:\n  separator: ';'\n  decimal: ','\n  thousands: '.'\n  encoding: cp1252\n"
        "  columns: {Datum: time, Eröffnung: open, Hoch: high, Tief: low, Schluss: close}\n",
        encoding="utf-8",
    )
    source = load_sources_config(config)["DAX_1d.csv"]
    loaded = load_raw_bars(path, required_bars=2, source=source)
    assert list(loaded.bars.index) == utc("2017-01-02", "2017-01-13")
    assert loaded.bars.iloc[0].tolist() == [1234.5, 1240.0, 1230.25, 1238.75, 12345.0]
    assert loaded.bars.iloc[1].tolist() == [1238.75, 1250.0, 1235.0, 1249.5, 987.0]
    assert loaded.notes == ("column 'Volumen' read as volume (the only volume-like column; none is named Volume)",)


def test_the_separator_is_detected_and_utf8_needs_no_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, GERMAN, "DAX_1d.csv")
    source = SourceOverride(decimal=",", thousands=".", columns=GERMAN_COLUMNS)
    assert load_bars(path, required_bars=2, source=source)["close"].tolist() == [1238.75, 1249.5]
    tabs = write(tmp_path, GERMAN.replace(";", "\t"), "TAB_1d.csv")
    assert load_bars(tabs, required_bars=2, source=source)["close"].tolist() == [1238.75, 1249.5]


def test_a_decimal_comma_without_thousands(tmp_path: Path) -> None:
    path = write(tmp_path, "Date;Open;High;Low;Close\n2017-01-02;1,5;2,25;0,5;1,75\n")
    assert load_bars(path, required_bars=1, source=SourceOverride(decimal=",")).iloc[0].tolist() == [
        1.5,
        2.25,
        0.5,
        1.75,
        0.0,
    ]
    raises(path, ["open is missing or not a finite number ('1,5')", "decimal"], load_bars, path, required_bars=1)


def test_a_wrong_encoding_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, GERMAN.encode("cp1252"), "DAX_1d.csv")
    raises(path, ["not valid utf-8 text", "set encoding"], load_bars, path, required_bars=1)


def test_utf16_with_a_byte_order_mark_and_a_mapped_parquet(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{ROWS}".encode("utf-16"), "U_1d.csv")  # BOM + two bytes a character
    raises(path, ["not valid utf-8 text"], load_bars, path, required_bars=1)
    assert load_bars(path, required_bars=2, source=SourceOverride(encoding="utf-16"))["close"].tolist() == [1.5, 2.5]
    frame = pd.DataFrame({"Kurs": [1.5, 2.5], "Eröffnung": [1.0, 2.0], "Hoch": [2.0, 3.0], "Tief": [0.5, 1.5]})
    frame.index = pd.DatetimeIndex(["2017-01-02", "2017-01-03"], name="Datum")
    frame.to_parquet(tmp_path / "P_1d.parquet")
    columns = {"Kurs": "close", "Eröffnung": "open", "Hoch": "high", "Tief": "low"}
    raises(tmp_path / "P_1d.parquet", ["no time column found", "Datum"], load_bars, tmp_path / "P_1d.parquet",
           required_bars=1, source=SourceOverride(columns=columns))  # fmt: skip
    source = SourceOverride(columns=columns | {"Datum": "time"})  # a named parquet index
    bars = load_bars(tmp_path / "P_1d.parquet", required_bars=2, source=source)
    assert bars.iloc[1].tolist() == [2.0, 3.0, 1.5, 2.5, 0.0]
    assert list(bars.index) == utc("2017-01-02", "2017-01-03")


def test_quoted_thousands_need_the_thousands_option(tmp_path: Path) -> None:
    text = f'{HEADER}\n2017-01-02,"1,234.5","1,240","1,230.25","1,238.75","12,345"\n'
    path = write(tmp_path, text)
    raises(path, ["open is missing or not a finite number ('1,234.5')", "thousands"], load_bars, path, required_bars=1)
    bars = load_bars(path, required_bars=1, source=SourceOverride(thousands=","))
    assert bars.iloc[0].tolist() == [1234.5, 1240.0, 1230.25, 1238.75, 12345.0]


def test_misgrouped_thousands_are_not_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, f'{HEADER}\n2017-01-02,"1,23",2,0.5,1.5,3\n')
    raises(path, ["open is missing or not a finite number ('1,23')"], load_bars, path, required_bars=1,
           source=SourceOverride(thousands=","))  # fmt: skip


def test_unquoted_thousands_give_a_field_count_message_not_a_date_one(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2017-01-02,1,2,0.5,1.5,3\n2017-01-03,1,234.5,1,240,1,230,1,238,3\n")
    message = raises(path, ["a data row has 10 fields where the header has 6", "thousands"], load_bars, path,
                     required_bars=1)  # fmt: skip
    assert "unparseable date" not in message


def test_a_mapped_date_and_time_pair(tmp_path: Path) -> None:
    text = "Tag,Zeit,Erster,Max,Min,Letzter\n02.01.2017,09:00,1,2,0.5,1.5\n02.01.2017,10:00,1,2,0.5,1.5\n"
    columns = {"Tag": "date", "Zeit": "time", "Erster": "open", "Max": "high", "Min": "low", "Letzter": "close"}
    bars = load_bars(write(tmp_path, text), required_bars=2, source=SourceOverride(columns=columns, dayfirst=True))
    assert list(bars.index) == utc("2017-01-02 09:00", "2017-01-02 10:00")


def test_a_mapping_wins_over_detected_names(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close,Last\n2017-01-02,1,2,0.5,1.5,1.25\n"
    bars = load_bars(write(tmp_path, text), required_bars=1, source=SourceOverride(columns={"Last": "close"}))
    assert bars["close"].tolist() == [1.25]


def test_a_mapped_column_the_file_lacks(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{ROWS}")
    source = SourceOverride(columns={"Schluss": "close"})
    raises(path, ["columns maps 'Schluss'", "does not have", "Close"], load_bars, path, required_bars=1, source=source)


@pytest.mark.parametrize(
    ("entry", "parts"),
    [
        ("date_format: '%Q'", ["A_1d.csv.date_format", "'Q' is a bad directive"]),
        ("date_format: '%Y-%m-%d %'", ["A_1d.csv.date_format", "stray %"]),
        ("date_format: '%s'", ["A_1d.csv.date_format", "use epoch: s"]),
        ("date_format: '%H:%M'", ["A_1d.csv.date_format", "has no year"]),
        ("epoch: seconds", ["A_1d.csv.epoch", "'s', 'ms', 'us' or 'ns'"]),
        ("{epoch: ms, timezone: Europe/Berlin}", ["A_1d.csv", "epoch numbers are UTC"]),
        ("{epoch: s, date_format: '%Y'}", ["A_1d.csv", "drop dayfirst / date_format"]),
        ("separator: ';;'", ["A_1d.csv.separator", "one character"]),
        ("decimal: ';'", ["A_1d.csv.decimal", "'.' or ','"]),
        ("thousands: x", ["A_1d.csv.thousands", "expected one of"]),
        ("{thousands: ',', decimal: ','}", ["A_1d.csv", "thousands and decimal are both ','"]),
        ("encoding: utf-42", ["A_1d.csv.encoding", "unknown encoding 'utf-42'"]),
        ("columns: {Kurs: price}", ["A_1d.csv.columns.Kurs", "'time'", "'adj_close'"]),
        ("columns: {Kurs: close, Schluss: close}", ["A_1d.csv.columns", "'Kurs' and 'Schluss' are both mapped"]),
        ("colums: {Kurs: close}", ["A_1d.csv", "unknown key 'colums'", "columns"]),
    ],
)
def test_sources_options_are_validated_naming_file_and_key(tmp_path: Path, entry: str, parts: list[str]) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(f"A_1d.csv: {entry}\n" if entry.startswith("{") else f"A_1d.csv:\n  {entry}\n")
    raises(path, parts, load_sources_config, path)


def test_csv_options_on_a_parquet_entry_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("A_1d.parquet:\n  separator: ';'\n")
    raises(path, ["A_1d.parquet.separator", "CSV files only"], load_sources_config, path)
    path.write_text("A_1d.parquet:\n  columns: {Kurs: close}\n  timezone: Europe/Berlin\n")
    assert load_sources_config(path)["A_1d.parquet"].columns == {"Kurs": "close"}


# --------------------------------------------------------------------------- volume-like headers


@pytest.mark.parametrize(
    ("header", "volume", "note"),
    [
        ("Vol.", [12.0, 13.0], "column 'Vol.' read as volume"),
        ("Volume BTC", [12.0, 13.0], "column 'Volume BTC' read as volume"),
        ("TICKVOL", [12.0, 13.0], "column 'TICKVOL' read as volume"),
        ("Volatility", [0.0, 0.0], "no volume column: volume set to 0"),
    ],
)
def test_a_single_volume_like_header_is_the_volume(tmp_path: Path, header: str, volume: list, note: str) -> None:
    text = f"Date,Open,High,Low,Close,{header}\n2017-01-02,1,2,0.5,1.5,12\n2017-01-03,1,2,0.5,1.5,13\n"
    loaded = load_raw_bars(write(tmp_path, text), required_bars=2)
    assert loaded.bars["volume"].tolist() == volume
    assert len(loaded.notes) == 1 and loaded.notes[0].startswith(note)


def test_several_volume_like_headers_are_named_in_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = "Date,Open,High,Low,Close,Volume BTC,Volume USD\n2017-01-02,1,2,0.5,1.5,12,20000\n"
    path = write(tmp_path, text)
    with caplog.at_level(logging.WARNING, logger="ktrdr_assets.core.data.bars"):
        bars = load_bars(path, required_bars=1)
    assert bars["volume"].tolist() == [0.0]
    assert "volume set to 0: several volume-like columns ('Volume BTC', 'Volume USD')" in caplog.text
    assert "columns: {'Volume BTC': volume}" in caplog.text and path.name in caplog.text
    chosen = load_bars(path, required_bars=1, source=SourceOverride(columns={"Volume USD": "volume"}))
    assert chosen["volume"].tolist() == [20000.0]


def test_a_volume_like_header_beside_volume_is_noted(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close,Volume,Volume USD\n2017-01-02,1,2,0.5,1.5,12,20000\n"
    loaded = load_raw_bars(write(tmp_path, text), required_bars=1)
    assert loaded.bars["volume"].tolist() == [12.0]
    assert loaded.notes == ("volume-like column(s) 'Volume USD' ignored: volume is 'Volume'",)


# --------------------------------------------------------------------------- bad values past Arrow's first block


def _long_file(tmp_path: Path, rows: int, bad_row: int, field: str) -> Path:
    """`rows` daily bars (several MB, so several of Arrow's 1 MB blocks); row `bad_row` (0-based) has `field` bad."""
    stamps = pd.date_range("1900-01-01", periods=rows, freq="D").strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object)
    lows = np.full(rows, "0.5000000000000000", dtype=object)
    if field == "low":
        lows[bad_row] = "abc"
    else:
        stamps[bad_row] = "2017-02-30 00:00:00"
    body = "\n".join(
        f"{s},1.0000000000000000,2.0000000000000000,{lo},1.5000000000000000,3"
        for s, lo in zip(stamps, lows, strict=True)
    )
    return write(tmp_path, f"{HEADER}\n{body}\n")


def test_a_bad_value_far_down_a_big_file_is_named(tmp_path: Path) -> None:
    path = _long_file(tmp_path, 60_000, 55_000, "low")
    assert path.stat().st_size > 4 << 20
    stamp = pd.Timestamp("1900-01-01", tz="UTC") + pd.Timedelta(days=55_000)
    raises(path, [f"{stamp.isoformat()}: low is missing or not a finite number ('abc')"], load_bars, path,
           required_bars=1)  # fmt: skip
    path = _long_file(tmp_path, 60_000, 55_000, "date")
    raises(path, ["data row 55001", "unparseable date", "'2017-02-30 00:00:00'"], load_bars, path, required_bars=1)


# --------------------------------------------------------------------------- fixed-width fast path vs general path

LAYOUTS = [
    ("%d.%m.%Y %H:%M:%S.%f", None),  # EURUSD-style, microseconds
    ("%m/%d/%Y %H:%M", None),
    ("%Y-%m-%dT%H:%M:%S", "+01:00"),
    ("%Y.%m.%d %H:%M:%S", "-0530"),
    ("%Y/%m/%d", None),
    ("%d-%m-%Y %H:%M", "-05"),
    ("%Y-%m-%d %H:%M:%S", "Z"),
]


def _general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stamps_module, "fixed_width_stamps", lambda text, decide: None)


def _spy_fast_path(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per call of the fast path, whether it took the stamps (True) or left them to the general path."""
    used: list[bool] = []
    real = stamps_module.fixed_width_stamps

    def spy(text, decide):
        result = real(text, decide)
        used.append(result is not None)
        return result

    monkeypatch.setattr(stamps_module, "fixed_width_stamps", spy)
    return used


@pytest.mark.parametrize(("fmt", "offset"), LAYOUTS)
def test_fixed_width_and_general_paths_agree_with_pandas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, offset: str | None
) -> None:
    rng = np.random.default_rng(11)
    seconds = rng.integers(pd.Timestamp("1990-01-01").value // 10**9, pd.Timestamp("2030-01-01").value // 10**9, 500)
    micros = rng.integers(0, 10**6, 500) if "%f" in fmt else np.zeros(500, dtype=np.int64)
    naive = pd.DatetimeIndex(seconds * 10**9 + micros * 1000).sort_values()
    text = naive.strftime(fmt)
    if "%d" in fmt.split("%Y")[0] or fmt.startswith("%m"):  # year-last: make sure the day/month order is provable
        text = pd.Index([naive[0].replace(day=13).strftime(fmt)]).append(text[1:])
        naive = pd.DatetimeIndex([naive[0].replace(day=13)]).append(naive[1:])
    if "%S" not in fmt:
        naive = naive.floor("min") if "%M" in fmt else naive.floor("D")
    shift = {None: "0h", "Z": "0h", "+01:00": "-1h", "-0530": "5h30min", "-05": "5h"}[offset]
    expected = (naive + pd.Timedelta(shift)).tz_localize("UTC")
    strings = [f"{stamp}{offset or ''}" for stamp in text]
    column = pa.chunked_array([strings[:200], strings[200:450], strings[450:]])  # several Arrow chunks
    path = tmp_path / "TEST_1m.csv"
    used = _spy_fast_path(monkeypatch)
    fast = stamps_module.parse_stamps(column, path, SourceOverride())
    assert used == [True]
    assert list(fast) == list(expected)
    _general_path(monkeypatch)
    assert list(stamps_module.parse_stamps(column, path, SourceOverride())) == list(expected)


@pytest.mark.parametrize(
    "stamp",
    [
        "30.02.2017 10:00",  # no such day
        "13.00.2017 10:00",  # no month 0
        "13.01.2017 24:00",
        "13.01.2017 10:60",
        "31.04.2017 10:00",
        "13.01.1600 10:00",  # outside the nanosecond range
    ],
)
def test_impossible_dates_are_named_on_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stamp: str) -> None:
    path = write(tmp_path, f"{HEADER}\n13.01.2017 09:00,1,2,0.5,1.5,3\n{stamp},1,2,0.5,1.5,3\n")
    used = _spy_fast_path(monkeypatch)
    raises(path, ["data row 2", "unparseable date", repr(stamp)], load_bars, path, required_bars=1)
    assert used == [True]
    _general_path(monkeypatch)
    raises(path, ["data row 2", "unparseable date", repr(stamp)], load_bars, path, required_bars=1)
