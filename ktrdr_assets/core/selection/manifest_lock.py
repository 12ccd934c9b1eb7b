"""Serialized manifest rebuilds: read the previous manifest and every symbol's newest selection, merge,
write, all under one exclusive lock.

A rebuild is read-everything-then-write. Two rebuilds that overlap (two symbol runs finishing together)
could otherwise write an older view last and drop the newer selection (a lost update). Under the lock the
second rebuild starts reading only after the first has written, so the last manifest written always holds
each symbol's newest selection. The lock is an advisory `flock` on a lock file, so it holds
across threads, processes and any machine that mounts the warehouse (a shared volume); Dagster's
`manifest` concurrency pool (limit 1) serializes the rebuild steps of concurrent runs as well.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.selection.manifest import next_manifest
from ktrdr_assets.core.util.atomic import write_text_atomic
from ktrdr_assets.core.util.jsonsafe import dumps
from ktrdr_assets.core.util.locks import LockTimeout, file_lock

DEFAULT_TIMEOUT_S = 600.0


#: Another rebuild held the manifest lock for longer than the timeout.
ManifestLockTimeout = LockTimeout


def lock_path(manifest_path: Path) -> Path:
    """The lock file of a manifest: a hidden sibling (`.all.json.lock`), never read as a document."""
    return manifest_path.with_name(f".{manifest_path.name}.lock")


@dataclass(frozen=True)
class ManifestInputs:
    """What a rebuild reads, inside the lock: the active symbols (a raw file present), the newest selection
    of each (with its own `selection_criteria`) and when each was made."""

    active: frozenset[str]
    selections: Mapping[str, Mapping[str, Any]]
    attempted_at: Mapping[str, str] = field(default_factory=dict)


def rebuild_manifest(
    path: Path,
    read_inputs: Callable[[], ManifestInputs],
    gates: GatesConfig,
    *,
    lock: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """Under the lock (`lock`, default `lock_path(path)`): read the previous manifest at `path`, call
    `read_inputs()`, write the next manifest atomically; return it."""
    with file_lock(lock or lock_path(path), timeout_s):
        previous = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        inputs = read_inputs()
        manifest = next_manifest(
            previous,
            inputs.selections,
            gates,
            active=inputs.active,
            attempted_at=inputs.attempted_at,
            timestamp=timestamp,
        )
        write_text_atomic(path, dumps(manifest))
    return manifest
