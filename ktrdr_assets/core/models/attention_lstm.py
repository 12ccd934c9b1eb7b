"""Attention LSTM: note 003's LSTM with self-attention over its outputs, so that the window's summary is
a learned weighting of every time step (the weights sum to 1 over the lookback) instead of the last step.
LayerNorm in every recurrent block; dropout after the recurrent blocks and after the attention."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ktrdr_assets.core.models.sequence_nets import SequenceConfig, window_spec
from ktrdr_assets.core.util.lazy import lazy_exports


class AttentionLSTMConfig(SequenceConfig):
    attention_dim: int = Field(32, ge=1, description="size of the additive attention's projection")


def build_net(config: Any, n_features: int) -> Any:
    """The untrained AttentionLSTMClassifier for `config` (torch is imported here, not when the registry loads)."""
    from ktrdr_assets.core.models.attention_lstm_net import AttentionLSTMClassifier

    return AttentionLSTMClassifier.from_config(config, n_features)


# `AttentionLSTMClassifier` lives in attention_lstm_net.py: torch is imported when it is first asked for.
__getattr__ = lazy_exports(__name__, "ktrdr_assets.core.models.attention_lstm_net", ["AttentionLSTMClassifier"])


SPEC = window_spec(
    "attention_lstm", "AttentionLSTM", AttentionLSTMConfig, build_net,
    "LSTM (LayerNorm per block) with additive attention over the lookback",
)
