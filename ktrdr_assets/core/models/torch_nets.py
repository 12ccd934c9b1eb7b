"""Argument checks the torch classifiers share. Every classifier returns raw logits of shape
(batch, n_classes); column i is signal code i (SELL=0, HOLD=1, BUY=2)."""

from __future__ import annotations


def check_positive(name: str, value: int) -> None:
    if int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")


def check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
