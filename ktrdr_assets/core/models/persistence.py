"""Save and load models in formats that reload without running arbitrary code; every write is atomic.

* RandomForest: skops (`skops.io`), loaded with an explicit allowlist of trusted types, never pickle.
* XGBoost: the Booster's own JSON model format, loaded into a fresh Booster.
* torch: a `state_dict` saved with `torch.save`, loaded with `weights_only=True` into a module the
  caller has rebuilt from its saved config.
* Result/metadata JSON: numpy-safe through `jsonsafe`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ktrdr_assets.core.util.atomic import write_bytes_atomic, write_text_atomic, write_with
from ktrdr_assets.core.util.jsonsafe import dumps

if TYPE_CHECKING:  # imported where used: a model module loads without torch, xgboost or scikit-learn
    import torch
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

#: Types beyond skops' built-in safe set that a RandomForestClassifier dump contains.
TRUSTED_SKOPS_TYPES: tuple[str, ...] = ("sklearn.tree._tree.Tree",)


def save_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON (numpy values, NaN, paths, timestamps made JSON-native) atomically."""
    write_text_atomic(Path(path), dumps(obj) + "\n")


def save_random_forest(model: RandomForestClassifier, path: Path) -> None:
    """Write a fitted RandomForestClassifier to `path` in skops format, atomically."""
    import skops.io as sio

    buffer = io.BytesIO()
    sio.dump(model, buffer)
    write_bytes_atomic(Path(path), buffer.getvalue())


def load_random_forest(path: Path) -> RandomForestClassifier:
    """Load a skops RandomForest dump, refusing any type outside skops' safe set and TRUSTED_SKOPS_TYPES."""
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    path = Path(path)
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_SKOPS_TYPES))
    if untrusted:
        raise ValueError(f"{path}: refusing to load untrusted types {untrusted}")
    model = sio.load(path, trusted=list(TRUSTED_SKOPS_TYPES))
    if not isinstance(model, RandomForestClassifier):
        raise ValueError(f"{path}: expected a RandomForestClassifier, found {type(model).__name__}")
    return model


def save_xgboost(booster: xgb.Booster, path: Path) -> None:
    """Write a Booster in XGBoost's JSON model format (whatever `path`'s suffix), atomically."""
    write_bytes_atomic(Path(path), bytes(booster.save_raw(raw_format="json")))


def load_xgboost(path: Path) -> xgb.Booster:
    """Load an XGBoost JSON model into a fresh Booster."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(Path(path).read_bytes()))
    return booster


def save_torch_state(model: torch.nn.Module, path: Path) -> None:
    """Write `model.state_dict()` (tensors only) with torch.save, atomically."""
    import torch

    write_with(Path(path), lambda tmp: torch.save(model.state_dict(), tmp))


def load_torch_state(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    """Load a state_dict with `weights_only=True` (no code execution) into `model`, strictly; return it.

    `model` must already have the saved architecture (rebuilt from its saved config).
    """
    import torch

    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model
