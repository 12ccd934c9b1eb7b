"""An exclusive advisory file lock (`flock`): held across threads and processes, and across machines that
mount the same volume; released when the block ends or the process dies."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_TIMEOUT_S = 600.0


class LockTimeout(TimeoutError):
    """Another holder kept the lock for longer than the timeout."""


@contextmanager
def file_lock(path: Path, timeout_s: float = DEFAULT_TIMEOUT_S, poll_s: float = 0.05) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if missing) for the block; LockTimeout after
    `timeout_s` seconds of waiting. Released when the block ends or the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"another process has held {path} for more than {timeout_s:g} s") from None
                time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
