"""NeuralNetwork: an MLP over one scaled feature row, trained by the shared torch loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from ktrdr_assets.core.config.models import TorchTrainingConfig
from ktrdr_assets.core.models.base import (
    TORCH_MODEL_FILE,
    FitContext,
    FittedModel,
    Predictor,
    SplitArrays,
    check_trainable,
)
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.util.lazy import lazy_exports


class NeuralNetworkConfig(TorchTrainingConfig):
    hidden_layers: tuple[int, ...] = Field((256, 128, 64), min_length=1)
    dropout: float = Field(0.4, ge=0, lt=1)
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden Linear")
    label_smoothing: float = Field(0.2, ge=0, lt=1)


# `MLPClassifier` lives in mlp_net.py: torch is imported when it is first asked for.
__getattr__ = lazy_exports(__name__, "ktrdr_assets.core.models.mlp_net", ["MLPClassifier"])


def fit(arrays: SplitArrays, config: NeuralNetworkConfig, context: FitContext) -> FittedModel:
    from ktrdr_assets.core.models.mlp_net import MLPClassifier
    from ktrdr_assets.core.models.torch_fit import fit_torch

    check_trainable(arrays.fit_y, SPEC.asset_name)
    net = MLPClassifier.from_config(config, arrays.fit_X.shape[1])
    train = (arrays.fit_X, arrays.fit_y)
    return fit_torch(net, train, arrays.parts["validation"], config, context, name=SPEC.display_name, lookback=1)


def load(run_dir: Path, config: NeuralNetworkConfig, n_features: int) -> tuple[Predictor, int]:
    from ktrdr_assets.core.models.mlp_net import MLPClassifier
    from ktrdr_assets.core.models.torch_fit import load_torch

    return load_torch(run_dir, MLPClassifier.from_config(config, n_features), lookback=1)


def build_net(config: Any, n_features: int) -> Any:
    """The untrained MLPClassifier for `config` (torch is imported here, not when the registry loads)."""
    from ktrdr_assets.core.models.mlp_net import MLPClassifier

    return MLPClassifier.from_config(config, n_features)


SPEC = ModelSpec(
    model_type="neural_network", display_name="NeuralNetwork", config_class=NeuralNetworkConfig, fit=fit, load=load,
    model_file=TORCH_MODEL_FILE, kind="pytorch", is_torch=True, build_net=build_net,
    description="MLP on the augmented train set",
)
