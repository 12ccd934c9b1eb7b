import json
import math
from datetime import datetime

import numpy as np
import pytest

from ktrdr_assets.core.models.evaluation import (
    build_result,
    classification_metrics,
    cv_summary,
    majority_baseline,
)
from ktrdr_assets.core.util.jsonsafe import dumps

# Hand-worked example: confusion [[1,1,0],[0,2,1],[0,0,1]].
Y_TRUE = np.array([0, 0, 1, 1, 1, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 2])


def test_classification_metrics_known_answer():
    m = classification_metrics(Y_TRUE, Y_PRED)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert m["per_class"]["SELL"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1_score": 2 / 3, "support": 2})
    assert m["per_class"]["HOLD"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1_score": 2 / 3, "support": 3}
    )
    assert m["per_class"]["BUY"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1_score": 2 / 3, "support": 1})
    assert m["precision"] == pytest.approx(13 / 18)
    assert m["recall"] == pytest.approx(13 / 18)
    assert m["f1_score"] == pytest.approx(2 / 3)
    assert m["n_samples"] == 6
    assert type(m["accuracy"]) is float and type(m["per_class"]["BUY"]["support"]) is int


def test_absent_classes_are_present_with_zero_scores():
    m = classification_metrics(np.array([1, 1]), np.array([1, 1]))
    assert list(m["per_class"]) == ["SELL", "HOLD", "BUY"]
    assert m["per_class"]["SELL"] == {"precision": 0.0, "recall": 0.0, "f1_score": 0.0, "support": 0}
    assert m["per_class"]["HOLD"]["f1_score"] == 1.0
    assert m["f1_score"] == pytest.approx(1 / 3)
    assert m["confusion_matrix"] == [[0, 0, 0], [0, 2, 0], [0, 0, 0]]


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([0, 1], [0, 1, 2], "y_true has 2 labels but y_pred has 3"),
        ([0, 3], [0, 1], "y_true has 1 values outside the signal codes"),
        ([], [], "y_true is empty"),
        ([0, 1], [-1, 1], "y_pred has 1 values outside the signal codes"),
    ],
)
def test_classification_metrics_rejects_bad_labels(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(np.array(y_true), np.array(y_pred))


def test_majority_baseline():
    assert majority_baseline(np.array([1, 1, 0, 2, 1])) == {"majority_class": "HOLD", "accuracy": 0.6}
    assert majority_baseline(np.array([2, 0])) == {
        "majority_class": "SELL",
        "accuracy": 0.5,
    }  # tie: lower code


def test_cv_summary_population_std_and_stability():
    unstable = cv_summary([0.6, 0.7, 0.8], max_std=0.05)
    assert unstable["mean_accuracy"] == pytest.approx(0.7)
    assert unstable["std_accuracy"] == pytest.approx(math.sqrt(0.02 / 3))
    assert unstable["is_stable"] is False
    assert cv_summary([0.70, 0.72], max_std=0.05)["is_stable"] is True
    with pytest.raises(ValueError, match="no fold accuracies"):
        cv_summary([], max_std=0.05)


def _result(**overrides):
    train = classification_metrics(np.array([0, 1, 2, 1]), np.array([0, 1, 2, 1]))  # accuracy 1.0
    val = classification_metrics(Y_TRUE, Y_PRED)  # accuracy 2/3
    test = classification_metrics(np.array([2, 2, 2, 1]), np.array([2, 1, 2, 1]))  # accuracy 0.75
    kwargs = {
        "cv": {
            "fold_accuracies": np.array([0.6, 0.7]),
            "mean_accuracy": np.float64(0.65),
            "std_accuracy": np.float64(0.05),
            "is_stable": np.bool_(True),
        },
        "feature_importance": [{"feature": "rsi", "importance": np.float32(0.25), "std": np.float64(np.nan)}],
        "warnings": ["class BUY absent"],
        "duration_s": np.float64(1.5),
    }
    kwargs.update(overrides)
    return build_result("EURUSD", "XGBoost", train, val, test, **kwargs)


def test_build_result_schema():
    r = _result(extra={"best_round": np.int64(7)})
    assert list(r) == [
        "symbol",
        "model_name",
        "timestamp",
        "history",
        "train_metrics",
        "val_metrics",
        "test_metrics",
        "test_majority_baseline",
        "feature_importance",
        "warnings",
        "training_duration_seconds",
        "best_round",
    ]
    assert (r["symbol"], r["model_name"], r["best_round"]) == ("EURUSD", "XGBoost", 7)
    datetime.fromisoformat(r["timestamp"])
    h = r["history"]
    assert h["train_accuracy"] == 1.0 and h["val_accuracy"] == pytest.approx(2 / 3) and h["test_accuracy"] == 0.75
    assert h["train_val_gap"] == pytest.approx(1 / 3)
    assert h["overfitting_detected"] is True
    assert h["cv_fold_accuracies"] == [0.6, 0.7] and h["cv_mean_accuracy"] == 0.65 and h["cv_is_stable"] is True
    assert r["test_majority_baseline"] == {"majority_class": "BUY", "accuracy": 0.75}
    assert r["feature_importance"] == [{"feature": "rsi", "importance": 0.25, "std": None}]
    assert r["training_duration_seconds"] == 1.5
    assert json.loads(dumps(r)) == r  # plain JSON, no NaN


def test_build_result_without_cv_and_gap_threshold():
    r = _result(cv=None, overfitting_gap=0.5)
    h = r["history"]
    assert [h[k] for k in ("cv_mean_accuracy", "cv_std_accuracy", "cv_is_stable", "cv_fold_accuracies")] == [
        None,
        None,
        None,
        None,
    ]
    assert h["overfitting_detected"] is False  # gap 1/3 <= 0.5


def test_build_result_rejects_extra_replacing_schema_key():
    with pytest.raises(ValueError, match=r"extra keys \['history'\] would replace schema keys"):
        _result(extra={"history": {}})
