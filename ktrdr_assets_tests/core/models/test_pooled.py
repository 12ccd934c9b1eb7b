"""Pooled multi-symbol training (note 003) through the core: which symbols are pooled, which rows the
network is given (never a validation or test row of any symbol, asserted on the row indices and on the
values), the id map saved with the model, per-symbol evaluation and reloading (weights_only=True), the
unknown-asset row for a symbol never seen, and when a pooled model may not score a symbol."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.data.splits import LABEL
from ktrdr_assets.core.models import pooled
from ktrdr_assets.core.models.loading import load_predictor
from ktrdr_assets.core.models.pooled import (
    SymbolData,
    asset_id_map,
    compatible_symbols,
    evaluate_pooled,
    evaluation_status,
    pooled_sets,
    pooled_strategy,
    train_pooled,
)
from ktrdr_assets.core.models.pooled_net import ASSET_IDS_FILE, SUMMARY_FILE, UNKNOWN_ASSET_ID, PooledNet
from ktrdr_assets.core.models.registry import get_spec
from ktrdr_assets.core.models.training_runs import config_fingerprint, splits_fingerprint
from ktrdr_assets.core.selection.candidates import current_candidates
from ktrdr_assets.core.selection.gates import GATE_RULES, NO_EVIDENCE, evaluate_gates
from ktrdr_assets.core.selection.selector import select_model
from ktrdr_assets_tests.helpers import TINY, Inputs, build_inputs, evidence_result, write_strategy

POOLED = ("MSFT", "AAPL")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Inputs]:
    """MSFT, AAPL and EURUSD through the core data stage, with the fast models."""
    path = write_strategy(tmp_path_factory.mktemp("pooled") / "strategy.yaml", models=TINY)
    return {symbol: build_inputs(symbol, path) for symbol in (*POOLED, "EURUSD")}


@pytest.fixture(scope="module")
def data(inputs: dict[str, Inputs]) -> dict[str, SymbolData]:
    return {s: SymbolData(inputs[s].splits, inputs[s].augmented) for s in POOLED}


def _base(inputs: dict[str, Inputs]):
    return inputs["MSFT"].strategy.model_copy(update={"symbol_overrides": {}})


def _renamed(data: SymbolData) -> SymbolData:
    """The same symbol with one feature renamed: another feature set."""
    old = data.splits.feature_names[0]
    rename = {old: f"{old}_other"}
    splits = replace(
        data.splits,
        train=data.splits.train.rename(columns=rename),
        validation=data.splits.validation.rename(columns=rename),
        test=data.splits.test.rename(columns=rename),
        feature_names=[rename.get(n, n) for n in data.splits.feature_names],
    )
    return SymbolData(splits, data.augmented.rename(columns=rename))


def test_symbols_with_another_feature_set_are_left_out_with_the_reason(data: dict[str, SymbolData]) -> None:
    symbols, names, excluded = compatible_symbols({**data, "ODD": _renamed(data["MSFT"])})
    assert symbols == ["AAPL", "MSFT"] and names == data["MSFT"].splits.feature_names
    assert list(excluded) == ["ODD"] and "feature names differ from the pooled set" in excluded["ODD"]
    assert "missing" in excluded["ODD"]
    assert asset_id_map(symbols) == {"AAPL": 1, "MSFT": 2} and UNKNOWN_ASSET_ID == 0


@pytest.mark.parametrize("model_type", ["neural_network", "lstm"])
def test_the_pooled_network_is_given_train_rows_only(data: dict[str, SymbolData], model_type: str) -> None:
    spec = get_spec(f"pooled_{model_type}")
    lookback = 5 if spec.uses_sequences else 1
    ids = asset_id_map(list(data))
    train, validation = pooled_sets(spec, lookback, data, ids)
    assert set(train.rows) == set(validation.rows) == set(ids)
    offset = 0
    for symbol in sorted(ids):  # samples are stacked symbol by symbol, in id order
        splits = data[symbol].splits
        rows = train.rows[symbol]
        real = rows[rows.notna()]
        assert real.isin(splits.train.index).all()  # the row indices it was given: train rows ...
        assert not real.isin(splits.validation.index).any() and not real.isin(splits.test.index).any()
        assert real.max() < splits.validation.index.min()  # ... all before the purge gap
        assert validation.rows[symbol].equals(splits.validation.index)
        n = train.samples[symbol]
        X = train.X[offset : offset + n]
        assert (X[..., -1] == ids[symbol]).all()  # every sample carries its own symbol's id
        expected = splits.train[splits.feature_names].to_numpy(np.float32)
        if spec.uses_sequences:  # windows of consecutive train rows of this symbol only
            assert n == len(splits.train) - lookback + 1
            np.testing.assert_array_equal(X[:, -1, :-1].numpy(), expected[lookback - 1 :])
            np.testing.assert_array_equal(X[:, 0, :-1].numpy(), expected[:n])
        else:  # the augmented train set: its original rows are exactly the train rows
            augmented = data[symbol].augmented
            assert n == len(augmented) and rows.equals(augmented.index)
            np.testing.assert_array_equal(X[: len(splits.train), :-1].numpy(), expected)
        np.testing.assert_array_equal(train.y[offset : offset + n].numpy()[-5:], splits.train[LABEL].to_numpy()[-5:])
        offset += n
    assert offset == len(train.y)


@pytest.fixture(scope="module")
def trained(
    inputs: dict[str, Inputs], data: dict[str, SymbolData], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, dict]:
    """The pooled LSTM trained on MSFT and AAPL, with the tensors the training loop was given."""
    given = {}
    real_fit = pooled.fit_torch

    def recording_fit(net, train, validation, *args, **kwargs):
        given["train"], given["validation"], given["net"] = train, validation, net
        return real_fit(net, train, validation, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pooled, "fit_torch", recording_fit)
        summary = train_pooled(
            "lstm",
            data,
            _base(inputs),
            run_dir=tmp_path_factory.mktemp("pooled_lstm") / "run",
            run_info={"run_id": "t"},
        )
    return summary, given


def test_training_gets_exactly_the_pooled_sets_and_saves_the_id_map(
    trained: tuple[dict, dict], data: dict[str, SymbolData], inputs: dict[str, Inputs]
) -> None:
    summary, given = trained
    spec = get_spec("pooled_lstm")
    config = spec.parse_config(_base(inputs).models)
    train, validation = pooled_sets(spec, config.lookback, data, summary["asset_ids"])
    torch.testing.assert_close(given["train"][0], train.X)
    torch.testing.assert_close(given["validation"][0], validation.X)
    assert isinstance(given["net"], PooledNet) and given["net"].embedding.num_embeddings == len(POOLED) + 1
    assert given["net"].embedding.embedding_dim == config.embedding_dim == 8
    run_dir = Path(summary["run_dir"])
    saved = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert saved["asset_ids"] == summary["asset_ids"] == {"AAPL": 1, "MSFT": 2}
    assert saved["unknown_asset_id"] == 0 and saved["config"] == config.model_dump(mode="json")
    assert saved["config_fingerprint"] == config_fingerprint(config, _base(inputs).seed, _base(inputs).evaluation)
    no_features = "its features frame was not given to the pooled training"
    assert saved["evidence"]["without_evidence"] == dict.fromkeys(POOLED, no_features)
    for symbol in POOLED:
        last = pd.Timestamp(saved["symbols"][symbol]["train_rows"]["last"])
        assert last == data[symbol].splits.train.index.max() < data[symbol].splits.validation.index.min()
    assert {"model.pt", "metrics.csv", "learning_curves.png"} <= {p.name for p in run_dir.iterdir()}
    assert 1 <= saved["details"]["epochs_run"] == len(saved["history"]) <= config.epochs


def _evaluate(summary: dict, inputs: dict[str, Inputs], symbol: str, run_dir: Path):
    own = inputs[symbol]
    strategy = pooled_strategy(own.strategy, _base(inputs))
    return evaluate_pooled(summary, own.splits, own.augmented, strategy, symbol=symbol, run_dir=run_dir, run_info={})


@pytest.mark.parametrize("symbol", ["MSFT", "EURUSD"])
def test_evaluated_per_symbol_and_reloaded_with_weights_only(
    trained: tuple[dict, dict], inputs: dict[str, Inputs], symbol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary, _ = trained
    record = _evaluate(summary, inputs, symbol, tmp_path / symbol)
    assert (record.model_type, record.model_name, record.symbol) == ("pooled_lstm", "PooledLSTM", symbol)
    ids = json.loads((tmp_path / symbol / ASSET_IDS_FILE).read_text())
    assert ids["asset_ids"] == summary["asset_ids"]
    seen = symbol in summary["asset_ids"]
    assert ids["asset_id"] == (summary["asset_ids"][symbol] if seen else UNKNOWN_ASSET_ID)
    assert record.result["pooled"]["asset_embedding"] == ("trained" if seen else "unknown asset row")
    assert any("unknown-asset embedding" in w for w in record.result["warnings"]) is not seen
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))  # where it loads
    predict, lookback = load_predictor(tmp_path / symbol)
    assert calls and all(kw.get("weights_only") is True for kw in calls)
    splits = inputs[symbol].splits  # its own validation and test rows, with its own scaler
    for part, key in (("validation", "val_metrics"), ("test", "test_metrics")):
        frame = splits.parts()[part]
        proba = predict(frame[splits.feature_names].to_numpy(np.float64))
        accuracy = np.mean(proba.argmax(axis=1) == frame[LABEL].to_numpy()[lookback - 1 :])
        assert accuracy == pytest.approx(record.result[key]["accuracy"]) and len(proba) == len(frame) - lookback + 1


def test_the_id_changes_the_prediction(trained: tuple[dict, dict], inputs: dict[str, Inputs], tmp_path: Path) -> None:
    summary, _ = trained
    for symbol in POOLED:
        _evaluate(summary, inputs, symbol, tmp_path / symbol)
    test = inputs["MSFT"].splits.test
    X = test[inputs["MSFT"].splits.feature_names].to_numpy(np.float64)
    as_msft, as_aapl = (load_predictor(tmp_path / s)[0](X) for s in POOLED)
    assert not np.allclose(as_msft, as_aapl)


def test_when_a_pooled_model_may_not_score_a_symbol(trained: tuple[dict, dict], inputs: dict[str, Inputs]) -> None:
    summary, _ = trained
    current = summary["config_fingerprint"]
    msft = inputs["MSFT"].splits
    assert evaluation_status(summary, "MSFT", msft, current) is None
    assert evaluation_status(summary, "EURUSD", inputs["EURUSD"].splits, current) is None  # unknown-asset row
    assert "another config" in evaluation_status(summary, "MSFT", msft, "0" * 16)
    shorter = replace(msft, test=msft.test.iloc[:-1])  # the symbol's data changed since the pooled training
    assert "other data of MSFT" in evaluation_status(summary, "MSFT", shorter, current)
    other = _renamed(SymbolData(msft, inputs["MSFT"].augmented)).splits
    assert "feature names differ" in evaluation_status(summary, "NEW", other, current)
    assert "no pooled model trained yet" in evaluation_status(None, "MSFT", msft, current)


def test_too_few_compatible_symbols_skip_the_pooled_training(
    data: dict[str, SymbolData], inputs: dict[str, Inputs], tmp_path: Path
) -> None:
    summary = train_pooled("neural_network", {"MSFT": data["MSFT"]}, _base(inputs), run_dir=tmp_path / "r", run_info={})
    assert summary["status"] == "skipped" and "min_symbols is 2" in summary["reason"]
    assert not (tmp_path / "r").exists()


def test_a_pooled_candidate_without_walk_forward_evidence_is_judged_by_the_same_gates_and_rejected(
    trained: tuple[dict, dict], inputs: dict[str, Inputs], tmp_path: Path
) -> None:
    """A pooled network trained without the symbols' features ran no pooled walk-forward: its record is a
    current candidate of the symbol's selection (fingerprinted as the selection asset does), judged by the
    same gates as every other model, and rejected by each of them for lack of evidence: never deployed on
    the holdout alone (tests/core/selection/test_pooled_walk_forward.py: with evidence it can win)."""
    summary, _ = trained
    record = _evaluate(summary, inputs, "MSFT", tmp_path / "MSFT")
    strategy = pooled_strategy(inputs["MSFT"].strategy, _base(inputs))
    assert record.result.get("evidence") is None
    gates = evaluate_gates(record.result, strategy.gates)
    assert [g.name for g in gates] == list(GATE_RULES)
    assert all(not g.passed and g.description == NO_EVIDENCE for g in gates)
    config = get_spec("pooled_lstm").parse_config(strategy.models)
    fingerprints = {"pooled_lstm": config_fingerprint(config, strategy.seed, strategy.evaluation)}
    records = {"pooled_lstm": record.to_stored()}
    candidates, excluded = current_candidates(records, splits_fingerprint(inputs["MSFT"].splits), fingerprints)
    assert excluded == {} and set(candidates) == {"PooledLSTM"}
    selection = select_model("MSFT", candidates, strategy.gates)
    assert selection["selected_model"] is None
    assert selection["rejected"] == {"PooledLSTM": [f"{gate}: {NO_EVIDENCE}" for gate in GATE_RULES]}


def test_a_pooled_result_with_passing_evidence_can_win_a_symbols_selection() -> None:
    """Once a pooled candidate carries walk-forward evidence that passes the gates, the selector treats it as
    any other candidate: the best out-of-fold score wins, pooled or not."""
    pooled_result = evidence_result(oof=0.72, name="PooledNeuralNetwork", symbol="SAWA")
    pooled_result["pooled"] = {"asset_embedding": "trained", "asset_id": 1, "symbols": ["SAWA", "SAWB"]}
    own = evidence_result(oof=0.62, name="RandomForest", symbol="SAWA")
    gates = GatesConfig()  # the shipped defaults
    assert all(g.passed for g in evaluate_gates(pooled_result, gates))
    selection = select_model("SAWA", {"PooledNeuralNetwork": pooled_result, "RandomForest": own}, gates)
    assert selection["selected_model"] == "PooledNeuralNetwork", selection
    assert selection["alternatives"] == ["RandomForest"] and selection["rejected"] == {}


def test_training_shows_some_samples_as_the_unknown_asset_so_its_row_learns() -> None:
    inner = torch.nn.Linear(3 + 4, 3)
    net = PooledNet(inner, n_assets=2, embedding_dim=4, unknown_rate=0.5)
    windows = torch.cat([torch.randn(64, 5, 3), torch.full((64, 5, 1), 2.0)], dim=-1)  # all symbol 2
    seen = []
    net.embedding.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    torch.manual_seed(0)
    net.train()(windows)
    net.eval()(windows)
    trained_ids, eval_ids = seen
    assert set(trained_ids.unique().tolist()) == {0, 2}  # some samples hidden as the unknown asset ...
    assert (trained_ids == trained_ids[:, :1]).all()  # ... whole windows, never single steps
    assert (eval_ids == 2).all()  # predicting: always the symbol's own id
    with pytest.raises(ValueError, match="unknown_rate must be in"):
        PooledNet(inner, 2, 4, unknown_rate=1.0)
