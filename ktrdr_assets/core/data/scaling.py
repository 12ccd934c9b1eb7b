"""Feature scaling fitted on the training rows only, persisted as plain JSON (never pickle).

scikit-learn fits the parameters (StandardScaler for most columns, RobustScaler for heavy-tailed
columns matched by fnmatch patterns such as ``volume*``); the fitted centre and scale of every column
are then kept as plain floats, so a scaler saved as JSON transforms exactly as sklearn would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

import numpy as np
import pandas as pd

from ktrdr_assets.core.util.jsonsafe import dumps

ScalerKind = Literal["standard", "robust"]
SCALER_KINDS: tuple[str, ...] = ("standard", "robust")
_FORMAT = "ktrdr_assets.FeatureScaler/1"


def scaler_kind(column: str, robust_patterns: Sequence[str]) -> ScalerKind:
    """'robust' if `column` matches an fnmatch pattern in `robust_patterns`, else 'standard'."""
    return "robust" if any(fnmatchcase(column, pattern) for pattern in robust_patterns) else "standard"


@dataclass(frozen=True)
class FeatureScaler:
    """Per-column ``(x - center) / scale``; `n_fit_rows` is how many rows the parameters were fitted on."""

    columns: tuple[str, ...]
    kinds: tuple[ScalerKind, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    n_fit_rows: int

    @classmethod
    def fit(cls, frame: pd.DataFrame, feature_names: Sequence[str], robust_patterns: Sequence[str]) -> FeatureScaler:
        """Fit on every row of `frame` (pass the training rows only). Constant columns get scale 1."""
        from sklearn.preprocessing import RobustScaler, StandardScaler  # here: definitions load without sklearn

        columns = tuple(feature_names)
        values = frame.loc[:, list(columns)].to_numpy(dtype=np.float64)
        if len(values) == 0:
            raise ValueError("FeatureScaler.fit: no rows to fit on")
        if not np.isfinite(values).all():
            bad = [c for c, ok in zip(columns, np.isfinite(values).all(axis=0), strict=True) if not ok]
            raise ValueError(f"FeatureScaler.fit: columns {bad} hold NaN or inf; features must be finite")
        kinds = tuple(scaler_kind(c, robust_patterns) for c in columns)
        robust = np.array([k == "robust" for k in kinds], dtype=bool)
        center = np.zeros(len(columns))
        scale = np.ones(len(columns))
        if (~robust).any():
            standard = StandardScaler().fit(values[:, ~robust])
            center[~robust], scale[~robust] = standard.mean_, standard.scale_
        if robust.any():
            fitted = RobustScaler().fit(values[:, robust])
            center[robust], scale[robust] = fitted.center_, fitted.scale_
        return cls(columns, kinds, tuple(center.tolist()), tuple(scale.tolist()), len(values))

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of `frame` with the scaler's columns scaled (float64); other columns are left as is."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"FeatureScaler.transform: frame lacks scaled columns {missing}")
        values = frame.loc[:, list(self.columns)].to_numpy(dtype=np.float64, copy=True)
        values -= np.asarray(self.center)
        values /= np.asarray(self.scale)
        out = frame.copy()
        out[list(self.columns)] = values
        return out

    def to_json(self) -> str:
        return dumps(
            {
                "format": _FORMAT,
                "n_fit_rows": self.n_fit_rows,
                "columns": [
                    {"name": name, "kind": kind, "center": center, "scale": scale}
                    for name, kind, center, scale in zip(self.columns, self.kinds, self.center, self.scale, strict=True)
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str, source: str = "<scaler json>") -> FeatureScaler:
        """Parse `to_json()` output; `source` (usually the file path) is named in every error."""
        try:
            raw: dict[str, Any] = json.loads(text)
            if raw.get("format") != _FORMAT:
                raise ValueError(f"format must be {_FORMAT!r}, got {raw.get('format')!r}")
            entries = raw["columns"]
            names = tuple(str(e["name"]) for e in entries)
            kinds = tuple(e["kind"] for e in entries)
            center = tuple(float(e["center"]) for e in entries)
            scale = tuple(float(e["scale"]) for e in entries)
            n_fit_rows = int(raw["n_fit_rows"])
        except KeyError as err:
            raise ValueError(f"{source}: missing key {err}") from None
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: not a FeatureScaler: {err}") from None
        for name, kind, c, s in zip(names, kinds, center, scale, strict=True):
            if kind not in SCALER_KINDS:
                raise ValueError(f"{source}: column {name!r}: kind must be one of {SCALER_KINDS}, got {kind!r}")
            if not (np.isfinite(c) and np.isfinite(s) and s > 0):
                raise ValueError(f"{source}: column {name!r}: center/scale must be finite with scale > 0")
        return cls(names, kinds, center, scale, n_fit_rows)
