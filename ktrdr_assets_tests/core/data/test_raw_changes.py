"""The raw-data sensor's bookkeeping: content hashes re-read only for files that changed on disk, and the plan
of new / changed / retired symbols."""

from __future__ import annotations

import os
from pathlib import Path

from ktrdr_assets.core.data import raw_changes
from ktrdr_assets.core.data.raw_changes import (
    FileState,
    fingerprint_files,
    plan_symbol_changes,
)


def test_a_file_is_hashed_again_only_when_its_name_size_or_mtime_changed(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "AAA_1d.csv"
    path.write_text("a,b\n1,2\n")
    first = fingerprint_files({"AAA": path}, {})
    reads = []
    monkeypatch.setattr(raw_changes, "file_digest", lambda p: reads.append(p) or "x")
    assert fingerprint_files({"AAA": path}, first) == first and reads == []  # untouched: not read
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: read again
    assert fingerprint_files({"AAA": path}, first)["AAA"].digest == "x" and reads == [path]


def test_a_touched_but_unchanged_file_keeps_its_digest(tmp_path: Path) -> None:
    path = tmp_path / "AAA_1d.csv"
    path.write_text("a,b\n1,2\n")
    first = fingerprint_files({"AAA": path}, {})
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = fingerprint_files({"AAA": path}, first)
    assert second["AAA"].digest == first["AAA"].digest and second["AAA"].mtime_ns != first["AAA"].mtime_ns
    path.write_text("a,b\n1,3\n")
    assert fingerprint_files({"AAA": path}, second)["AAA"].digest != first["AAA"].digest


def test_file_state_round_trips_through_the_cursor_and_ignores_the_old_format() -> None:
    state = FileState("AAA_1d.csv", 10, 123, "abc")
    assert FileState.from_json(state.to_json()) == state
    assert FileState.from_json("abc") is None


def test_the_plan_registers_new_files_retrains_changed_ones_and_retires_missing_ones() -> None:
    registered = {"OLD", "SAME", "EDIT", "SEEN_LATE"}
    current = {"SAME": "1", "EDIT": "2b", "NEW": "3", "SEEN_LATE": "4"}
    previous = {"SAME": "1", "EDIT": "2a", "OLD": "9"}
    plan = plan_symbol_changes(current, previous, registered)
    assert plan.new == ["NEW"]
    assert plan.changed == ["EDIT", "SEEN_LATE"]  # SEEN_LATE: registered between two ticks (ktrdr-run)
    assert plan.retired == ["OLD"]
    assert plan.to_train == ["EDIT", "NEW", "SEEN_LATE"]


def test_the_first_tick_registers_and_retires_but_trains_nothing() -> None:
    plan = plan_symbol_changes({"A": "1", "B": "2"}, None, {"B", "C"})
    assert (plan.new, plan.changed, plan.retired) == (["A"], [], ["C"])
