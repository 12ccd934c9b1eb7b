"""Gradient clipping bounds what the optimizer applies: on inputs scaled so that raw gradients are huge, every
optimizer step sees a total gradient norm at most `grad_clip_norm`, while the recorded norm before clipping is
far above it (the clipping was active, not vacuous)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.models.neural_network import MLPClassifier, NeuralNetworkConfig
from ktrdr_assets.core.training.trainer import train_torch_model


def _huge_gradient_data(n: int = 200, n_features: int = 4):
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(n, n_features)) * 1e4).astype(np.float32)  # raw gradients in the thousands
    y = rng.integers(0, 3, n)
    return (X[:150], y[:150]), (X[150:], y[150:])


def _norms_seen_by_the_optimizer(monkeypatch: pytest.MonkeyPatch, clip: float) -> tuple[list[float], object]:
    seen: list[float] = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    config = NeuralNetworkConfig(
        epochs=2, batch_size=32, hidden_layers=(8,), device="cpu", grad_clip_norm=clip, learning_rate=1e-3
    )
    train, validation = _huge_gradient_data()
    model = MLPClassifier.from_config(config, n_features=train[0].shape[1])
    result = train_torch_model(
        model, train, validation, config, AnalyticsConfig(enabled=False), seed=1, run_info={"run_id": "clip"}
    )
    return seen, result


def test_every_applied_update_has_a_clipped_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    seen, result = _norms_seen_by_the_optimizer(monkeypatch, clip=0.5)
    assert len(seen) >= 8  # 5 batches x 2 epochs
    assert max(seen) <= 0.5 * (1 + 1e-5)
    assert max(row["gradient_total_norm_max"] for row in result.history) > 50  # before clipping: far above


def test_without_a_tight_clip_the_same_updates_are_unbounded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen, _ = _norms_seen_by_the_optimizer(monkeypatch, clip=1e9)
    assert max(seen) > 50
