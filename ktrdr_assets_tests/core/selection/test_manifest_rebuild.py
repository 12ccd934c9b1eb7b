"""Manifest rebuilds: serialized (a forced interleaving of two rebuilds loses nothing), idempotent (an attempt
keeps the time its selection was made), per-symbol criteria, and retirement of symbols whose file is gone."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.selection import manifest_lock
from ktrdr_assets.core.selection.manifest import next_manifest, retire_symbols, selection_criteria
from ktrdr_assets.core.selection.manifest_lock import (
    ManifestInputs,
    ManifestLockTimeout,
    file_lock,
    lock_path,
    rebuild_manifest,
)

GATES = GatesConfig()
STRICT = GatesConfig(min_accuracy=0.99)


def _good(model: str, accuracy: float = 0.7) -> dict:
    return {"selected_model": model, "test_accuracy": accuracy, "train_val_gap": 0.1, "reason": "Best score"}


NONE = {"selected_model": None, "reason": "No models met quality criteria", "action": "MANUAL_REVIEW_REQUIRED"}


# --------------------------------------------------------------------------- forced interleaving
def test_a_forced_interleaving_of_two_rebuilds_loses_nothing(tmp_path: Path) -> None:
    """Rebuild A reads the selections (AAPL old, MSFT v1), then stalls before writing. Meanwhile MSFT gets a
    new selection and rebuild B starts. Unserialized, B would write MSFT v2 and A would then write its older
    view last (a lost update). Serialized, B reads only after A has written, so the last write holds v2."""
    path = tmp_path / "deployment_manifest" / "all.json"
    store = {"AAPL": _good("XGBoost"), "MSFT": _good("RandomForest", 0.6)}
    a_has_read, b_started, b_done = threading.Event(), threading.Event(), threading.Event()

    def read_a() -> ManifestInputs:
        inputs = ManifestInputs(frozenset(store), json.loads(json.dumps(store)))
        a_has_read.set()
        b_started.wait(5)
        b_done.wait(1.0)  # unserialized, B finishes in this window; serialized, B is still waiting for the lock
        return inputs

    def read_b() -> ManifestInputs:
        return ManifestInputs(frozenset(store), json.loads(json.dumps(store)))

    def rebuild_a() -> None:
        rebuild_manifest(path, read_a, GATES)

    def rebuild_b() -> None:
        a_has_read.wait(5)
        store["MSFT"] = _good("LSTM", 0.8)  # the newer selection, written after A read
        b_started.set()
        rebuild_manifest(path, read_b, GATES)
        b_done.set()

    threads = [threading.Thread(target=rebuild_a), threading.Thread(target=rebuild_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    final = json.loads(path.read_text())
    assert final["selections"]["MSFT"]["selected_model"] == "LSTM"
    assert final["selections"]["AAPL"]["selected_model"] == "XGBoost"


def test_without_the_lock_the_same_interleaving_loses_the_update(tmp_path: Path, monkeypatch) -> None:
    """The test above is not vacuous: with the lock disabled, the same schedule drops MSFT's new selection."""

    class NoLock:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(manifest_lock, "file_lock", NoLock)
    with pytest.raises(AssertionError, match="LSTM"):
        test_a_forced_interleaving_of_two_rebuilds_loses_nothing(tmp_path)


def test_the_lock_excludes_across_open_files_and_times_out(tmp_path: Path) -> None:
    target = lock_path(tmp_path / "all.json")
    assert target.name == ".all.json.lock"
    with file_lock(target):
        started = time.monotonic()
        with pytest.raises(ManifestLockTimeout, match="more than 0.2 s"), file_lock(target, timeout_s=0.2):
            pass
        assert time.monotonic() - started >= 0.2
    with file_lock(target, timeout_s=0.2):  # released
        pass


# --------------------------------------------------------------------------- attempt times, criteria
def test_rebuilding_from_the_same_selections_does_not_restamp_the_attempt() -> None:
    """A stale entry's `last_attempt.attempted_at` is when the failed selection was made, whatever the
    number of rebuilds after it (it used to be restamped with every rebuild's time)."""
    first = next_manifest(
        None, {"AAPL": _good("XGBoost")}, GATES, active={"AAPL"}, attempted_at={"AAPL": "t1"}, timestamp="t1"
    )
    failed = next_manifest(first, {"AAPL": NONE}, GATES, active={"AAPL"}, attempted_at={"AAPL": "t2"}, timestamp="t3")
    again = next_manifest(failed, {"AAPL": NONE}, GATES, active={"AAPL"}, attempted_at={"AAPL": "t2"}, timestamp="t9")
    for manifest in (failed, again):
        entry = manifest["selections"]["AAPL"]
        assert entry["stale"] is True and entry["selected_model"] == "XGBoost"
        assert entry["last_attempt"]["attempted_at"] == "t2"
        assert entry["stale_since"] == "t2"
    assert again["selections"] == failed["selections"]
    later = next_manifest(again, {"AAPL": NONE}, GATES, active={"AAPL"}, attempted_at={"AAPL": "t5"})
    assert later["selections"]["AAPL"]["last_attempt"]["attempted_at"] == "t5"
    assert later["selections"]["AAPL"]["stale_since"] == "t2"  # the first failure


def test_each_entry_carries_its_own_symbols_criteria() -> None:
    selections = {
        "AAPL": {**_good("XGBoost"), "selection_criteria": selection_criteria(STRICT)},
        "MSFT": {**_good("LSTM"), "selection_criteria": selection_criteria(GATES)},
    }
    manifest = next_manifest(None, selections, GATES, active={"AAPL", "MSFT"}, attempted_at={})
    assert manifest["selections"]["AAPL"]["selection_criteria"]["min_oof_accuracy"] == 0.99
    assert manifest["selections"]["MSFT"]["selection_criteria"]["min_oof_accuracy"] == GATES.min_accuracy
    assert manifest["selection_criteria"] == selection_criteria(GATES)  # the base gates, for reference


# --------------------------------------------------------------------------- retirement
def test_a_symbol_without_raw_file_is_retired_with_its_date_and_comes_back_when_its_file_does() -> None:
    both = next_manifest(
        None,
        {"AAPL": _good("XGBoost"), "GONE": NONE},
        GATES,
        active={"AAPL", "GONE"},
        attempted_at={},
        timestamp="t1",
    )
    assert both["summary"]["manual_review_needed"] == 1
    retired = next_manifest(both, {"AAPL": _good("XGBoost")}, GATES, active={"AAPL"}, attempted_at={}, timestamp="t2")
    assert list(retired["selections"]) == ["AAPL"]
    assert retired["retired"] == {"GONE": {"retired_at": "t2", "last_entry": NONE}}
    assert retired["summary"]["manual_review_needed"] == 0 and retired["summary"]["retired_symbols"] == 1
    still = next_manifest(retired, {"AAPL": _good("XGBoost")}, GATES, active={"AAPL"}, attempted_at={}, timestamp="t3")
    assert still["retired"]["GONE"]["retired_at"] == "t2"  # the first date is kept
    back = next_manifest(still, {"GONE": _good("LSTM")}, GATES, active={"AAPL", "GONE"}, attempted_at={})
    assert back["retired"] == {} and back["selections"]["GONE"]["selected_model"] == "LSTM"


def test_retire_symbols_ignores_selections_of_inactive_symbols() -> None:
    kept, retired = retire_symbols({"selections": {"A": NONE}, "retired": {}}, active=set(), retired_at="t")
    assert kept["selections"] == {} and set(retired) == {"A"}
    manifest = next_manifest(kept, {"A": _good("LSTM")}, GATES, active=set(), attempted_at={})
    assert manifest["selections"] == {}  # a selection file left behind does not bring it back
