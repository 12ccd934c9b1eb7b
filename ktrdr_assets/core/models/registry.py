"""The model registry: one `ModelSpec` per model type. Everything that trains, loads, gates or selects
models reads it; adding a model type is one module in this package and one entry in `BUILTIN_MODELS`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ktrdr_assets.core.models import lstm, neural_network, random_forest, xgboost_booster
from ktrdr_assets.core.models.spec import ModelSpec

BUILTIN_MODELS: tuple[ModelSpec, ...] = (random_forest.SPEC, xgboost_booster.SPEC, neural_network.SPEC, lstm.SPEC)

_REGISTRY: dict[str, ModelSpec] = {spec.model_type: spec for spec in BUILTIN_MODELS}


class UnknownModelType(KeyError):
    """A model type that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_spec(model_type: str) -> ModelSpec:
    """The spec of `model_type`; an UnknownModelType naming the registered types otherwise."""
    try:
        return _REGISTRY[model_type]
    except KeyError:
        raise UnknownModelType(f"unknown model type {model_type!r}; registered: {list(_REGISTRY)}") from None


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
    for spec in _REGISTRY.values():
        if spec.display_name == name:
            return spec
    raise UnknownModelType(f"no registered model is named {name!r}")


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model type (a plug-in, or a test's tiny model); a type or display name is registered once."""
    if spec.model_type in _REGISTRY or any(s.display_name == spec.display_name for s in _REGISTRY.values()):
        raise ValueError(f"model type {spec.model_type!r} / {spec.display_name!r} is already registered")
    _REGISTRY[spec.model_type] = spec
    return spec


def unregister(model_type: str) -> None:
    _REGISTRY.pop(model_type, None)


@contextmanager
def registered(spec: ModelSpec) -> Iterator[ModelSpec]:
    """`spec` registered for the duration of the block (tests)."""
    register(spec)
    try:
        yield spec
    finally:
        unregister(spec.model_type)
