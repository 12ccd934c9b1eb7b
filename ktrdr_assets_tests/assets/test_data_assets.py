"""The data half of the graph, materialized in-process through Dagster for the three real symbols.

One module-scoped fixture materializes the seven data assets of EURUSD, AAPL and MSFT into the
module's own warehouse; the tests read what Dagster stored and the metadata it recorded. Bad raw
files and bad strategies then re-run single assets against that warehouse and must fail with a
one-line message while the last good output stays byte for byte in place.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from ktrdr_assets.core.data.signals import Signal
from ktrdr_assets.core.data.splits import LABEL, TemporalSplits, verify_splits
from ktrdr_assets.io import read_asset
from ktrdr_assets.paths import raw_dir, warehouse_dir
from ktrdr_assets_tests.helpers import (
    DATA_ASSETS,
    SHIPPED_STRATEGY,
    materialized,
    restored,
    run_job,
    step_errors,
    write_strategy,
)

DATA_CHECKS = {
    ("ohlcv", "ohlcv_valid"),
    ("fuzzy_memberships", "fuzzy_sets_cover_indicators"),
    ("zigzag_labels", "labels_not_single_class"),
    ("temporal_splits", "splits_chronological_purged"),
    ("augmented_train_set", "augmented_class_shares"),
}
SYMBOLS = ("EURUSD", "AAPL", "MSFT")
#: Bars in the shipped files (data/README.md) and how to read each file independently of core.bars.
RAW = {
    "EURUSD": ("EURUSD_1h.csv", 6225, "Time", "%d.%m.%Y %H:%M:%S.%f", None),
    "AAPL": ("AAPL_1d.csv", 3270, "Date", "%Y-%m-%d", "Adj Close"),
    "MSFT": ("MSFT_1d.csv", 3270, "Date", "%Y-%m-%d", "Adj Close"),
}
#: MSFT's train part (~2,200 rows) is below this threshold, so it is augmented (2x); the others are not.
SMALL_TRAIN_OVERRIDE = {"MSFT": {"augmentation": {"size_threshold": 100_000}}}


# --------------------------------------------------------------------------- fixtures
@dataclass
class DataRuns:
    warehouse: Path
    strategy: Path
    results: dict[str, dg.ExecuteInProcessResult]


@pytest.fixture(scope="module")
def data_runs(module_dir: Path) -> DataRuns:
    """The seven data assets of every symbol, materialized once into this module's warehouse."""
    strategy = write_strategy(module_dir / "strategy.yaml", symbol_overrides=SMALL_TRAIN_OVERRIDE)
    results = {s: run_job(strategy, s, DATA_ASSETS) for s in SYMBOLS}
    return DataRuns(warehouse_dir(), strategy, results)


@pytest.fixture
def aapl_raw(data_runs: DataRuns) -> Iterator[Path]:
    """The session's raw AAPL file, restored byte for byte (and its times) after the test rewrites or moves it."""
    with restored(raw_dir() / "AAPL_1d.csv") as path:
        yield path


# --------------------------------------------------------------------------- 1. the seven assets
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_data_assets_materialize_with_passing_checks(data_runs: DataRuns, symbol: str) -> None:
    result = data_runs.results[symbol]
    assert result.success, step_errors(result)
    assert set(materialized(result)) == set(DATA_ASSETS)
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert set(checks) == DATA_CHECKS
    assert all(checks.values()), checks


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_ohlcv_is_the_raw_file_as_clean_utc_float_bars(data_runs: DataRuns, symbol: str) -> None:
    name, bars, time_column, time_format, adj_close = RAW[symbol]
    stored = read_asset("ohlcv", symbol)
    assert list(stored.columns) == ["open", "high", "low", "close", "volume"]
    assert (stored.dtypes == np.float64).all()
    assert isinstance(stored.index, pd.DatetimeIndex) and str(stored.index.tz) == "UTC"
    assert stored.index.is_monotonic_increasing and stored.index.is_unique
    # Independent read of the shipped file: same stamps, and closes split-adjusted where Adj Close exists.
    raw = pd.read_csv(raw_dir() / name)
    stamps = pd.to_datetime(raw[time_column], format=time_format, utc=True)
    assert len(stored) == len(raw) == bars
    assert (stored.index == pd.DatetimeIndex(stamps)).all()
    np.testing.assert_allclose(stored["close"].to_numpy(), raw[adj_close or "Close"].to_numpy(), rtol=1e-12)
    ratio = raw[adj_close] / raw["Close"] if adj_close else 1.0
    np.testing.assert_allclose(stored["volume"].to_numpy(), (raw["Volume"] / ratio).to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_features_are_complete_and_labelled(data_runs: DataRuns, symbol: str) -> None:
    features = read_asset("features", symbol)
    ohlcv = read_asset("ohlcv", symbol)
    assert LABEL in features.columns
    assert not features.isna().any().any()
    assert set(features[LABEL].unique()) == {s.value for s in Signal}
    assert features.index.isin(ohlcv.index).all() and features.index.is_monotonic_increasing
    meta = materialized(data_runs.results[symbol])["features"]
    assert meta["rows"].value == len(features)
    assert meta["feature_count"].value == features.shape[1] - 1
    assert meta["feature_names"].value == [c for c in features.columns if c != LABEL]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_temporal_splits_are_chronological_with_purge_gap(data_runs: DataRuns, symbol: str) -> None:
    splits = read_asset("temporal_splits", symbol)
    features = read_asset("features", symbol)
    assert isinstance(splits, TemporalSplits)
    assert verify_splits(splits) == []
    lookahead = {"EURUSD": 24}.get(symbol, 20)  # the strategy's zigzag lookahead for this symbol
    assert splits.lookahead == lookahead and splits.purge_bars >= lookahead
    # Gaps measured on the features frame, independently of the recorded row positions.
    position = {ts: i for i, ts in enumerate(features.index)}
    parts = [splits.train, splits.validation, splits.test]
    for before, after in pairwise(parts):
        assert before.index.max() < after.index.min()
        assert position[after.index[0]] - position[before.index[-1]] - 1 >= lookahead
    assert sum(len(p) for p in parts) == len(features) - 2 * splits.purge_bars
    assert splits.train.index[0] == features.index[0] and splits.test.index[-1] == features.index[-1]
    # Scaling touches the features only: the labels are the features frame's.
    assert (splits.train[LABEL].to_numpy() == features[LABEL].loc[splits.train.index].to_numpy()).all()
    meta = materialized(data_runs.results[symbol])["temporal_splits"]
    assert [meta[f"{p}_rows"].value for p in ("train", "validation", "test")] == [len(p) for p in parts]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_augmented_train_set_only_grows_a_small_train_part(data_runs: DataRuns, symbol: str) -> None:
    splits = read_asset("temporal_splits", symbol)
    augmented = read_asset("augmented_train_set", symbol)
    train = splits.train
    names = splits.feature_names
    originals = augmented[~augmented["synthetic"]]
    assert not augmented[names].isna().any().any()
    pd.testing.assert_frame_equal(originals[[*names, LABEL]], train, check_dtype=False)
    if symbol == "MSFT":  # 100 000 > train rows >= triple_below: doubled, class shares kept
        assert len(augmented) == 2 * len(train)
        original = train[LABEL].value_counts(normalize=True).sort_index()
        grown = augmented[LABEL].value_counts(normalize=True).sort_index()
        assert np.abs(grown - original).max() <= 0.05
        assert augmented.index[len(train) :].isna().all()
    else:
        assert len(augmented) == len(train)
    meta = materialized(data_runs.results[symbol])["augmented_train_set"]
    assert meta["rows"].value == len(augmented)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_metadata_has_row_counts_previews_and_class_balance(data_runs: DataRuns, symbol: str) -> None:
    meta = materialized(data_runs.results[symbol])
    for asset in ("ohlcv", "indicators", "fuzzy_memberships", "zigzag_labels", "features", "augmented_train_set"):
        stored = read_asset(asset, symbol)
        assert meta[asset]["rows"].value == len(stored), asset
        preview = meta[asset]["preview"]
        assert isinstance(preview, dg.MarkdownMetadataValue), asset
        assert str(stored.columns[0]) in preview.value, asset
        assert Path(meta[asset]["path"].value).is_file(), asset
    labels = read_asset("zigzag_labels", symbol)[LABEL]
    balance = meta["zigzag_labels"]["class_balance"].value
    for signal in Signal:
        assert f"| {signal.name} | {int((labels == signal.value).sum())} |" in balance
    summary = meta["temporal_splits"]["summary"].value
    splits = read_asset("temporal_splits", symbol)
    assert summary["train"]["class_counts"]["BUY"] == int((splits.train[LABEL] == Signal.BUY).sum())
    assert meta["ohlcv"]["stats"].value["bars"] == RAW[symbol][1]


# --------------------------------------------------------------------------- 2. bad raw files
def _raw_frame() -> pd.DataFrame:
    return pd.read_csv(raw_dir() / "AAPL_1d.csv", dtype={"Date": str})


def _edit(frame: pd.DataFrame, row: int, **values) -> pd.DataFrame:
    frame = frame.copy()
    for column, value in values.items():
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    return frame


def _ambiguous(frame: pd.DataFrame) -> pd.DataFrame:
    """Only days 1..12, written m/d/Y: no field proves the day/month order."""
    dates = pd.to_datetime(frame["Date"])
    kept = frame[dates.dt.day <= 12].copy()
    kept["Date"] = dates[dates.dt.day <= 12].dt.strftime("%m/%d/%Y")
    return kept


def _unquoted_thousands(frame: pd.DataFrame) -> str:
    """The file with one volume written with an unquoted thousands separator (one field too many)."""
    lines = frame.to_csv(index=False).splitlines()
    cells = lines[5].split(",")
    cells[6] = f"{int(cells[6]) // 1000},{int(cells[6]) % 1000:03d}"
    lines[5] = ",".join(cells)
    return "\n".join(lines) + "\n"


BAD_FILES = {
    "empty": (lambda f: "", "empty file"),
    "header_only": (lambda f: f.iloc[:0].to_csv(index=False), "header only, no bars"),
    "missing_close": (lambda f: f.drop(columns="Close").to_csv(index=False), "missing column(s) close"),
    "unparseable_date": (lambda f: _edit(f, 5, Date="2000-03-xx").to_csv(index=False), "unparseable date"),
    "ambiguous_dates": (lambda f: _ambiguous(f).to_csv(index=False), "ambiguous date order"),
    "conflicting_duplicate": (
        lambda f: pd.concat([f, _edit(f.iloc[[7]], 7, Close=1.0)]).to_csv(index=False),
        "conflicting duplicate bars",
    ),
    "negative_price": (lambda f: _edit(f, 9, Low=-1.0).to_csv(index=False), "non-positive price"),
    "high_below_low": (lambda f: _edit(f, 9, High=1.0, Low=2.0).to_csv(index=False), "high below low"),
    "nan_row": (lambda f: _edit(f, 11, Close="").to_csv(index=False), "close is missing or not a finite number"),
    "shorter_than_warmup": (lambda f: f.iloc[:60].to_csv(index=False), "only 60 bars, fewer than required_bars"),
    "unquoted_thousands": (lambda f: _unquoted_thousands(f), "a data row has 9 fields where the header has 8"),
    "quoted_thousands": (lambda f: _edit(f, 4, Volume="2,779,100").to_csv(index=False), "('2,779,100'); a thousands"),
    "compact_dates": (
        lambda f: f.assign(Date=f["Date"].str.replace("-", "")).to_csv(index=False),
        "not Unix epoch",
    ),
}


def _failure(result: dg.ExecuteInProcessResult, step: str) -> str:
    """The description of the `dagster.Failure` a step raised for a user's bad file: one line, no chained cause."""
    event = next(e for e in result.all_events if e.is_step_failure and e.step_key == step)
    data = event.event_specific_data
    assert data.user_failure_data is not None, data.error.to_string()
    assert data.error.cls_name == "Failure" and data.error.cause is None
    assert data.user_failure_data.description in data.error.message
    return data.user_failure_data.description


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_raw_file_fails_ohlcv_and_keeps_the_last_good_output(
    data_runs: DataRuns, aapl_raw: Path, case: str
) -> None:
    make, problem = BAD_FILES[case]
    stored = warehouse_dir() / "ohlcv" / "AAPL.parquet"
    before = stored.read_bytes()
    aapl_raw.write_text(make(_raw_frame()))

    result = run_job(data_runs.strategy, "AAPL", ["ohlcv"])

    assert not result.success
    message = _failure(result, "ohlcv")
    assert "\n" not in message
    assert message.startswith(f"{aapl_raw}:") and problem in message, message
    assert stored.read_bytes() == before
    assert not [p.name for p in stored.parent.iterdir() if p.name.startswith(".")]  # no temp file left


# --------------------------------------------------------------------------- 2b. bad strategies
def _shipped_indicators(**replace: str) -> list[dict]:
    """The shipped indicator list with `{indicator name: new function}` swapped in."""
    indicators = yaml.safe_load(SHIPPED_STRATEGY.read_text())["indicators"]
    return [dict(spec, function=replace.get(spec["name"], spec["function"])) for spec in indicators]


BAD_STRATEGIES = {
    "unknown_indicator": (
        {"indicators": _shipped_indicators(adx_14="ADXX")},
        ["indicators.5.function", "unknown indicator 'ADXX'"],
    ),
    "misspelled_key": (
        {"labels": {"zigzag": {"treshold": 0.05}}},
        ["labels.zigzag.treshold", "unknown key"],
    ),
    "triangular_a_above_b": (
        {"fuzzy_sets": {"rsi_14": {"neutral": {"type": "triangular", "parameters": [60, 50, 70]}}}},
        ["fuzzy_sets.rsi_14.neutral", "a <= b <= c"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_STRATEGIES))
def test_bad_strategy_fails_the_asset_naming_file_and_key(data_runs: DataRuns, tmp_path: Path, case: str) -> None:
    sections, expected = BAD_STRATEGIES[case]
    strategy = write_strategy(tmp_path / f"{case}.yaml", **sections)
    stored = warehouse_dir() / "ohlcv" / "MSFT.parquet"
    before = stored.read_bytes()

    result = run_job(strategy, "MSFT", ["ohlcv"])

    assert not result.success
    message = step_errors(result)["ohlcv"]
    assert message.startswith("ktrdr_assets.core.config.errors.StrategyError: ")
    assert "\n" not in message
    assert str(strategy) in message
    for part in expected:
        assert part in message, message
    assert stored.read_bytes() == before


def test_missing_raw_file_names_the_symbol_and_keeps_output(data_runs: DataRuns, aapl_raw: Path) -> None:
    stored = warehouse_dir() / "ohlcv" / "AAPL.parquet"
    before = stored.read_bytes()
    moved = aapl_raw.with_name("AAPL_1d.csv.bz2")  # a kind the loader does not read
    shutil.move(aapl_raw, moved)
    try:
        result = run_job(data_runs.strategy, "AAPL", ["ohlcv"])
    finally:
        shutil.move(moved, aapl_raw)
    message = _failure(result, "ohlcv")
    assert "no raw bar file for symbol 'AAPL'" in message
    assert "(AAPL_1d.csv.bz2: not a raw bar file kind" in message and "\n" not in message
    assert stored.read_bytes() == before


def test_a_bug_in_the_loader_keeps_its_traceback(data_runs: DataRuns, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a user's bad file becomes a one-line Failure; anything else is a bug and fails with its stack."""
    from ktrdr_assets.assets import data as data_assets

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug, not a bad file")

    monkeypatch.setattr(data_assets, "load_raw_bars", broken)
    result = run_job(data_runs.strategy, "MSFT", ["ohlcv"])
    assert step_errors(result)["ohlcv"] == "ZeroDivisionError: a bug, not a bad file"
    event = next(e for e in result.all_events if e.is_step_failure)
    assert event.event_specific_data.user_failure_data is None
    error = event.event_specific_data.error
    while error.cause is not None:
        error = error.cause
    assert any("in broken" in frame for frame in error.stack)


def test_a_european_export_loads_through_sources_yaml_like_the_original(
    data_runs: DataRuns, aapl_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AAPL rewritten as a German export (';', decimal comma, thousands dots, cp1252, German headers, day-first
    dates): with its sources.yaml entry the stored bars equal the original's; a file that is not a partition
    is listed in the metadata with its reason."""
    original = read_asset("ohlcv", "AAPL")
    frame = _raw_frame().drop(columns="Ticker")
    frame["Date"] = pd.to_datetime(frame["Date"]).dt.strftime("%d.%m.%Y")
    frame.columns = ["Datum", "Eröffnung", "Hoch", "Tief", "Schluss", "Volumen", "Schluss bereinigt"]
    text = frame.to_csv(index=False, sep=";", decimal=",", float_format="%.12f")
    text = text.replace(";9616100;", ";9.616.100;")  # one volume with thousands marks (day 1)
    aapl_raw.write_bytes(text.encode("cp1252"))
    sources = tmp_path / "sources.yaml"
    columns = "{Datum: time, Eröffnung: open, Hoch: high, Tief: low, Schluss: close, Schluss bereinigt: adj_close}"
    sources.write_text(
        f"AAPL_1d.csv:\n  dayfirst: true\n  decimal: ','\n  thousands: '.'\n  encoding: cp1252\n  columns: {columns}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("KTRDR_SOURCES_CONFIG", str(sources))
    ignored = raw_dir() / "ZZZ_1y.csv"
    ignored.write_text("Date,Open,High,Low,Close\n")
    try:
        result = run_job(data_runs.strategy, "AAPL", ["ohlcv"])
    finally:
        ignored.unlink()
    assert result.success, step_errors(result)
    stored = read_asset("ohlcv", "AAPL")
    assert (stored.index == original.index).all()
    np.testing.assert_allclose(stored.to_numpy(), original.to_numpy(), rtol=1e-9)
    meta = materialized(result)["ohlcv"]
    assert meta["loader_notes"].value == [
        "column 'Volumen' read as volume (the only volume-like column; none is named Volume)"
    ]
    assert meta["ignored_raw_files"].value == {
        "ZZZ_1y.csv": "timeframe '1y': expected a count and a unit m, h, d, w or mo (e.g. 1m 15m 1h 4h 1d 1w 1mo; "
        "1M is a month)"
    }
