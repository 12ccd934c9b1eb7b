"""Adaptive augmentation of a small (scaled) training part; validation and test rows never come here.

A train part with at least `size_threshold` rows is returned untouched. A smaller one grows to 3x its
size below `triple_below` rows, else 2x. Synthetic rows come from a pool built by four techniques:

* gaussian_noise: each row plus N(0, (noise_std * column std)^2) per column;
* time_shift: the features of a neighbouring bar t+s (0 < |s| <= max_shift) with the label of t, only
  where bar t+s carries the same label (whole rows are taken, columns are never rolled); in a tabular
  frame this re-weights rows that sit in label-consistent stretches;
* feature_dropout: each row with a random `feature_dropout` fraction of its cells set to 0 (the train
  mean, or median for robust-scaled columns, since the part is already scaled);
* smote: imbalanced-learn's SMOTE, run per class with a sampling strategy that adds rows in proportion to
  the class's share (never its balancing default), k_neighbors = min(5, class rows - 1); a class with
  fewer than 2 rows is skipped and reported.

From the pool each class draws `(factor - 1) x its original count` rows at random, so the class shares of
the result equal the original ones whenever the pool is large enough (always, unless techniques are
switched off). If a share still ends up more than `distribution_tolerance` away from the original, the
result is kept, `info["within_tolerance"]` is False and an AugmentationDistributionWarning is emitted.

Output frame: feature columns (float64), int8 `label`, bool `synthetic`. The index is the train part's
DatetimeIndex for the original rows (first, in chronological order) followed by NaT for the synthetic
rows, which are grouped by technique in the order of TECHNIQUES (counts in `info["rows_by_technique"]`)
and within a technique follow the order of the rows they came from. Parquet round-trips this frame
exactly (index name, tz and NaT included).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_assets.core.config.schema import AugmentationConfig
from ktrdr_assets.core.data.signals import CLASS_NAMES, N_CLASSES
from ktrdr_assets.core.data.splits import LABEL, validate_feature_frame

SYNTHETIC = "synthetic"
TECHNIQUES: tuple[str, ...] = ("gaussian_noise", "time_shift", "feature_dropout", "smote")
_SMOTE_MAX_NEIGHBORS = 5


class AugmentationDistributionWarning(UserWarning):
    """The augmented class shares moved further from the original ones than the configured tolerance."""


@dataclass(frozen=True)
class AugmentationResult:
    frame: pd.DataFrame
    info: dict[str, Any]


def augment_train_set(
    train: pd.DataFrame, feature_names: list[str], config: AugmentationConfig, seed: int
) -> AugmentationResult:
    """Augment the scaled train part per `config` (see the module docstring); same seed, same output."""
    validate_feature_frame(train, feature_names, "augment_train_set")
    X = train[feature_names].to_numpy(dtype=np.float64)
    y = train[LABEL].to_numpy().astype(np.int64)
    n = len(y)
    untouched = None
    if not config.enabled:
        untouched = "augmentation disabled in the strategy"
    elif n >= config.size_threshold:
        untouched = f"{n} train rows >= size_threshold {config.size_threshold}; left untouched"
    if untouched:
        return _result(train, feature_names, X, y, _empty(X), 1, untouched, {}, config)

    factor = 3 if n < config.triple_below else 2
    rng = np.random.default_rng(seed)
    needed = (factor - 1) * np.bincount(y, minlength=N_CLASSES)
    notes: list[str] = []
    pool = {
        "gaussian_noise": _gaussian_noise(X, y, config.noise_std, rng),
        "time_shift": _time_shift(X, y, config.max_shift, rng),
        "feature_dropout": _feature_dropout(X, y, config.feature_dropout, rng),
        "smote": _smote(X, y, needed, rng, notes) if config.use_smote else _empty(X),
    }
    pool_X = np.vstack([features for features, _ in pool.values()])
    pool_y = np.concatenate([labels for _, labels in pool.values()])
    pool_technique = np.repeat(np.arange(len(TECHNIQUES)), [len(labels) for _, labels in pool.values()])

    chosen = []
    for cls in range(N_CLASSES):
        candidates = np.flatnonzero(pool_y == cls)
        if len(candidates) < needed[cls]:
            notes.append(f"only {len(candidates)} of {needed[cls]} synthetic {CLASS_NAMES[cls]} rows could be made")
        chosen.append(rng.choice(candidates, size=min(needed[cls], len(candidates)), replace=False))
    picked = np.sort(np.concatenate(chosen))
    rows_by_technique = dict(
        zip(TECHNIQUES, np.bincount(pool_technique[picked], minlength=len(TECHNIQUES)).tolist(), strict=True)
    )
    reason = (
        f"augmented {factor}x: {n} train rows < size_threshold {config.size_threshold}"
        + (f" and < triple_below {config.triple_below}" if factor == 3 else "")
        + "".join(f"; {note}" for note in notes)
    )
    synthetic = (pool_X[picked], pool_y[picked])
    return _result(train, feature_names, X, y, synthetic, factor, reason, rows_by_technique, config)


def _empty(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((0, X.shape[1])), np.empty(0, dtype=np.int64)


def _gaussian_noise(
    X: np.ndarray, y: np.ndarray, noise_std: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if noise_std <= 0:
        return _empty(X)
    return X + rng.standard_normal(X.shape) * (noise_std * X.std(axis=0)), y


def _time_shift(
    X: np.ndarray, y: np.ndarray, max_shift: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """For each bar t, a random neighbour t+s (0 < |s| <= max_shift) with the same label; bars without one
    make no row."""
    if max_shift <= 0:
        return _empty(X)
    offsets = np.array([s for s in range(-max_shift, max_shift + 1) if s != 0])
    neighbour = np.arange(len(y))[:, None] + offsets[None, :]
    inside = (neighbour >= 0) & (neighbour < len(y))
    neighbour = np.clip(neighbour, 0, len(y) - 1)
    valid = inside & (y[neighbour] == y[:, None])
    keys = np.where(valid, rng.random(valid.shape), -1.0)
    pick = neighbour[np.arange(len(y)), keys.argmax(axis=1)]
    has = valid.any(axis=1)
    return X[pick[has]], y[has]


def _feature_dropout(
    X: np.ndarray, y: np.ndarray, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if rate <= 0:
        return _empty(X)
    return np.where(rng.random(X.shape) < rate, 0.0, X), y


def _smote(
    X: np.ndarray, y: np.ndarray, needed: np.ndarray, rng: np.random.Generator, notes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """`needed[c]` SMOTE rows per class c, each class interpolated among its own rows only."""
    from imblearn.over_sampling import SMOTE  # here: the code location loads without imbalanced-learn

    counts = np.bincount(y, minlength=N_CLASSES)
    parts = [_empty(X)]
    present = np.flatnonzero(counts)
    if len(present) < 2:
        notes.append("SMOTE skipped: the train part holds a single class")
        return _empty(X)
    for cls in present:
        if counts[cls] < 2:
            notes.append(f"SMOTE skipped for {CLASS_NAMES[cls]}: {counts[cls]} row, needs at least 2")
            continue
        smote = SMOTE(
            sampling_strategy={int(cls): int(counts[cls] + needed[cls])},
            k_neighbors=min(_SMOTE_MAX_NEIGHBORS, int(counts[cls]) - 1),
            random_state=int(rng.integers(2**31 - 1)),
        )
        X_res, y_res = smote.fit_resample(X, y)
        parts.append((X_res[len(y) :], y_res[len(y) :]))
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _shares(y: np.ndarray) -> np.ndarray:
    return np.bincount(y, minlength=N_CLASSES) / max(len(y), 1)


def _result(
    train: pd.DataFrame,
    feature_names: list[str],
    X: np.ndarray,
    y: np.ndarray,
    synthetic: tuple[np.ndarray, np.ndarray],
    factor: int,
    reason: str,
    rows_by_technique: dict[str, int],
    config: AugmentationConfig,
) -> AugmentationResult:
    """Originals then `synthetic` rows as the output frame, with the info dict (warns when off tolerance)."""
    extra_X, extra_y = synthetic
    all_y = np.concatenate([y, extra_y])
    index = train.index.append(pd.DatetimeIndex([pd.NaT] * len(extra_y), dtype=train.index.dtype))
    frame = pd.DataFrame(np.vstack([X, extra_X]), columns=list(feature_names), index=index)
    frame.index.name = train.index.name
    frame[LABEL] = all_y.astype(np.int8)
    frame[SYNTHETIC] = np.arange(len(all_y)) >= len(y)

    before, after = _shares(y), _shares(all_y)
    shift_points = float(np.abs(after - before).max() * 100)
    within = shift_points <= config.distribution_tolerance * 100 + 1e-9
    info = {
        "applied": factor > 1,
        "reason": reason,
        "factor": factor,
        "original_rows": len(y),
        "target_rows": factor * len(y),
        "synthetic_rows": len(extra_y),
        "augmented_rows": len(all_y),
        "original_counts": dict(zip(CLASS_NAMES, np.bincount(y, minlength=N_CLASSES).tolist(), strict=True)),
        "augmented_counts": dict(zip(CLASS_NAMES, np.bincount(all_y, minlength=N_CLASSES).tolist(), strict=True)),
        "original_shares": dict(zip(CLASS_NAMES, before.tolist(), strict=True)),
        "augmented_shares": dict(zip(CLASS_NAMES, after.tolist(), strict=True)),
        "max_share_shift_points": shift_points,
        "tolerance_points": config.distribution_tolerance * 100,
        "within_tolerance": within,
        "techniques": [t for t in TECHNIQUES if rows_by_technique.get(t, 0) > 0],
        "rows_by_technique": {t: rows_by_technique.get(t, 0) for t in TECHNIQUES},
    }
    if not within:
        warnings.warn(
            f"augment_train_set: class shares moved {shift_points:.1f} points (tolerance "
            f"{info['tolerance_points']:.1f}): {info['original_shares']} -> {info['augmented_shares']}",
            AugmentationDistributionWarning,
            stacklevel=3,
        )
    return AugmentationResult(frame, info)
