"""Partition keys (symbols) and the warehouse IO manager: unsafe keys never reach a path, every
write is atomic (a crash mid-write keeps the previous version and leaves no temp file), and what is
stored loads back as it was."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ktrdr_assets.core.config.schema import SplitConfig
from ktrdr_assets.core.data.splits import LABEL, TemporalSplits, temporal_split
from ktrdr_assets.definitions import defs
from ktrdr_assets.io import WarehouseIOManager, asset_path, read_asset
from ktrdr_assets.partitions import (
    PartitionKeyError,
    RawSource,
    discover_sources,
    source_for,
    symbol_partitions,
    validate_symbol,
)
from ktrdr_assets_tests.synthetic_symbols import ALL_SYMBOLS

UNSAFE_KEYS = [
    "../../etc",
    "..",
    "../AAPL",
    "AAPL/..",
    "a/b",
    "/etc/passwd",
    "a\\b",
    "",
    ".hidden",
    "a..b",
    "AAPL\n",
    " AAPL",
    "C:x",
    "x" * 65,
]


# --------------------------------------------------------------------------- partition keys
def test_partitions_are_the_raw_files(instance: dg.DagsterInstance) -> None:
    """Dynamic partitions: the raw files registered in the instance (here by the `instance` fixture): the
    shipped files plus the two synthetic ones conftest.py writes into the session's raw folder."""
    assert symbol_partitions.get_partition_keys(dynamic_partitions_store=instance) == list(ALL_SYMBOLS)
    assert set(ALL_SYMBOLS) == {"AAPL", "EURUSD", "MSFT", "NOEDGE", "PLANTED"}


@pytest.mark.parametrize("key", ["EURUSD", "BRK.B", "ES-F_1", "x" * 64])
def test_validate_symbol_accepts_plain_symbols(key: str) -> None:
    assert validate_symbol(key) == key


@pytest.mark.parametrize("key", [*UNSAFE_KEYS, None, 7])
def test_validate_symbol_rejects_unsafe_keys(key) -> None:
    with pytest.raises(PartitionKeyError, match="invalid partition key"):
        validate_symbol(key)


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_no_path_is_built_from_an_unsafe_key(tmp_path: Path, key: str) -> None:
    with pytest.raises(PartitionKeyError, match="invalid partition key"):
        asset_path(tmp_path, dg.AssetKey("ohlcv"), key, ".parquet")
    with pytest.raises(PartitionKeyError):
        source_for(key)
    with pytest.raises(PartitionKeyError):
        read_asset("ohlcv", key, root=tmp_path)


def test_asset_path_never_escapes_the_root(tmp_path: Path) -> None:
    """Random keys over an alphabet rich in path syntax: each is refused or lands in root/<asset>/."""
    rng = np.random.default_rng(7)
    alphabet = np.array(list("aZ9._-/\\ :~$\x00"))
    root = tmp_path.resolve()
    accepted = 0
    for _ in range(3000):
        key = "".join(rng.choice(alphabet, size=rng.integers(1, 8)))
        try:
            path = asset_path(root, dg.AssetKey("ohlcv"), key, ".parquet")
        except PartitionKeyError:
            continue
        accepted += 1
        assert path.resolve().parent == root / "ohlcv", key
        assert path.name == f"{key}.parquet"
    assert accepted > 100  # the property was exercised on keys that pass validation


def test_source_for_an_unknown_symbol_lists_the_known_ones() -> None:
    known = r"\['AAPL', 'EURUSD', 'MSFT', 'NOEDGE', 'PLANTED'\]"
    with pytest.raises(PartitionKeyError, match=rf"no raw bar file for symbol 'ZZZZ' .*{known}"):
        source_for("ZZZZ")


def test_dagster_refuses_a_partition_that_is_not_a_symbol() -> None:
    job = defs.resolve_job_def("materialize_symbol")
    with pytest.raises(dg.DagsterUnknownPartitionError, match=r"\.\./\.\./etc"):
        job.execute_in_process(partition_key="../../etc", instance=dg.DagsterInstance.ephemeral())


def test_discover_sources_keeps_only_well_named_bar_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("GOOD_1d.csv", "GOOD_1h.parquet", "bad name_1d.csv", "A..B_1d.csv", "NOTF.csv", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "DIR_1d.csv").mkdir()
    with caplog.at_level(logging.WARNING, logger="ktrdr_assets.partitions"):
        sources = discover_sources(tmp_path)
    assert sources == {"GOOD": RawSource("GOOD", "1d", tmp_path / "GOOD_1d.csv")}
    ignored = " ".join(r.getMessage() for r in caplog.records)
    for name in ("GOOD_1h.parquet", "bad name_1d.csv", "A..B_1d.csv", "NOTF.csv"):
        assert f"ignoring raw file {name}" in ignored


# --------------------------------------------------------------------------- IO manager
def _frame(seed: int = 0) -> pd.DataFrame:
    index = pd.date_range("2020-01-01", periods=100, freq="D", tz="UTC", name="timestamp")
    values = np.random.default_rng(seed).normal(size=(100, 2))
    return pd.DataFrame({"f1": values[:, 0], "f2": values[:, 1], LABEL: np.arange(100) % 3}, index=index)


def _splits(seed: int = 0) -> TemporalSplits:
    return temporal_split(_frame(seed), ["f1", "f2"], SplitConfig(), lookahead=2)


def _out(asset: str, symbol: str | None = "AAPL") -> dg.OutputContext:
    return dg.build_output_context(asset_key=dg.AssetKey(asset), partition_key=symbol)


def _in(asset: str, symbol: str | None = "AAPL") -> dg.InputContext:
    return dg.build_input_context(asset_key=dg.AssetKey(asset), partition_key=symbol)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones included) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def manager(tmp_path: Path) -> WarehouseIOManager:
    return WarehouseIOManager(root=str(tmp_path))


def test_round_trip_of_frames_bundles_and_dicts(manager: WarehouseIOManager, tmp_path: Path) -> None:
    frame, splits, record = _frame(), _splits(), {"accuracy": 0.5, "classes": ["SELL", "BUY"]}
    manager.handle_output(_out("features"), frame)
    manager.handle_output(_out("temporal_splits"), splits)
    manager.handle_output(_out("model_selection", None), record)

    assert (tmp_path / "features" / "AAPL.parquet").is_file()
    assert (tmp_path / "temporal_splits" / "AAPL" / "train.parquet").is_file()
    assert (tmp_path / "model_selection" / "all.json").is_file()
    pd.testing.assert_frame_equal(manager.load_input(_in("features")), frame, check_freq=False)
    loaded = manager.load_input(_in("temporal_splits"))
    assert isinstance(loaded, TemporalSplits) and loaded.feature_names == ["f1", "f2"]
    for part, expected in splits.parts().items():
        pd.testing.assert_frame_equal(loaded.parts()[part], expected, check_freq=False)
    assert manager.load_input(_in("model_selection", None)) == record
    pd.testing.assert_frame_equal(read_asset("features", "AAPL", root=tmp_path), frame, check_freq=False)


def test_unknown_objects_and_missing_materializations_are_clear_errors(manager: WarehouseIOManager) -> None:
    with pytest.raises(TypeError, match="features: cannot store a list"):
        manager.handle_output(_out("features"), [1, 2])
    with pytest.raises(FileNotFoundError, match="features has no materialization for 'MSFT'.*materialize it first"):
        manager.load_input(_in("features", "MSFT"))


def test_a_bundle_of_a_foreign_type_is_refused(manager: WarehouseIOManager, tmp_path: Path) -> None:
    manager.handle_output(_out("temporal_splits"), _splits())
    (tmp_path / "temporal_splits" / "AAPL" / "bundle_type.txt").write_text("os:system")
    with pytest.raises(ValueError, match="refusing to load a bundle of foreign type os:system"):
        manager.load_input(_in("temporal_splits"))


class _Crash(Exception):
    pass


@pytest.mark.parametrize("crash", [_Crash, KeyboardInterrupt])
def test_crash_while_writing_a_frame_keeps_the_previous_file(
    manager: WarehouseIOManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: type[BaseException]
) -> None:
    manager.handle_output(_out("features"), _frame(0))
    before = _snapshot(tmp_path)

    def half_written(self: pd.DataFrame, path, *args, **kwargs) -> None:
        Path(path).write_bytes(b"PAR1 half a parquet file")
        raise crash("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_written)
    with pytest.raises(crash, match="disk full"):
        manager.handle_output(_out("features"), _frame(1))
    monkeypatch.undo()

    assert _snapshot(tmp_path) == before  # same file, same bytes, nothing else (no temp file)
    pd.testing.assert_frame_equal(manager.load_input(_in("features")), _frame(0), check_freq=False)


def test_crash_while_writing_a_bundle_keeps_the_previous_folder(
    manager: WarehouseIOManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.handle_output(_out("temporal_splits"), _splits(0))
    before = _snapshot(tmp_path)
    real_to_dir = TemporalSplits.to_dir

    def half_written(self: TemporalSplits, path) -> None:
        real_to_dir(self, path)
        (Path(path) / "meta.json").write_text("{")
        raise _Crash("killed")

    monkeypatch.setattr(TemporalSplits, "to_dir", half_written)
    with pytest.raises(_Crash):
        manager.handle_output(_out("temporal_splits"), _splits(1))
    monkeypatch.undo()

    assert _snapshot(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / "temporal_splits").iterdir()) == ["AAPL"]
    pd.testing.assert_frame_equal(manager.load_input(_in("temporal_splits")).train, _splits(0).train, check_freq=False)


def test_crash_while_writing_json_keeps_the_previous_file(
    manager: WarehouseIOManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.handle_output(_out("model_selection"), {"selected_model": "XGBoost"})
    before = _snapshot(tmp_path)

    def half_written(self: Path, data: bytes) -> int:
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise _Crash("power cut")

    monkeypatch.setattr(Path, "write_bytes", half_written)
    with pytest.raises(_Crash):
        manager.handle_output(_out("model_selection"), {"selected_model": "LSTM", "pad": "x" * 1000})
    monkeypatch.undo()

    assert _snapshot(tmp_path) == before
    assert manager.load_input(_in("model_selection")) == {"selected_model": "XGBoost"}
