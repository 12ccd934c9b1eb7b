"""The pooled model of a poolable type (design note 003): one network for many symbols, each input row
(or every time step of a window) carrying its symbol's id through an `nn.Embedding`.

* `PooledNet` wraps the type's own net: the input holds the scaled features plus one last column, the
  asset id; the id is embedded (`embedding_dim`, 8-16) and concatenated to the features at every row /
  time step before the type's net sees them. Row 0 of the embedding is the "unknown asset": a symbol
  that was not in the pooled training is scored through it (and says so).
* `PooledModelSpec` makes the pooled model of type `lstm` the model type `pooled_lstm` for everything
  per symbol: `core.models.training_runs.train_model` evaluates it on one symbol's parts exactly like a
  per-symbol model (its `fit` binds the already trained pooled network to the symbol's id; training
  itself is `core.models.pooled.train_pooled`), `core.models.loading` reloads it, selection compares it.
  The registry derives one per poolable type (`registry.pooled_specs`).

A pooled training folder holds `model.pt`, `pooled.json` (the asset-id map, the symbols, their split
fingerprints, the config, the history) and the loop's analytics; every symbol's evaluation folder holds
a copy of the weights and `asset_ids.json` (the map and that symbol's id), so it reloads on its own.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, create_model

from ktrdr_assets.core.config.errors import StrategyError, format_validation_error
from ktrdr_assets.core.config.models import ModelsConfig
from ktrdr_assets.core.models.base import (
    TORCH_MODEL_FILE,
    FitContext,
    FittedModel,
    ModelTrainingError,
    Predictor,
    SplitArrays,
)
from ktrdr_assets.core.models.persistence import load_torch_state, save_json, save_torch_state
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.training.analytics_export import ALERTS_TXT, DETAILED_JSON, METRICS_CSV
from ktrdr_assets.core.util.lazy import lazy_exports

POOLED_PREFIX = "pooled_"
UNKNOWN_ASSET_ID = 0
SUMMARY_FILE = "pooled.json"
ASSET_IDS_FILE = "asset_ids.json"
#: FitContext.run_info key naming the pooled training folder whose network a symbol's evaluation binds.
POOLED_DIR_KEY = "pooled_model_dir"
_ANALYTICS_FILES = (METRICS_CSV, DETAILED_JSON, ALERTS_TXT)
#: The torch half (the wrapping network, the id column, the predictor) lives in pooled_torch.py: imported
#: when a pooled net is built, so that the model registry, and the code location, load without torch.
_TORCH_NAMES = ("PooledNet", "with_asset_id", "pooled_samples", "build_pooled_net", "pooled_predictor")


# The torch names of pooled_torch.py, imported when first asked for.
__getattr__ = lazy_exports(__name__, "ktrdr_assets.core.models.pooled_torch", _TORCH_NAMES)


@functools.cache
def pooled_config_class(base_class: type[BaseModel]) -> type[BaseModel]:
    """`base_class` plus the embedding size: the config of the pooled network of that type."""
    return create_model(
        f"Pooled{base_class.__name__}",
        __base__=base_class,
        __module__=__name__,
        embedding_dim=(int, Field(8, ge=8, le=16, description="asset-id embedding size")),
        unknown_asset_rate=(float, Field(0.1, ge=0, lt=1, description="training samples shown as unknown")),
    )


@dataclass(frozen=True)
class PooledModelSpec(ModelSpec):
    """The pooled model of `base` as a model type of its own (`pooled_<base type>`)."""

    base: ModelSpec | None = None

    def is_enabled(self, models: ModelsConfig) -> bool:
        """Pooling is on, lists the base type, and the strategy has not switched the base type off."""
        pooled = models.pooled
        base_type = self.base.model_type
        return pooled.enabled and base_type in pooled.model_types and models.is_enabled(base_type)

    def parse_config(self, models: ModelsConfig, source: str = "<strategy>") -> Any:
        """`models.<base type>` with `models.pooled.overrides.<base type>` merged over it, plus
        `models.pooled.embedding_dim` and `unknown_asset_rate`; errors name the key where it was written."""
        base_type, pooled = self.base.model_type, models.pooled
        override = pooled.overrides.get(base_type, {})
        pooled_keys = {"embedding_dim": pooled.embedding_dim, "unknown_asset_rate": pooled.unknown_asset_rate}
        section = {**models.settings(base_type), **override, **pooled_keys}
        try:
            return self.config_class.model_validate(section)
        except ValidationError as err:
            keys = {str(item["loc"][0]) for item in err.errors() if item["loc"]}
            prefix = f"models.pooled.overrides.{base_type}" if keys & set(override) else f"models.{base_type}"
            raise StrategyError(format_validation_error(err, source, prefix=prefix)) from None


def pooled_type(model_type: str) -> str:
    return f"{POOLED_PREFIX}{model_type}"


def make_pooled_spec(base: ModelSpec) -> PooledModelSpec:
    """The pooled model type of a poolable `base` type."""
    if not base.poolable:
        raise ValueError(f"model type {base.model_type!r} cannot be pooled (its spec has no build_net)")

    def fit(arrays: SplitArrays, config: Any, context: FitContext) -> FittedModel:
        return bind_pooled_model(base, Path(context.run_info[POOLED_DIR_KEY]), config, context, arrays.fit_X.shape[1])

    def load(run_dir: Path, config: Any, n_features: int) -> tuple[Predictor, int]:
        from ktrdr_assets.core.models.pooled_torch import build_pooled_net, pooled_predictor

        ids = json.loads((Path(run_dir) / ASSET_IDS_FILE).read_text(encoding="utf-8"))
        net = build_pooled_net(base, config, n_features, len(ids["asset_ids"]))
        load_torch_state(net, Path(run_dir) / TORCH_MODEL_FILE)
        lookback = getattr(config, "lookback", 1) if base.uses_sequences else 1
        return pooled_predictor(net, lookback, int(ids["asset_id"])), lookback

    return PooledModelSpec(
        model_type=pooled_type(base.model_type),
        display_name=f"Pooled{base.display_name}",
        config_class=pooled_config_class(base.config_class),
        fit=fit,
        load=load,
        model_file=TORCH_MODEL_FILE,
        kind="pytorch",
        is_torch=True,
        uses_sequences=base.uses_sequences,
        description=f"one {base.display_name} trained on every compatible symbol, with an asset-id embedding",
        fits_per_fold=False,
        base=base,
    )


def read_summary(pooled_dir: Path) -> dict[str, Any]:
    return json.loads((Path(pooled_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))


def bind_pooled_model(
    base: ModelSpec, pooled_dir: Path, config: Any, context: FitContext, n_features: int
) -> FittedModel:
    """The trained pooled network of `pooled_dir` as one symbol's FittedModel (`context.run_info['symbol']`):
    its id, or the unknown-asset row for a symbol that was not pooled; the pooled training's history and
    analytics files; saving writes the weights and the id map into the symbol's folder."""
    from ktrdr_assets.core.models.pooled_torch import build_pooled_net, pooled_predictor

    summary = read_summary(pooled_dir)
    if config.model_dump(mode="json") != summary["config"]:
        raise ModelTrainingError(
            f"the pooled {base.display_name} in {pooled_dir} was trained with another config than the strategy's "
            "current one; materialize pooled_models again"
        )
    if n_features != len(summary["feature_names"]):
        raise ModelTrainingError(
            f"{n_features} features, the pooled {base.display_name} in {pooled_dir} was trained on "
            f"{len(summary['feature_names'])}: a symbol with another feature set cannot be scored by it"
        )
    symbol = context.run_info["symbol"]
    ids: dict[str, int] = summary["asset_ids"]
    seen = symbol in ids
    asset_id = ids[symbol] if seen else UNKNOWN_ASSET_ID
    net = build_pooled_net(base, config, n_features, len(ids))
    load_torch_state(net, Path(pooled_dir) / TORCH_MODEL_FILE).eval()
    for name in _ANALYTICS_FILES:
        if (Path(pooled_dir) / name).is_file():
            shutil.copyfile(Path(pooled_dir) / name, Path(context.run_dir) / name)
    lookback = summary["lookback"]
    embedding = "trained" if seen else "unknown asset row"
    warnings = [] if seen else [f"{symbol} was not in the pooled training: scored through the unknown-asset embedding"]
    id_document = {"asset_ids": ids, "unknown_asset_id": UNKNOWN_ASSET_ID, "symbol": symbol, "asset_id": asset_id}

    def save(path: Path) -> None:
        save_torch_state(net, path)
        save_json(Path(path).parent / ASSET_IDS_FILE, id_document)

    details = summary["details"]
    return FittedModel(
        model=net,
        history=summary["history"],
        cv=None,
        warnings=warnings,
        predict_proba_rows=pooled_predictor(net, lookback, asset_id),
        lookback=lookback,
        details={
            **{k: details[k] for k in ("device", "device_name", "stop_reason", "best_epoch", "epochs_run")},
            "pooled": {
                "run_dir": str(pooled_dir),
                "symbols": sorted(ids),
                "asset_id": asset_id,
                "asset_embedding": embedding,
                "training_seconds": summary["duration_s"],
                "walk_forward_seconds": (summary.get("evidence") or {}).get("seconds"),
                "mean_epoch_seconds": summary["mean_epoch_seconds"],
            },
        },
        save=save,
    )
