import pytest

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.selection.gates import GateResult, evaluate_gates, passes_all, read_accuracies

GATES = GatesConfig()  # max_gap 0.20, min_accuracy 0.55, max_val_test_diff 0.05


def result(train: float, val: float, test: float, baseline: float = 0.40, name: str = "XGBoost") -> dict:
    return {
        "model_name": name,
        "symbol": "EURUSD",
        "history": {"train_accuracy": train, "val_accuracy": val, "test_accuracy": test},
        "test_majority_baseline": {"class": "HOLD", "accuracy": baseline},
    }


def by_name(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.name: r for r in results}


def test_good_model_passes_all_three_gates():
    gates = evaluate_gates(result(0.80, 0.70, 0.68), GATES)
    assert [g.name for g in gates] == ["overfitting_gap", "accuracy", "stability"]
    assert passes_all(gates)
    g = by_name(gates)
    assert g["overfitting_gap"].value == pytest.approx(0.10)
    assert g["overfitting_gap"].description == "train-val gap 0.100 <= max 0.200"
    assert g["accuracy"].baseline == 0.40
    assert g["stability"].value == pytest.approx(0.02)


def test_overfit_model_fails_the_gap_gate_only():
    g = by_name(evaluate_gates(result(0.97, 0.70, 0.70), GATES))
    assert not g["overfitting_gap"].passed
    assert g["overfitting_gap"].value == pytest.approx(0.27)
    assert g["overfitting_gap"].threshold == 0.20
    assert g["overfitting_gap"].description == "train-val gap 0.270 > max 0.200"
    assert g["accuracy"].passed and g["stability"].passed
    assert not passes_all(g.values())


def test_gap_exactly_at_the_limit_passes_despite_float_rounding():
    assert 0.9 - 0.7 > 0.2  # the float trap the gate must absorb
    g = by_name(evaluate_gates(result(0.90, 0.70, 0.70), GATES))
    assert g["overfitting_gap"].passed


def test_majority_baseline_model_fails_accuracy_even_above_the_floor():
    # 0.60 >= 0.55, but predicting HOLD everywhere already scores 0.65 on this test set
    g = by_name(evaluate_gates(result(0.66, 0.62, 0.60, baseline=0.65), GATES))
    acc = g["accuracy"]
    assert not acc.passed
    assert (acc.value, acc.threshold, acc.baseline) == (0.60, 0.55, 0.65)
    assert acc.description == "test accuracy 0.600 not above majority baseline 0.650 (HOLD)"


def test_baseline_class_name_is_read_from_majority_class():
    r = result(0.66, 0.62, 0.60, baseline=0.65)
    r["test_majority_baseline"] = {"majority_class": "SELL", "accuracy": 0.65}
    assert by_name(evaluate_gates(r, GATES))["accuracy"].description.endswith("baseline 0.650 (SELL)")


def test_accuracy_equal_to_the_baseline_fails():
    assert not by_name(evaluate_gates(result(0.72, 0.70, 0.70, baseline=0.70), GATES))["accuracy"].passed


def test_accuracy_below_floor_and_baseline_names_both_reasons():
    acc = by_name(evaluate_gates(result(0.55, 0.50, 0.50, baseline=0.52), GATES))["accuracy"]
    assert not acc.passed
    assert acc.description == (
        "test accuracy 0.500 < min 0.550; test accuracy 0.500 not above majority baseline 0.520 (HOLD)"
    )


def test_unstable_model_fails_stability():
    st = by_name(evaluate_gates(result(0.75, 0.70, 0.60), GATES))["stability"]
    assert not st.passed
    assert st.value == pytest.approx(0.10)
    assert st.description == "|val - test| accuracy 0.100 > max 0.050"


def test_thresholds_come_from_the_config():
    strict = GatesConfig(max_gap=0.05, min_accuracy=0.75, max_val_test_diff=0.01)
    g = by_name(evaluate_gates(result(0.80, 0.70, 0.68), strict))
    assert not any(x.passed for x in g.values())
    assert g["accuracy"].threshold == 0.75


def test_missing_accuracy_names_model_and_key():
    bad = result(0.8, 0.7, 0.7)
    del bad["history"]["val_accuracy"]
    with pytest.raises(ValueError, match=r"EURUSD/XGBoost: history\.val_accuracy is missing"):
        evaluate_gates(bad, GATES)


def test_missing_baseline_names_the_key():
    bad = result(0.8, 0.7, 0.7)
    del bad["test_majority_baseline"]
    with pytest.raises(ValueError, match=r"test_majority_baseline\.accuracy is missing"):
        read_accuracies(bad)


@pytest.mark.parametrize("value", [float("nan"), 1.2, -0.1, "high"])
def test_invalid_accuracy_is_rejected(value):
    bad = result(0.8, 0.7, 0.7)
    bad["history"]["test_accuracy"] = value
    with pytest.raises(ValueError, match=r"history\.test_accuracy = .* is not an accuracy in \[0, 1\]"):
        evaluate_gates(bad, GATES)
