"""Chronological train / validation / test splits with purge gaps, scaled by a train-only scaler.

Rows are split in time order, never shuffled. Between train and validation, and between validation
and test, `purge_bars` rows are dropped, where `purge_bars >= lookahead`: a label looks `lookahead`
bars ahead, so the last training label cannot see a validation bar (nor the last validation label a
test bar). The scaler is fitted on the training rows only and applied to all three parts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_assets.core.config.schema import SplitConfig
from ktrdr_assets.core.data.labels import LABEL
from ktrdr_assets.core.data.scaling import FeatureScaler
from ktrdr_assets.core.data.signals import CLASS_NAMES, N_CLASSES
from ktrdr_assets.core.util.jsonsafe import dumps

PARTS: tuple[str, ...] = ("train", "validation", "test")
MIN_PART_ROWS = 10
SCALER_FILE = "scaler.json"
META_FILE = "meta.json"
# |mean| (standard columns) or |median| (robust columns) of the scaled train part above this means the
# scaler was not fitted on exactly the train rows.
_FIT_TOLERANCE = 1e-6


def validate_feature_frame(frame: pd.DataFrame, feature_names: Sequence[str], where: str) -> None:
    """Raise ValueError (message starts with `where`) unless `frame` meets the features-frame contract.

    The contract: a strictly increasing DatetimeIndex, every name in `feature_names` present with finite
    values, and an integer `label` column holding only class codes 0..N_CLASSES-1.
    """
    names = list(feature_names)
    if not names:
        raise ValueError(f"{where}: feature_names is empty")
    if len(set(names)) != len(names) or LABEL in names:
        raise ValueError(f"{where}: feature_names must be unique and must not include {LABEL!r}")
    missing = [c for c in [*names, LABEL] if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: frame lacks columns {missing}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise ValueError(f"{where}: index must be a DatetimeIndex, got {type(frame.index).__name__}")
    steps = np.diff(frame.index.asi8)
    if frame.index.hasnans or (steps <= 0).any():
        at = int(np.argmax(steps <= 0)) + 1 if (steps <= 0).any() else int(np.argmax(frame.index.isna()))
        raise ValueError(
            f"{where}: index must be strictly increasing timestamps, broken at row {at} ({frame.index[at]})"
        )
    labels = frame[LABEL]
    if not pd.api.types.is_integer_dtype(labels):
        raise ValueError(f"{where}: {LABEL!r} must be an integer column, got {labels.dtype}")
    bad_label = ~labels.between(0, N_CLASSES - 1)
    if bad_label.any():
        at = labels.index[bad_label.to_numpy()][0]
        raise ValueError(f"{where}: {LABEL!r} is {labels[at]} at {at.isoformat()}; class codes are 0..{N_CLASSES - 1}")
    values = frame[names].to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(
            f"{where}: feature {names[col]!r} is {values[row, col]} at {frame.index[row].isoformat()}; "
            "features must be finite"
        )


def purge_gap(config: SplitConfig, lookahead: int) -> int:
    """Rows dropped between parts: `config.purge_bars` (default: the lookahead), never below the lookahead."""
    requested = lookahead if config.purge_bars is None else config.purge_bars
    return max(requested, lookahead)


@dataclass
class TemporalSplits:
    """Scaled parts (feature columns + int8 `label`, original timestamps) and how they were cut.

    `row_positions[part] = (first, last)`: positional rows of the part in the unsplit features frame
    of `source_rows` rows; they let `verify_splits` measure the gaps in rows.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    scaler: FeatureScaler
    feature_names: list[str]
    purge_bars: int
    lookahead: int
    source_rows: int
    row_positions: dict[str, tuple[int, int]]

    def parts(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def to_dir(self, path: str | Path) -> None:
        """Write `<part>.parquet` per part, scaler.json and meta.json into `path` (created if needed)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, frame in self.parts().items():
            frame.to_parquet(path / f"{name}.parquet")
        (path / SCALER_FILE).write_text(self.scaler.to_json(), encoding="utf-8")
        meta = {
            "feature_names": self.feature_names,
            "purge_bars": self.purge_bars,
            "lookahead": self.lookahead,
            "source_rows": self.source_rows,
            "row_positions": self.row_positions,
        }
        (path / META_FILE).write_text(dumps(meta), encoding="utf-8")

    @classmethod
    def from_dir(cls, path: str | Path) -> TemporalSplits:
        path = Path(path)
        files = [path / f"{name}.parquet" for name in PARTS] + [path / SCALER_FILE, path / META_FILE]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{path}: splits folder lacks {missing}")
        meta_path = path / META_FILE
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        try:
            return cls(
                **{name: pd.read_parquet(path / f"{name}.parquet") for name in PARTS},
                scaler=FeatureScaler.from_json((path / SCALER_FILE).read_text("utf-8"), str(path / SCALER_FILE)),
                feature_names=list(meta["feature_names"]),
                purge_bars=int(meta["purge_bars"]),
                lookahead=int(meta["lookahead"]),
                source_rows=int(meta["source_rows"]),
                row_positions={p: (int(a), int(b)) for p, (a, b) in meta["row_positions"].items()},
            )
        except KeyError as err:
            raise ValueError(f"{meta_path}: missing key {err}") from None

    def summary(self) -> dict[str, Any]:
        """Per part: rows, first/last timestamp (ISO), first/last source row, class counts and shares by name;
        plus the purge gap, the lookahead and the rows actually between consecutive parts."""
        out: dict[str, Any] = {}
        for name, frame in self.parts().items():
            counts = np.bincount(frame[LABEL].to_numpy(), minlength=N_CLASSES)
            rows = len(frame)
            out[name] = {
                "rows": rows,
                "first": frame.index[0].isoformat() if rows else None,
                "last": frame.index[-1].isoformat() if rows else None,
                "first_row": self.row_positions[name][0],
                "last_row": self.row_positions[name][1],
                "class_counts": dict(zip(CLASS_NAMES, counts.tolist(), strict=True)),
                "class_shares": dict(zip(CLASS_NAMES, (counts / max(rows, 1)).tolist(), strict=True)),
            }
        out["purge_bars"] = self.purge_bars
        out["lookahead"] = self.lookahead
        out["source_rows"] = self.source_rows
        out["gap_rows"] = {f"{a}_{b}": self._gap_rows(a, b) for a, b in pairwise(PARTS)}
        return out

    def _gap_rows(self, before: str, after: str) -> int:
        """Rows of the features frame strictly between the last row of `before` and the first of `after`."""
        return self.row_positions[after][0] - self.row_positions[before][1] - 1


def temporal_split(
    features: pd.DataFrame, feature_names: list[str], config: SplitConfig, lookahead: int
) -> TemporalSplits:
    """Cut `features` (labelled bars, chronological) into scaled train / validation / test parts.

    The rows left after removing two purge gaps are shared by `config`'s fractions (train and
    validation rounded, test takes the rest). Raises ValueError naming the sizes when a part would
    hold fewer than MIN_PART_ROWS rows.
    """
    validate_feature_frame(features, feature_names, "temporal_split")
    if lookahead < 0:
        raise ValueError(f"temporal_split: lookahead must be >= 0, got {lookahead}")
    purge = purge_gap(config, lookahead)
    n = len(features)
    usable = max(n - 2 * purge, 0)
    n_train = round(usable * config.train)
    n_val = round(usable * config.validation)
    n_test = usable - n_train - n_val
    if min(n_train, n_val, n_test) < MIN_PART_ROWS:
        raise ValueError(
            f"temporal_split: {n} labelled rows minus 2 purge gaps of {purge} rows leave train={n_train}, "
            f"validation={n_val}, test={n_test}; each part needs at least {MIN_PART_ROWS} rows "
            "(supply more bars, or lower splits.purge_bars / the label lookahead)"
        )
    val_first = n_train + purge
    test_first = val_first + n_val + purge
    positions = {
        "train": (0, n_train - 1),
        "validation": (val_first, val_first + n_val - 1),
        "test": (test_first, n - 1),
    }
    columns = [*feature_names, LABEL]
    raw = {name: features.iloc[a : b + 1][columns] for name, (a, b) in positions.items()}
    scaler = FeatureScaler.fit(raw["train"], feature_names, config.robust_scale_patterns)
    scaled = {name: scaler.transform(frame).astype({LABEL: np.int8}) for name, frame in raw.items()}
    return TemporalSplits(
        **scaled,
        scaler=scaler,
        feature_names=list(feature_names),
        purge_bars=purge,
        lookahead=lookahead,
        source_rows=n,
        row_positions=positions,
    )


def verify_splits(splits: TemporalSplits) -> list[str]:
    """Human-readable problems with `splits`; an empty list means they are valid.

    Checks: each part non-empty, chronological (strictly increasing DatetimeIndex), with the expected
    columns, finite features and valid labels, and as many rows as its recorded source positions span;
    consecutive parts do not overlap in time and are at least `lookahead` source rows apart; the purge
    gap is not below the lookahead; the scaler covers the feature columns and was fitted on exactly the
    train rows (row count, and scaled train mean / median ~ 0 for standard / robust columns).
    """
    problems: list[str] = []
    columns = [*splits.feature_names, LABEL]
    for name, frame in splits.parts().items():
        if frame.empty:
            problems.append(f"{name} is empty")
            continue
        if list(frame.columns) != columns:
            problems.append(f"{name} columns are {list(frame.columns)}, expected {columns}")
            continue
        try:
            validate_feature_frame(frame, splits.feature_names, name)
        except ValueError as err:
            problems.append(str(err))
        first, last = splits.row_positions[name]
        if not 0 <= first <= last < splits.source_rows or last - first + 1 != len(frame):
            problems.append(
                f"{name} holds {len(frame)} rows but its recorded source rows are {first}..{last} "
                f"of {splits.source_rows}"
            )
    if splits.purge_bars < splits.lookahead:
        problems.append(f"purge_bars {splits.purge_bars} is below the label lookahead {splits.lookahead}")
    for before, after in pairwise(PARTS):
        a, b = splits.parts()[before], splits.parts()[after]
        if not a.empty and not b.empty and a.index.max() >= b.index.min():
            problems.append(
                f"{before} and {after} overlap in time: {before} ends {a.index.max().isoformat()}, "
                f"{after} starts {b.index.min().isoformat()}"
            )
        gap = splits._gap_rows(before, after)
        if gap < splits.lookahead:
            problems.append(
                f"only {gap} rows between {before} and {after}; labels look {splits.lookahead} bars ahead, "
                f"so at least {splits.lookahead} are needed"
            )
    problems.extend(_scaler_problems(splits))
    return problems


def _scaler_problems(splits: TemporalSplits) -> list[str]:
    scaler, train = splits.scaler, splits.train
    if list(scaler.columns) != splits.feature_names:
        return [f"scaler columns {list(scaler.columns)} differ from feature_names {splits.feature_names}"]
    problems = []
    if scaler.n_fit_rows != len(train):
        problems.append(f"scaler was fitted on {scaler.n_fit_rows} rows but train has {len(train)}")
    if train.empty or list(train.columns[: len(scaler.columns)]) != list(scaler.columns):
        return problems
    values = train[list(scaler.columns)].to_numpy(dtype=np.float64)
    robust = np.array([kind == "robust" for kind in scaler.kinds])
    centre = np.where(robust, np.median(values, axis=0), values.mean(axis=0))
    for column, kind, value in zip(scaler.columns, scaler.kinds, centre, strict=True):
        if not abs(value) <= _FIT_TOLERANCE:
            statistic = "median" if kind == "robust" else "mean"
            problems.append(
                f"scaler was not fitted on the train rows: scaled train {statistic} of {column!r} "
                f"is {value:.6g}, expected 0"
            )
    return problems
