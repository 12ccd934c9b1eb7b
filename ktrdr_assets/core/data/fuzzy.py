"""Fuzzy memberships: indicator values mapped through the strategy's fuzzy sets into [0, 1].

Membership functions (vectorized on numpy arrays; NaN in gives NaN out, everything else lies in [0, 1]):

- ``trapezoidal(x, a, b, c, d)``: 0 outside (a, d), rising linearly from a to b, 1 on [b, c], falling
  linearly from c to d. A vertical edge (``a == b`` or ``c == d``) is a step: the plateau includes the
  edge point, so ``trapezoidal(x, 0, 0, 1, 2)`` is 1 at x == 0 and 0 just below it.
- ``triangular(x, a, b, c)`` is ``trapezoidal(x, a, b, b, c)``: 1 only at x == b. With ``a == b`` it is a
  right-angled triangle, 1 at x == a falling to 0 at c (and 0 below a); it is NOT an open shoulder.
- ``gaussian(x, mean, sigma)``: ``exp(-((x - mean) / sigma) ** 2 / 2)``.

Infinite parameters (``.inf`` / ``-.inf`` in YAML) take the limit of the finite formula: a foot at
``-inf`` makes the rising edge 1 for every finite x, so ``trapezoidal(x, -inf, -inf, c, d)`` (or
``triangular(x, -inf, b, c)``) is an open left shoulder, 1 for all x <= c (b) and falling to 0 at d (c);
symmetrically a foot at ``+inf`` gives an open right shoulder.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ktrdr_assets.core.config.schema import FuzzySet, GaussianSet, TrapezoidalSet, TriangularSet

FuzzySets = Mapping[str, Mapping[str, FuzzySet]]


def _rising_edge(x: np.ndarray, foot: float, top: float) -> np.ndarray:
    """0 at or below `foot`, 1 at or above `top`, linear between; limits for an infinite foot."""
    if foot == -np.inf:
        return np.ones_like(x)
    if foot == top:
        return (x >= top).astype(np.float64)
    return np.clip((x - foot) / (top - foot), 0.0, 1.0)


def trapezoidal(x: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    """Trapezoid membership (see the module docstring), float64, same shape as `x`."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.minimum(_rising_edge(x, a, b), _rising_edge(-x, -d, -c))
    out[np.isnan(x)] = np.nan
    return out


def triangular(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """Triangle membership: 0 at a and c, 1 at b (see the module docstring for a == b, b == c, inf)."""
    return trapezoidal(x, a, b, b, c)


def gaussian(x: np.ndarray, mean: float, sigma: float) -> np.ndarray:
    """Gaussian membership, 1 at `mean`; `sigma` > 0."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):  # far from the mean: exp(-inf) = 0
        return np.exp(-0.5 * np.square((x - mean) / sigma))


def membership(fuzzy_set: FuzzySet, x: np.ndarray) -> np.ndarray:
    """Evaluate one configured fuzzy set on `x`."""
    if isinstance(fuzzy_set, TriangularSet):
        return triangular(x, *fuzzy_set.parameters)
    if isinstance(fuzzy_set, TrapezoidalSet):
        return trapezoidal(x, *fuzzy_set.parameters)
    if isinstance(fuzzy_set, GaussianSet):
        return gaussian(x, *fuzzy_set.parameters)
    raise TypeError(f"not a fuzzy set: {fuzzy_set!r}")


def membership_columns(fuzzy_sets: FuzzySets) -> list[str]:
    """Output column names, ``f"{indicator_column}_{set_name}"``, in strategy order."""
    return [f"{column}_{set_name}" for column, sets in fuzzy_sets.items() for set_name in sets]


def _column_values(indicators: pd.DataFrame, column: str) -> np.ndarray:
    if column not in indicators.columns:
        raise ValueError(f"fuzzy_sets.{column}: no such indicator column; columns: {list(indicators.columns)}")
    return indicators[column].to_numpy(dtype=np.float64)


def compute_memberships(indicators: pd.DataFrame, fuzzy_sets: FuzzySets) -> pd.DataFrame:
    """Membership of each indicator column in each of its sets.

    Columns ``f"{indicator_column}_{set_name}"`` in strategy order, float64, same index as
    `indicators`; NaN where the indicator is NaN (warm-up).
    """
    columns: dict[str, np.ndarray] = {}
    for column, sets in fuzzy_sets.items():
        values = _column_values(indicators, column)
        for set_name, fuzzy_set in sets.items():
            columns[f"{column}_{set_name}"] = membership(fuzzy_set, values)
    return pd.DataFrame(columns, index=indicators.index, dtype=np.float64)


def fuzzy_coverage(indicators: pd.DataFrame, fuzzy_sets: FuzzySets) -> dict[str, float]:
    """Per indicator column, the fraction of its non-NaN bars where at least one of its sets is > 0.

    A low value means the sets do not span the indicator's real range (e.g. sets on [-1, 1] for a
    MACD in price units). NaN when the column has no non-NaN value.
    """
    coverage: dict[str, float] = {}
    for column, sets in fuzzy_sets.items():
        values = _column_values(indicators, column)
        values = values[~np.isnan(values)]
        if values.size == 0:
            coverage[column] = float("nan")
            continue
        covered = np.zeros(values.size, dtype=bool)
        for fuzzy_set in sets.values():
            covered |= membership(fuzzy_set, values) > 0
        coverage[column] = float(covered.mean())
    return coverage
