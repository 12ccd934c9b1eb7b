"""Clean-up of old model run folders (note 000, section 5.2.2), without ever touching one still in use.

Model runs live at `<runs_root>/<SYMBOL>/<model_type>/<YYYYmmddTHHMMSSZ>_<run id>/`. Per symbol and model
type the newest `keep` folders stay (newest by the UTC stamp of the name, then modification time); older
ones are deleted unless referenced: a folder named by a `run_dir` anywhere in the given documents (the
deployment manifest, the model assets' latest records, the selections) is always kept. A reference matches
by resolved path or, should the warehouse have moved, by its last three parts (symbol/model/run folder).
Anything that is not a run folder (another name, a file, a symbolic link) is never deleted.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_FOLDER = re.compile(r"^\d{8}T\d{6}Z_[A-Za-z0-9-]+$")


@dataclass
class CleanupPlan:
    keep: list[Path] = field(default_factory=list)  # among the newest `keep` of their symbol/model
    protected: list[Path] = field(default_factory=list)  # older, but referenced
    delete: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # not run folders: never touched


def referenced_run_dirs(documents: Iterable[Any]) -> set[str]:
    """Every string value of a `run_dir` key, at any depth of the (JSON) documents."""
    found: set[str] = set()
    stack = list(documents)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "run_dir" and isinstance(value, str) and value:
                    found.add(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _tail(path: Path | str) -> tuple[str, ...]:
    return Path(path).parts[-3:]


def plan_cleanup(runs_root: Path, keep: int, references: Iterable[str | Path]) -> CleanupPlan:
    """What to keep and delete under `runs_root` (nothing is deleted here)."""
    if keep < 1:
        raise ValueError(f"cleanup: keep must be >= 1 (the newest run of each model stays), got {keep}")
    runs_root = Path(runs_root)
    refs = list(references)
    resolved = {Path(r).resolve() for r in refs}
    tails = {_tail(r) for r in refs}
    plan = CleanupPlan()
    if not runs_root.is_dir():
        return plan
    for model_dir in _real_subfolders(runs_root, depth=2, skipped=plan.skipped):
        runs = []
        for entry in model_dir.iterdir():
            if entry.is_symlink() or not entry.is_dir() or not RUN_FOLDER.match(entry.name):
                plan.skipped.append(entry)
            else:
                runs.append(entry)
        runs.sort(key=lambda p: (p.name[:16], p.stat().st_mtime, p.name), reverse=True)
        plan.keep += runs[:keep]
        for old in runs[keep:]:
            referenced = old.resolve() in resolved or _tail(old) in tails
            (plan.protected if referenced else plan.delete).append(old)
    return plan


def _real_subfolders(root: Path, depth: int, skipped: list[Path]) -> list[Path]:
    """Folders `depth` levels under `root`, sorted, reached without following a symbolic link."""
    level = [root]
    for _ in range(depth):
        below = []
        for folder in level:
            for entry in sorted(folder.iterdir()):
                (below if entry.is_dir() and not entry.is_symlink() else skipped).append(entry)
        level = below
    return level


def apply_cleanup(plan: CleanupPlan, runs_root: Path) -> list[Path]:
    """Delete the plan's folders (each checked to be a real folder at depth 3 under `runs_root`)."""
    root = Path(runs_root).resolve()
    deleted = []
    for path in plan.delete:
        target = path.resolve()
        if path.is_symlink() or target.parent.parent.parent != root or not RUN_FOLDER.match(target.name):
            raise ValueError(f"cleanup: refusing to delete {path}: not a run folder at depth 3 under {root}")
        shutil.rmtree(target)
        deleted.append(path)
    return deleted


def folder_bytes(paths: Iterable[Path]) -> int:
    """Total size of the files under `paths` (symbolic links not followed)."""
    total = 0
    for path in paths:
        for folder, _, files in os.walk(path):
            total += sum(os.lstat(os.path.join(folder, name)).st_size for name in files)
    return total
