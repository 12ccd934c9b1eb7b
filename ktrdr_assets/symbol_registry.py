"""Symbols as dynamic partitions: the raw folder says which symbols exist, the Dagster instance registers them.

A raw file becomes a partition in three ways, whichever comes first:

- the raw-data sensor registers it (`AddDynamicPartitionsRequest`) and requests its run: the running UI and
  daemon, no reload;
- the definitions load (`register_at_load`, called by `ktrdr_assets/definitions.py`) registers every raw
  file present in the instance under `DAGSTER_HOME`: so `dagster asset materialize ... --partition X` works
  for a file dropped a second earlier, and so does a reloaded code location;
- `ktrdr-run --symbol X` registers X before it runs.

Removing a partition is the sensor's job only (a retired symbol, see `jobs/retraining.py`).
Set `KTRDR_REGISTER_SYMBOLS_AT_LOAD=0` to keep the definitions load read-only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import dagster as dg

from ktrdr_assets.partitions import SYMBOL_PARTITIONS, discover_sources, validate_symbol

log = logging.getLogger(__name__)

REGISTER_AT_LOAD_ENV = "KTRDR_REGISTER_SYMBOLS_AT_LOAD"


def registered_symbols(instance: dg.DagsterInstance) -> set[str]:
    """The symbols the instance holds as partitions."""
    return set(instance.get_dynamic_partitions(SYMBOL_PARTITIONS))


def register_symbols(instance: dg.DagsterInstance, symbols: Iterable[str] | None = None) -> list[str]:
    """Register `symbols` (default: every raw file present) that the instance does not hold yet; returns
    the ones added. Keys are validated first. Safe when two processes register the same key at once."""
    wanted = sorted(discover_sources()) if symbols is None else sorted({validate_symbol(s) for s in symbols})
    for attempt in range(3):
        registered = registered_symbols(instance)  # one query, whatever the number of symbols
        missing = [symbol for symbol in wanted if symbol not in registered]
        if not missing:
            return []
        try:
            instance.add_dynamic_partitions(SYMBOL_PARTITIONS, missing)
            return missing
        except Exception as err:  # another process added one of them between our read and our write
            duplicate = "integrity" in type(err).__name__.lower() or "unique" in str(err).lower()
            if not duplicate or attempt == 2:
                raise
    return []


def register_at_load() -> list[str]:
    """Register the raw files present in the instance under DAGSTER_HOME, when the definitions load.

    Nothing happens without DAGSTER_HOME (no persistent instance to register into) or with
    KTRDR_REGISTER_SYMBOLS_AT_LOAD=0. A failure (the database unreachable) is logged, never raised: the
    code location must load all the same, and the sensor registers the files on its next tick.
    """
    if os.environ.get(REGISTER_AT_LOAD_ENV, "1") == "0" or not os.environ.get("DAGSTER_HOME"):
        return []
    try:
        with dg.DagsterInstance.get() as instance:
            added = register_symbols(instance)
    except Exception as err:
        log.warning("could not register the raw files as partitions when loading the definitions: %s", err)
        return []
    if added:
        log.info("registered %d new symbol partitions: %s", len(added), ", ".join(added))
    return added
