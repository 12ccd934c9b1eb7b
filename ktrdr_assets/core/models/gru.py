"""GRU: note 003's lighter recurrent model (fewer gates than the LSTM), over windows of `lookback`
consecutive scaled rows of the chronological train part, with LayerNorm in every recurrent block."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ktrdr_assets.core.models.sequence_nets import Pooling, SequenceConfig, window_spec
from ktrdr_assets.core.util.lazy import lazy_exports


class GRUConfig(SequenceConfig):
    pooling: Pooling = Field("last", description="the window's summary: last step, or mean / max over the steps")


def build_net(config: Any, n_features: int) -> Any:
    """The untrained GRUClassifier for `config` (torch is imported here, not when the registry loads)."""
    from ktrdr_assets.core.models.gru_net import GRUClassifier

    return GRUClassifier.from_config(config, n_features)


# `GRUClassifier` lives in gru_net.py: torch is imported when it is first asked for.
__getattr__ = lazy_exports(__name__, "ktrdr_assets.core.models.gru_net", ["GRUClassifier"])


SPEC = window_spec(
    "gru", "GRU", GRUConfig, build_net,
    "GRU (LayerNorm per block) over windows of the chronological train part",
)
