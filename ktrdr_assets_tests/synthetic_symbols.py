"""The two symbols whose answer is known, written into the session's raw folder by conftest.py before the
definitions are imported (partitions are the raw files): PLANTED has a strong planted edge that the fast
test models find and the shipped gates pass; NOEDGE is a random walk (no edge: nothing may be deployed).
Tests of the deploy path use PLANTED, never a real symbol that happens to pass today."""

from __future__ import annotations

from pathlib import Path

from ktrdr_assets.core.data.synthetic import bars_to_csv, planted_edge_bars, random_walk_bars

PLANTED = "PLANTED"
NOEDGE = "NOEDGE"
SHIPPED_SYMBOLS = ("AAPL", "EURUSD", "MSFT")
ALL_SYMBOLS = tuple(sorted((*SHIPPED_SYMBOLS, PLANTED, NOEDGE)))
BARS = 1500


def write_synthetic_raw_files(raw: Path) -> None:
    bars_to_csv(planted_edge_bars(BARS, strength=3.0, volatility=0.008, seed=0), raw / f"{PLANTED}_1d.csv")
    bars_to_csv(random_walk_bars(BARS, volatility=0.008, seed=0), raw / f"{NOEDGE}_1d.csv")
