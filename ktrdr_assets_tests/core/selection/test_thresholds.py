import numpy as np
import pytest
from sklearn.metrics import f1_score

from ktrdr_assets.core.data.signals import Signal
from ktrdr_assets.core.selection.thresholds import DEFAULT_GRID, apply_decision_threshold, optimize_decision_margin

SELL, HOLD, BUY = int(Signal.SELL), int(Signal.HOLD), int(Signal.BUY)


def test_apply_decision_threshold_rule():
    proba = np.array(
        [
            [0.10, 0.20, 0.70],  # confident BUY
            [0.60, 0.30, 0.10],  # SELL, below 0.65 -> HOLD
            [0.30, 0.50, 0.20],  # argmax HOLD stays HOLD
            [0.70, 0.20, 0.10],  # confident SELL
            [0.20, 0.15, 0.65],  # BUY exactly at the threshold counts
        ]
    )
    assert apply_decision_threshold(proba, 0.65).tolist() == [BUY, HOLD, HOLD, SELL, BUY]
    assert apply_decision_threshold(proba, 0.34).tolist() == [BUY, SELL, HOLD, SELL, BUY]


def crafted_validation() -> tuple[np.ndarray, np.ndarray]:
    """Confident BUY/SELL calls are right; low-confidence (0.45) ones are really HOLD."""
    right_buy = [0.10, 0.10, 0.80]
    right_sell = [0.80, 0.10, 0.10]
    weak_buy = [0.20, 0.35, 0.45]
    weak_sell = [0.45, 0.35, 0.20]
    proba = np.array([right_buy] * 10 + [right_sell] * 10 + [weak_buy] * 10 + [weak_sell] * 10)
    y = np.array([BUY] * 10 + [SELL] * 10 + [HOLD] * 20)
    return proba, y


def test_higher_threshold_picked_when_it_raises_validation_macro_f1():
    proba, y = crafted_validation()
    out = optimize_decision_margin(proba, y)
    # argmax: BUY predicted 20x (10 right), SELL 20x (10 right), HOLD never -> F1 = 2/3, 2/3, 0
    assert out["val_macro_f1_at_argmax"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    # any threshold in (0.45, 0.80] is perfect; the lowest grid point above 0.45 is 0.46
    assert out["threshold"] == pytest.approx(0.46)
    assert out["val_macro_f1"] == pytest.approx(1.0)
    assert out["grid_size"] == 29


def test_macro_f1_matches_sklearn_on_random_probabilities():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=300)
    y = rng.integers(0, 3, size=300)
    out = optimize_decision_margin(proba, y)
    expected = [f1_score(y, apply_decision_threshold(proba, t), average="macro") for t in DEFAULT_GRID]
    best = int(np.argmax(expected))
    assert out["threshold"] == pytest.approx(DEFAULT_GRID[best])
    assert out["val_macro_f1"] == pytest.approx(expected[best])
    assert out["val_macro_f1_at_argmax"] == pytest.approx(f1_score(y, proba.argmax(axis=1), average="macro"))


def test_ties_go_to_the_lowest_threshold():
    proba = np.array([[0.05, 0.05, 0.90], [0.90, 0.05, 0.05], [0.05, 0.90, 0.05]])
    y = np.array([BUY, SELL, HOLD])
    out = optimize_decision_margin(proba, y, grid=np.array([0.4, 0.6, 0.8]))
    assert out["threshold"] == 0.4
    assert out["val_macro_f1"] == 1.0


def test_threshold_follows_the_validation_labels():
    proba, y = crafted_validation()
    flipped = np.where(y == HOLD, BUY, y)  # if the weak calls were real BUYs, argmax-like is best
    assert optimize_decision_margin(proba, flipped)["threshold"] == pytest.approx(0.34)


@pytest.mark.parametrize(
    ("proba", "y", "grid", "match"),
    [
        (
            np.ones((4, 2)) / 2,
            np.ones(4),
            DEFAULT_GRID,
            r"val_proba must have shape \(n > 0, 3\).*got \(4, 2\)",
        ),
        (np.full((2, 3), 1 / 3), np.ones(3), DEFAULT_GRID, r"y_val must have shape \(2,\).*got \(3,\)"),
        (np.full((2, 3), 1 / 3), np.array([1, 5]), DEFAULT_GRID, r"y_val must hold Signal codes 0\.\.2"),
        (np.array([[0.2, np.nan, 0.8]]), np.ones(1), DEFAULT_GRID, r"val_proba row 0 .* not a probability"),
        (np.full((2, 3), 1 / 3), np.ones(2), np.array([0.6, 0.4]), r"grid must be .*strictly increasing"),
    ],
)
def test_bad_inputs_are_rejected(proba, y, grid, match):
    with pytest.raises(ValueError, match=match):
        optimize_decision_margin(proba, y, grid=grid)
