"""Which saved model runs may compete in a selection: only those trained on the current data.

A model's latest record is a candidate only when its split fingerprint equals the current
temporal_splits and its config fingerprint equals the strategy's current config for that model type.
A model whose newest training failed therefore never competes with a stale earlier run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.models.pooled import pooled_strategy
from ktrdr_assets.core.models.pooled_net import PooledModelSpec
from ktrdr_assets.core.models.registry import candidate_specs, get_spec
from ktrdr_assets.core.models.spec import ModelSpec


def trained_with(spec: ModelSpec, config: StrategyConfig, base: StrategyConfig) -> StrategyConfig:
    """The strategy a model of `spec` is trained and judged with for a symbol whose strategy is `config`
    (`base` with its overrides): `config` itself; for the one pooled network of all symbols, `config` with
    the base strategy's models, seed and walk-forward settings (core/models/pooled.py `pooled_strategy`)."""
    return pooled_strategy(config, base) if isinstance(spec, PooledModelSpec) else config


def disabled_types(config: StrategyConfig, base: StrategyConfig) -> set[str]:
    """The candidate model types the strategy switched off for the symbol whose strategy is `config`."""
    return {
        spec.model_type for spec in candidate_specs() if not spec.is_enabled(trained_with(spec, config, base).models)
    }


def competing_models(config: StrategyConfig, base: StrategyConfig) -> int:
    """How many model types compete for the symbol whose strategy is `config`, the Bonferroni count of its
    gates: every candidate type, per-symbol and pooled, that the strategy has not switched off (at least 1)."""
    return max(1, len(candidate_specs()) - len(disabled_types(config, base)))


def current_candidates(
    records: Mapping[str, Mapping[str, Any] | None],
    splits_fingerprint: str,
    config_fingerprints: Mapping[str, str | None],
    disabled: Collection[str] = (),
) -> tuple[dict[str, dict[str, Any] | None], dict[str, str]]:
    """({model_name: result or None}, {model_name: why it is not a candidate}) keyed by model name; a model
    type in `disabled` (switched off by the strategy) is never a candidate."""
    candidates: dict[str, dict[str, Any] | None] = {}
    excluded: dict[str, str] = {}
    for model_type, record in records.items():
        name = get_spec(model_type).display_name
        if model_type in disabled:
            candidates[name] = None
            excluded[name] = "disabled by strategy"
            continue
        if record is None:
            candidates[name] = None
            excluded[name] = "never materialized"
            continue
        if record.get("splits_fingerprint") != splits_fingerprint:
            reason = "trained on other data than the current temporal_splits (its latest run failed or is older)"
        elif record.get("config_fingerprint") != config_fingerprints.get(model_type):
            reason = "trained with another config than the strategy's current one"
        else:
            candidates[name] = dict(record["result"], run_dir=record["run_dir"], model_type=model_type)
            continue
        candidates[name] = None
        excluded[name] = reason
    return candidates, excluded
