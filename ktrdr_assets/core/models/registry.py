"""The model registry: one `ModelSpec` per model type. Everything that trains, loads, gates or selects
models reads it; adding a model type is one module in this package and one entry in `BUILTIN_MODELS`.

A type whose spec has `build_net` is poolable: the registry derives its pooled model type
(`pooled_<type>`, `core/models/pooled_net.py`), trained once across symbols and a candidate per symbol.
`model_specs()` are the per-symbol types (one model asset each); `candidate_specs()` adds the pooled ones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ktrdr_assets.core.models import (
    attention_lstm,
    cnn_lstm,
    gru,
    lstm,
    neural_network,
    random_forest,
    xgboost_booster,
)
from ktrdr_assets.core.models.pooled_net import POOLED_PREFIX, PooledModelSpec, make_pooled_spec
from ktrdr_assets.core.models.spec import ModelSpec

BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    random_forest.SPEC,
    xgboost_booster.SPEC,
    neural_network.SPEC,
    lstm.SPEC,
    gru.SPEC,
    attention_lstm.SPEC,
    cnn_lstm.SPEC,
)

_REGISTRY: dict[str, ModelSpec] = {spec.model_type: spec for spec in BUILTIN_MODELS}
_POOLED: dict[str, PooledModelSpec] = {}  # derived on first use, per registered poolable type


class UnknownModelType(KeyError):
    """A model type that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_spec(model_type: str) -> ModelSpec:
    """The spec of `model_type` (a pooled type `pooled_<type>` too); an UnknownModelType naming the
    registered types otherwise."""
    if model_type in _REGISTRY:
        return _REGISTRY[model_type]
    base = _REGISTRY.get(model_type.removeprefix(POOLED_PREFIX)) if model_type.startswith(POOLED_PREFIX) else None
    if base is not None and base.poolable:
        return pooled_spec(base.model_type)
    raise UnknownModelType(f"unknown model type {model_type!r}; registered: {list(_REGISTRY)}")


def pooled_spec(model_type: str) -> PooledModelSpec:
    """The pooled model type of the registered poolable `model_type`."""
    base = get_spec(model_type)
    cached = _POOLED.get(model_type)
    if cached is None or cached.base is not base:
        cached = _POOLED[model_type] = make_pooled_spec(base)
    return cached


def poolable_model_types() -> tuple[str, ...]:
    return tuple(spec.model_type for spec in _REGISTRY.values() if spec.poolable)


def pooled_specs() -> tuple[PooledModelSpec, ...]:
    """The pooled model type of every registered poolable type, in registration order."""
    return tuple(pooled_spec(model_type) for model_type in poolable_model_types())


def candidate_specs() -> tuple[ModelSpec, ...]:
    """Every model type that can compete in a symbol's selection: the per-symbol ones, then the pooled."""
    return (*model_specs(), *pooled_specs())


def candidate_types() -> tuple[str, ...]:
    """Every model type a symbol may be judged on: the registered types, then their pooled types."""
    return tuple(spec.model_type for spec in candidate_specs())


def model_specs() -> tuple[ModelSpec, ...]:
    """Every registered spec, in registration order."""
    return tuple(_REGISTRY.values())


def model_types() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def torch_model_types() -> tuple[str, ...]:
    return tuple(spec.model_type for spec in _REGISTRY.values() if spec.is_torch)


def check_torch_model_type(model_type: str) -> str:
    """`model_type` if it is a registered torch model type (experiments and searches train those)."""
    if model_type not in torch_model_types():
        torch_types = list(torch_model_types())
        raise ValueError(f"model type {model_type!r} is not a torch model type; torch types: {torch_types}")
    return model_type


def spec_by_display_name(name: str) -> ModelSpec:
    for spec in candidate_specs():
        if spec.display_name == name:
            return spec
    raise UnknownModelType(f"no registered model is named {name!r}")


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model type (a plug-in, or a test's tiny model); a type or display name is registered once."""
    if spec.model_type.startswith(POOLED_PREFIX):
        raise ValueError(f"model type {spec.model_type!r}: the prefix {POOLED_PREFIX!r} names pooled models")
    if spec.model_type in _REGISTRY or any(s.display_name == spec.display_name for s in _REGISTRY.values()):
        raise ValueError(f"model type {spec.model_type!r} / {spec.display_name!r} is already registered")
    _REGISTRY[spec.model_type] = spec
    return spec


def unregister(model_type: str) -> None:
    _REGISTRY.pop(model_type, None)
    _POOLED.pop(model_type, None)


@contextmanager
def registered(spec: ModelSpec) -> Iterator[ModelSpec]:
    """`spec` registered for the duration of the block (tests)."""
    register(spec)
    try:
        yield spec
    finally:
        unregister(spec.model_type)
