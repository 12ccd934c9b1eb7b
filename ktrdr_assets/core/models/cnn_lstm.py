"""CNN-LSTM: note 003's hybrid. 1-D convolutions over time pick up local patterns (each followed by batch
normalization and ReLU, note 003's remediation of the earlier CNN-LSTM), optionally max-pooled in time,
then LSTM blocks with LayerNorm, then additive attention over time (or the last step when switched off)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from ktrdr_assets.core.models.sequence_nets import SequenceConfig, window_spec
from ktrdr_assets.core.util.lazy import lazy_exports


class CNNLSTMConfig(SequenceConfig):
    conv_channels: tuple[int, ...] = Field((32, 64), min_length=1, description="filters per Conv1d layer")
    kernel_size: int = Field(3, ge=1, description="Conv1d kernel, in bars ('same' padding keeps the lookback)")
    pool_size: int = Field(1, ge=1, description="MaxPool1d over time after the convolutions; 1 = none")
    attention: bool = Field(True, description="attention over the LSTM outputs; false: the last step")
    attention_dim: int = Field(32, ge=1)

    @field_validator("conv_channels")
    @classmethod
    def _positive_channels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(c < 1 for c in value):
            raise ValueError(f"every Conv1d layer needs at least one filter, got {list(value)}")
        return value

    @field_validator("pool_size")
    @classmethod
    def _pool_within_lookback(cls, value: int, info: ValidationInfo) -> int:
        lookback = info.data.get("lookback")
        if lookback is not None and value > lookback:
            raise ValueError(f"pool_size {value} is longer than the lookback ({lookback}): no time step would remain")
        return value


def build_net(config: Any, n_features: int) -> Any:
    """The untrained CNNLSTMClassifier for `config` (torch is imported here, not when the registry loads)."""
    from ktrdr_assets.core.models.cnn_lstm_net import CNNLSTMClassifier

    return CNNLSTMClassifier.from_config(config, n_features)


# `CNNLSTMClassifier` lives in cnn_lstm_net.py: torch is imported when it is first asked for.
__getattr__ = lazy_exports(__name__, "ktrdr_assets.core.models.cnn_lstm_net", ["CNNLSTMClassifier"])


SPEC = window_spec(
    "cnn_lstm", "CNNLSTM", CNNLSTMConfig, build_net,
    "Conv1d + BatchNorm, then LSTM (LayerNorm) with optional attention, over windows",
)
