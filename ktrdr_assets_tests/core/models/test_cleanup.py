"""Clean-up of model run folders: the newest N per symbol/model stay, referenced ones are never deleted,
and nothing that is not a run folder is touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ktrdr_assets.core.models.cleanup import (
    CleanupPlan,
    apply_cleanup,
    folder_bytes,
    plan_cleanup,
    referenced_run_dirs,
)


def run(root: Path, symbol: str, model: str, day: int, run_id: str = "abcd1234", size: int = 10) -> Path:
    folder = root / symbol / model / f"202501{day:02d}T030000Z_{run_id}"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"x" * size)
    return folder


@pytest.fixture
def tree(tmp_path: Path) -> dict:
    root = tmp_path / "model_runs"
    nn = [run(root, "MSFT", "neural_network", day) for day in range(1, 8)]  # day 7 is the newest
    xgb = [run(root, "AAPL", "xgboost", day) for day in (3, 1)]
    other = root / "MSFT" / "neural_network" / "notes"
    other.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    link = root / "MSFT" / "neural_network" / "20240101T000000Z_link0000"
    link.symlink_to(outside, target_is_directory=True)
    return {"root": root, "nn": nn, "xgb": xgb, "other": other, "link": link, "outside": outside}


def test_keeps_newest_n_and_every_referenced_run(tree: dict) -> None:
    root, nn = tree["root"], tree["nn"]
    references = {
        str(nn[1]),  # the manifest's selection (absolute path)
        "/old/warehouse/model_runs/MSFT/neural_network/" + nn[0].name,  # written before the warehouse moved
    }
    plan = plan_cleanup(root, keep=3, references=references)
    assert plan.keep == [*tree["xgb"], nn[6], nn[5], nn[4]]
    assert plan.protected == [nn[1], nn[0]]
    assert plan.delete == [nn[3], nn[2]]
    assert set(plan.skipped) == {tree["other"], tree["link"]}
    freed = folder_bytes(plan.delete)
    assert freed == 20
    assert apply_cleanup(plan, root) == [nn[3], nn[2]]
    remaining = sorted(p.name for p in (root / "MSFT" / "neural_network").iterdir())
    assert remaining == sorted([tree["link"].name, "notes", *(nn[i].name for i in (0, 1, 4, 5, 6))])
    assert (tree["outside"] / "precious.txt").read_text() == "keep me"  # the link's target is untouched
    again = plan_cleanup(root, keep=3, references=references)
    assert again.delete == []  # idempotent


def test_same_second_runs_are_ordered_by_modification_time(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    older = run(root, "EURUSD", "lstm", 5, run_id="ffff0000")
    newer = run(root, "EURUSD", "lstm", 5, run_id="0000ffff")
    os.utime(older, (1_000_000, 1_000_000))
    os.utime(newer, (2_000_000, 2_000_000))
    plan = plan_cleanup(root, keep=1, references=[])
    assert (plan.keep, plan.delete) == ([newer], [older])


def test_referenced_run_dirs_found_at_any_depth() -> None:
    manifest = {
        "selections": {
            "MSFT": {"selected_model": "LSTM", "run_dir": "/w/model_runs/MSFT/lstm/a"},
            "AAPL": {
                "stale": True,
                "run_dir": "/w/model_runs/AAPL/xgboost/b",
                "last_attempt": {"run_dir": ""},
            },
        },
        "history": [{"run_dir": "/w/model_runs/EURUSD/lstm/c"}, {"other": {"run_dir": None}}],
    }
    record = {"model_type": "neural_network", "run_dir": "/w/model_runs/MSFT/neural_network/d"}
    assert referenced_run_dirs([manifest, record]) == {
        "/w/model_runs/MSFT/lstm/a",
        "/w/model_runs/AAPL/xgboost/b",
        "/w/model_runs/EURUSD/lstm/c",
        "/w/model_runs/MSFT/neural_network/d",
    }


def test_bad_requests(tmp_path: Path, tree: dict) -> None:
    with pytest.raises(ValueError, match=r"keep must be >= 1 \(the newest run of each model stays\), got 0"):
        plan_cleanup(tree["root"], keep=0, references=[])
    assert plan_cleanup(tmp_path / "missing", keep=2, references=[]) == CleanupPlan()
    forged = CleanupPlan(delete=[tree["outside"]])
    with pytest.raises(ValueError, match="refusing to delete .*elsewhere: not a run folder at depth 3"):
        apply_cleanup(forged, tree["root"])
    assert (tree["outside"] / "precious.txt").exists()
    with pytest.raises(ValueError, match="refusing to delete"):
        apply_cleanup(CleanupPlan(delete=[tree["link"]]), tree["root"])
    assert tree["link"].is_symlink() and (tree["outside"] / "precious.txt").exists()
