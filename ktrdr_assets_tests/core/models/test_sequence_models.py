"""Note 003's sequence models: GRU, attention LSTM, CNN-LSTM. Their architecture (LayerNorm in every
recurrent block, batch norm after every convolution, attention weights summing to 1 over the lookback),
their config checks, and a few epochs of each on MSFT that reload with weights_only=True and predict
exactly as when trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.config.models import ModelsConfig
from ktrdr_assets.core.models.attention_lstm import AttentionLSTMClassifier, AttentionLSTMConfig
from ktrdr_assets.core.models.cnn_lstm import CNNLSTMClassifier, CNNLSTMConfig
from ktrdr_assets.core.models.gru import GRUClassifier, GRUConfig
from ktrdr_assets.core.models.loading import load_predictor
from ktrdr_assets.core.models.registry import get_spec
from ktrdr_assets.core.models.sequence_nets import RecurrentBlocks
from ktrdr_assets.core.models.training_runs import train_model
from ktrdr_assets_tests.helpers import Inputs

NEW_TYPES = ("gru", "attention_lstm", "cnn_lstm")
BATCH, LOOKBACK, FEATURES = 5, 12, 7


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(BATCH, LOOKBACK, FEATURES, generator=torch.Generator().manual_seed(seed))


def _nets() -> dict[str, nn.Module]:
    return {
        "gru": GRUClassifier.from_config(GRUConfig(hidden_size=6, num_layers=2), FEATURES),
        "attention_lstm": AttentionLSTMClassifier.from_config(
            AttentionLSTMConfig(hidden_size=6, num_layers=2, attention_dim=4), FEATURES
        ),
        "cnn_lstm": CNNLSTMClassifier.from_config(CNNLSTMConfig(hidden_size=6, conv_channels=(4, 5)), FEATURES),
    }


def test_each_net_maps_windows_to_class_logits_and_refuses_flat_rows() -> None:
    for name, net in _nets().items():
        net.eval()
        assert net(_x()).shape == (BATCH, 3), name
        with pytest.raises(ValueError, match=r"expects \(batch, lookback, n_features\)"):
            net(torch.randn(BATCH, FEATURES))


def test_every_recurrent_block_is_layer_normalized_and_every_convolution_batch_normalized() -> None:
    for name, net in _nets().items():
        blocks = [m for m in net.modules() if isinstance(m, RecurrentBlocks)]
        assert len(blocks) == 1, name
        assert len(blocks[0].norms) == len(blocks[0].layers) >= 1
        assert all(isinstance(n, nn.LayerNorm) for n in blocks[0].norms)
    cnn = _nets()["cnn_lstm"]
    layers = list(cnn.conv)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv1d)]
    assert len(convs) == 2 and all(isinstance(layers[i + 1], nn.BatchNorm1d) for i in convs)
    gru = _nets()["gru"]
    assert all(isinstance(layer, nn.GRU) for layer in gru.recurrent.layers)


def test_attention_weights_sum_to_one_over_the_lookback_and_weight_the_steps() -> None:
    net = _nets()["attention_lstm"].eval()
    with torch.no_grad():
        context, weights = net.attend(_x())
    assert weights.shape == (BATCH, LOOKBACK) and context.shape == (BATCH, 6)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(BATCH))
    assert (weights > 0).all() and not torch.allclose(weights, torch.full_like(weights, 1 / LOOKBACK))
    recurrent = net.recurrent(_x())
    torch.testing.assert_close(context, (weights.unsqueeze(-1) * recurrent).sum(dim=1))
    cnn = _nets()["cnn_lstm"].eval()
    with torch.no_grad():
        _, cnn_weights = cnn.attention(cnn.sequence(_x()))
    torch.testing.assert_close(cnn_weights.sum(dim=1), torch.ones(BATCH))


def test_cnn_options_pooling_in_time_and_no_attention() -> None:
    pooled = CNNLSTMClassifier.from_config(CNNLSTMConfig(hidden_size=4, conv_channels=(3,), pool_size=3), FEATURES)
    assert pooled.eval().sequence(_x()).shape == (BATCH, LOOKBACK // 3, 4)
    plain = CNNLSTMClassifier.from_config(CNNLSTMConfig(hidden_size=4, conv_channels=(3,), attention=False), FEATURES)
    assert plain.attention is None and plain.eval()(_x()).shape == (BATCH, 3)


@pytest.mark.parametrize(
    ("model_type", "section", "message"),
    [
        ("cnn_lstm", {"lookback": 4, "pool_size": 5}, r"models\.cnn_lstm\.pool_size: .*longer than the lookback \(4\)"),
        ("cnn_lstm", {"conv_channels": [8, 0]}, r"models\.cnn_lstm\.conv_channels: .*at least one filter"),
        ("gru", {"pooling": "median"}, r"models\.gru\.pooling: Input should be 'last', 'mean' or 'max'"),
        ("attention_lstm", {"attention_dim": 0}, r"models\.attention_lstm\.attention_dim: Input should be greater"),
    ],
)
def test_bad_settings_name_the_key(model_type: str, section: dict, message: str) -> None:
    models = ModelsConfig.model_validate({model_type: section})
    with pytest.raises(StrategyError, match=message):
        get_spec(model_type).parse_config(models, "s.yaml")


@pytest.fixture(scope="module")
def trained(msft_inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each new type trained a few epochs on MSFT (the fast settings), in a run folder of its own."""
    out = {}
    for model_type in NEW_TYPES:
        run_dir = tmp_path_factory.mktemp(model_type) / "run"
        train_model(
            model_type,
            msft_inputs.splits,
            msft_inputs.augmented,
            msft_inputs.strategy,
            symbol="MSFT",
            run_dir=run_dir,
            run_info={},
        )
        out[model_type] = run_dir
    return out


@pytest.mark.parametrize("model_type", NEW_TYPES)
def test_trains_on_msft_and_reloads_with_weights_only(
    trained: dict[str, Path], msft_inputs: Inputs, model_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = trained[model_type]
    result = json.loads((run_dir / "metrics.json").read_text())
    config = get_spec(model_type).parse_config(msft_inputs.strategy.models)
    assert 1 <= result["epochs_run"] <= config.epochs
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))  # where it loads
    predict, lookback = load_predictor(run_dir)
    assert calls and all(kw.get("weights_only") is True for kw in calls)
    assert lookback == config.lookback
    splits = msft_inputs.splits
    for part, key in (("validation", "val_metrics"), ("test", "test_metrics")):
        frame = splits.parts()[part]
        proba = predict(frame[splits.feature_names].to_numpy(dtype=np.float64))
        assert proba.shape == (len(frame) - lookback + 1, 3)
        accuracy = np.mean(proba.argmax(axis=1) == frame["label"].to_numpy()[lookback - 1 :])
        assert accuracy == pytest.approx(result[key]["accuracy"]), part


def test_the_same_seed_trains_the_same_gru(msft_inputs: Inputs, tmp_path: Path) -> None:
    strategy = msft_inputs.strategy
    runs = [
        train_model(
            "gru", msft_inputs.splits, msft_inputs.augmented, strategy, symbol="MSFT", run_dir=tmp_path / n, run_info={}
        )
        for n in ("a", "b")
    ]
    assert runs[0].result["history"] == runs[1].result["history"]
    a, b = (torch.load(tmp_path / n / "model.pt", weights_only=True) for n in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
