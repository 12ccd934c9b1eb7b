"""What changed in the raw folder since the last look: pure bookkeeping for the raw-data sensor.

- `fingerprint_files`: a content hash per symbol's raw file, re-hashing only the files whose name, size or
  modification time changed since the previous look (500 files of bars are not read every minute).
- `plan_symbol_changes`: which symbols are new (a file, no partition yet), changed (new content since the
  last look) and retired (a partition whose file is gone), given the registered partitions.

No Dagster here: the sensor (`ktrdr_assets/jobs/retraining.py`) turns a plan into partition requests and
run requests; the files that are not partitions, with their reasons, come from `partitions.scan_raw_folder`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileState:
    """One raw file as last seen: its name, size and modification time, and its content hash."""

    name: str
    size: int
    mtime_ns: int
    digest: str

    def to_json(self) -> list:
        return [self.name, self.size, self.mtime_ns, self.digest]

    @classmethod
    def from_json(cls, value: object) -> FileState | None:
        """A state from the sensor cursor; None for anything else (a cursor from before this format
        held only the digest: the file is re-hashed once and compared by digest)."""
        if isinstance(value, list) and len(value) == 4:
            name, size, mtime_ns, digest = value
            return cls(str(name), int(size), int(mtime_ns), str(digest))
        return None


def file_digest(path: Path) -> str:
    """Content hash of a raw file (a touched but unchanged file keeps its digest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def fingerprint_files(sources: Mapping[str, Path], previous: Mapping[str, FileState]) -> dict[str, FileState]:
    """symbol -> FileState of its raw file now; a file with the same name, size and mtime as before keeps its
    previous digest without being read."""
    current: dict[str, FileState] = {}
    for symbol, path in sources.items():
        stat = path.stat()
        before = previous.get(symbol)
        if before is not None and (before.name, before.size, before.mtime_ns) == (
            path.name,
            stat.st_size,
            stat.st_mtime_ns,
        ):
            current[symbol] = before
        else:
            current[symbol] = FileState(path.name, stat.st_size, stat.st_mtime_ns, file_digest(path))
    return current


@dataclass(frozen=True)
class SymbolPlan:
    """What the sensor does on one tick."""

    new: list[str]  # a raw file without a partition: register it, train it
    changed: list[str]  # a registered symbol whose file has new content since the last tick: retrain it
    retired: list[str]  # a partition whose raw file is gone: remove the partition (its files are kept)

    @property
    def to_train(self) -> list[str]:
        return sorted(self.new + self.changed)


def plan_symbol_changes(
    current: Mapping[str, str],
    previous: Mapping[str, str] | None,
    registered: set[str],
) -> SymbolPlan:
    """`current` and `previous`: symbol -> content digest now and at the last tick (None: no last tick).

    On the first tick (`previous` None) nothing is trained: missing partitions are registered and the
    digests recorded. Later, a symbol is trained when it is new, or when its digest differs from the last
    tick's (also when the last tick did not see it: it was registered in between, e.g. by `ktrdr-run` or
    a code location load).
    """
    present = set(current)
    new = sorted(present - registered)
    retired = sorted(registered - present)
    if previous is None:
        return SymbolPlan(new=new, changed=[], retired=retired)
    changed = sorted(s for s in present & registered if previous.get(s) != current[s])
    return SymbolPlan(new=new, changed=changed, retired=retired)
