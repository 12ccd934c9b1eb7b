"""The gates read the walk-forward evidence: OOF accuracy vs the best baseline by the binomial test (Bonferroni
over the model types), mean fold gap, fold stability; never the holdout."""

import pytest

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.selection.gates import NO_EVIDENCE, GateResult, evaluate_gates, model_alpha, passes_all
from ktrdr_assets_tests.helpers import evidence_result

GATES = GatesConfig()  # max_gap 0.20, min_accuracy 0.55, alpha 0.01 Bonferroni, 60 % of folds, std 0.10


def by_name(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.name: r for r in results}


def test_defaults_are_the_documented_ones():
    assert (GATES.alpha, GATES.multiple_testing, GATES.min_accuracy, GATES.max_gap) == (0.01, "bonferroni", 0.55, 0.20)
    assert (GATES.min_folds_above_baseline, GATES.max_fold_accuracy_std) == (0.6, 0.10)
    assert GATES.min_deflated_sharpe_probability is None


def test_a_significant_stable_model_passes_all_three_gates_with_the_figures_in_details():
    gates = evaluate_gates(evidence_result(), GATES, n_models=4)
    assert [g.name for g in gates] == ["overfitting_gap", "accuracy", "stability"]
    assert passes_all(gates)
    g = by_name(gates)
    accuracy = g["accuracy"]
    assert accuracy.value == 0.70 and accuracy.threshold == 0.55 and accuracy.baseline == 0.45
    assert accuracy.details["alpha"] == pytest.approx(0.0025)  # 0.01 / 4 model types
    assert accuracy.details["p_value"] == 1e-6 and accuracy.details["n"] == 1000
    assert accuracy.details["n_effective"] == 120
    assert accuracy.details["majority_baseline"] == 0.45 and accuracy.details["persistence_baseline"] == 0.40
    assert (accuracy.details["wilson_95_low"], accuracy.details["wilson_95_high"]) == pytest.approx((0.62, 0.78))
    assert accuracy.description.startswith("out-of-fold accuracy 0.700 >= min 0.550 and above best baseline 0.450")
    assert g["overfitting_gap"].description == "mean fold train-val gap 0.050 <= max 0.200"
    assert g["stability"].value == 1.0


def test_an_accuracy_above_the_baseline_by_luck_fails_the_test():
    """0.60 vs 0.56 clears min_accuracy and the baseline, but p = 0.02 is not below 0.01 / 4."""
    acc = by_name(evaluate_gates(evidence_result(oof=0.60, baseline=0.56, p_value=0.02), GATES, n_models=4))["accuracy"]
    assert not acc.passed
    assert acc.description == (
        "out-of-fold accuracy 0.600 not significantly above best baseline 0.560 (majority (HOLD)): "
        "p = 0.02 >= alpha 0.0025"
    )


def test_bonferroni_divides_alpha_by_the_competing_model_types():
    result = evidence_result(p_value=0.004)
    assert by_name(evaluate_gates(result, GATES, n_models=1))["accuracy"].passed
    assert not by_name(evaluate_gates(result, GATES, n_models=4))["accuracy"].passed
    assert by_name(evaluate_gates(result, GatesConfig(multiple_testing="none"), n_models=4))["accuracy"].passed
    assert model_alpha(GATES, 5) == pytest.approx(0.002)


def test_the_floor_still_applies_to_a_significant_model():
    acc = by_name(evaluate_gates(evidence_result(oof=0.50, baseline=0.35), GATES, n_models=4))["accuracy"]
    assert not acc.passed and acc.description == "out-of-fold accuracy 0.500 < min 0.550"


def test_gap_is_the_mean_over_folds_and_allows_float_rounding():
    assert not by_name(evaluate_gates(evidence_result(gap=0.25), GATES))["overfitting_gap"].passed
    assert by_name(evaluate_gates(evidence_result(gap=0.9 - 0.7), GATES))["overfitting_gap"].passed


@pytest.mark.parametrize(
    ("share", "std", "message"),
    [
        (0.4, 0.03, "40% of folds above their baseline < min 60%"),
        (1.0, 0.15, "fold accuracy std 0.150 > max 0.100"),
    ],
)
def test_stability_needs_most_folds_above_their_baseline_and_a_small_spread(share, std, message):
    stability = by_name(evaluate_gates(evidence_result(share_above=share, std=std), GATES))["stability"]
    assert not stability.passed and stability.description == message
    assert stability.details["fold_accuracies"] == [0.70] * 5


def test_the_holdout_never_decides():
    bad_holdout = evidence_result(holdout=0.10)
    assert passes_all(evaluate_gates(bad_holdout, GATES, n_models=4))


def test_a_result_without_evidence_fails_every_gate_with_the_reason():
    gates = evaluate_gates({"model_name": "XGBoost", "history": {"test_accuracy": 0.9}}, GATES)
    assert [g.passed for g in gates] == [False, False, False]
    assert {g.description for g in gates} == {NO_EVIDENCE}


def test_malformed_evidence_raises_naming_model_and_key():
    bad = evidence_result()
    del bad["evidence"]["oof"]["p_value"]
    with pytest.raises(ValueError, match=r"model result EURUSD/XGBoost: evidence\.oof\.p_value is missing"):
        evaluate_gates(bad, GATES)
    bad = evidence_result(gap=float("nan"))
    with pytest.raises(ValueError, match=r"evidence\.mean_gap = nan is not a number"):
        evaluate_gates(bad, GATES)
