"""The decision rule is chosen on validation for accuracy, preferring the simplest rule on a tie; the
constant rule makes a rule no worse than the validation majority, and the prior correction undoes a
class-weighted loss's tilt toward rare classes."""

import numpy as np
import pytest

from ktrdr_assets.core.selection.decision import apply_decision_rule, choose_decision_rule, predicted_shares


def test_argmax_wins_ties():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])
    rule = choose_decision_rule(proba, np.array([0, 1, 2]))
    assert rule["kind"] == "argmax" and rule["val_accuracy"] == 1.0 and rule["description"] == "argmax"
    assert rule["predicted_shares"] == pytest.approx({"SELL": 1 / 3, "HOLD": 1 / 3, "BUY": 1 / 3})


def test_a_model_worse_than_the_majority_falls_back_to_the_constant_rule():
    rng = np.random.default_rng(0)
    y = np.where(rng.random(300) < 0.6, 1, rng.choice([0, 2], 300))  # 60 %+ HOLD
    proba = rng.dirichlet([1, 0.2, 1], 300)  # a rare-class-loving model that never favours HOLD
    rule = choose_decision_rule(proba, y)
    assert rule["val_accuracy"] >= np.mean(y == 1)
    assert rule["val_accuracy"] > rule["val_accuracy_at_argmax"]


def test_prior_correction_undoes_balanced_weights():
    # true class shares 10 / 80 / 10 %; a balanced-weighted model inflates SELL and BUY by 1 / share
    rng = np.random.default_rng(1)
    y = rng.choice(3, 2000, p=[0.1, 0.8, 0.1])
    calibrated = np.full((2000, 3), 0.1)
    calibrated[np.arange(2000), y] += 0.25  # informative but soft
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    weights = [1 / (3 * 0.1), 1 / (3 * 0.8), 1 / (3 * 0.1)]
    tilted = calibrated * weights
    tilted /= tilted.sum(axis=1, keepdims=True)
    rule = choose_decision_rule(tilted, y, weights)
    assert rule["kind"] in {"prior_corrected", "hold_threshold"}
    assert rule["val_accuracy"] > rule["val_accuracy_at_argmax"]
    corrected = apply_decision_rule(tilted, {"kind": "prior_corrected", "class_weights": weights})
    assert np.array_equal(corrected, calibrated.argmax(axis=1))


def test_rules_apply_as_described():
    proba = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
    assert apply_decision_rule(proba, {"kind": "hold_threshold", "threshold": 0.6}).tolist() == [1, 1, 1]
    assert apply_decision_rule(proba, {"kind": "constant", "class": "BUY"}).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="unknown decision rule kind 'vote'"):
        apply_decision_rule(proba, {"kind": "vote"})
    assert predicted_shares(np.array([1, 1, 2, 0])) == {"SELL": 0.25, "HOLD": 0.5, "BUY": 0.25}
