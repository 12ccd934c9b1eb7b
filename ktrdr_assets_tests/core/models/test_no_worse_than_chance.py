"""Issue 9, item 4: with class weighting selectable (none by default) and the decision rule chosen on
validation for accuracy, no torch model is below chance (1/3, three classes) on any shipped symbol's
out-of-fold evidence, and none is far below the majority class there (the NN used to score 0.27 on
EURUSD with HOLD at 54 %). The planted-edge half of the item is in core/selection/test_walk_forward.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktrdr_assets.core.models.training_runs import train_model
from ktrdr_assets_tests.helpers import TINY, build_inputs, write_strategy
from ktrdr_assets_tests.synthetic_symbols import SHIPPED_SYMBOLS


@pytest.mark.parametrize("symbol", SHIPPED_SYMBOLS)
def test_torch_models_are_not_below_chance_on_shipped_symbols(symbol: str, tmp_path: Path) -> None:
    inputs = build_inputs(symbol, write_strategy(tmp_path / "strategy.yaml", models=TINY))
    for model_type in ("neural_network", "lstm"):
        record = train_model(
            model_type,
            inputs.splits,
            inputs.augmented,
            inputs.strategy,
            symbol=symbol,
            run_dir=tmp_path / model_type,
            run_info={},
            features=inputs.features,
        )
        oof = record.result["evidence"]["oof"]
        assert oof["accuracy"] >= 1 / 3, (symbol, model_type, oof)
        assert oof["accuracy"] >= oof["majority_accuracy"] - 0.1, (symbol, model_type, oof)
        shares = oof["predicted_shares"]
        assert abs(sum(shares.values()) - 1) < 1e-9
