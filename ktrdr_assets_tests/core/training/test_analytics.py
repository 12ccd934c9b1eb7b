"""Analytics formulas against hand values, the six alert rules on crafted histories, the CSV writer."""

import csv
import io
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support
from torch import nn

from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.training.alerts import evaluate_alerts
from ktrdr_assets.core.training.analytics import (
    EpochAnalytics,
    class_balance_score,
    class_metrics,
    convergence_indicator,
    gradient_norm_summary,
    learning_signal_strength,
    overfitting_score,
    parameter_change,
    prediction_stats,
    snapshot_parameters,
)
from ktrdr_assets.core.training.analytics_export import (
    METRICS_COLUMNS,
    LiveMetricsCsv,
    alerts_text,
    metrics_csv_text,
    write_metrics_csv,
)

NOTE_HEADER = (
    "epoch,train_loss,val_loss,train_acc,val_acc,learning_rate,"
    "gradient_norm_avg,gradient_norm_max,param_change_magnitude,"
    "buy_precision,hold_precision,sell_precision,"
    "buy_recall,hold_recall,sell_recall,"
    "prediction_confidence_avg,prediction_entropy,"
    "learning_signal_strength,early_stopping_triggered,"
    "overfitting_score,class_balance_score,batch_count,"
    "total_samples_processed,epoch_duration_seconds"
)


# --------------------------------------------------------------------------- formulas
def _linear_with_grads(x: list[float]) -> nn.Linear:
    """Linear(2, 1) with weight [1, 2], bias 0, after backward of sum(output) on input x: grads = (x, 1)."""
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
        layer.bias.zero_()
    layer.zero_grad()
    layer(torch.tensor([x])).sum().backward()
    return layer


def test_gradient_norm_summary_is_the_notes_formula():
    summary = gradient_norm_summary({"weight": 5.0, "bias": 1.0})
    assert summary["total"] == pytest.approx(math.sqrt(26))
    assert summary["average"] == pytest.approx(math.sqrt(26) / 2)
    assert summary["maximum"] == 5.0
    assert gradient_norm_summary({})["total"] == 0.0


def test_collector_averages_layer_norms_over_sampled_batches():
    layer = _linear_with_grads([3.0, 4.0])  # |grad w| = 5, |grad b| = 1
    collector = EpochAnalytics(layer, AnalyticsConfig(batch_sampling_rate=3))
    collector.start_epoch()
    assert [collector.samples_batch(b) for b in range(7)] == [True, False, False, True, False, False, True]
    collector.record_gradients()
    layer.zero_grad()
    layer(torch.tensor([[0.0, 0.0]])).sum().backward()  # |grad w| = 0, |grad b| = 1
    collector.record_gradients()
    norms = collector.gradient_norms()
    assert norms["by_layer"] == pytest.approx({"weight": 2.5, "bias": 1.0})
    assert norms["total"] == pytest.approx(math.sqrt(2.5**2 + 1.0))
    assert norms["maximum"] == pytest.approx(2.5)
    assert norms["sampled_batches"] == 2


def test_collector_epoch_columns_and_parameter_change_between_epochs():
    layer = nn.Linear(2, 1)  # 3 parameters
    collector = EpochAnalytics(layer, AnalyticsConfig())
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    row = {"train_loss": 1.0, "val_loss": 1.1, "train_acc": 0.5, "val_acc": 1.0, "learning_rate": 1e-3}
    row |= {"epoch_duration_seconds": 0.1, "batch_count": 1, "total_samples_processed": 4}
    changes, signals = [], []
    for epoch, step in ((1, 1.0), (2, 2.0)):
        collector.start_epoch()
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(step)
        columns, detailed = collector.collect(row | {"epoch": epoch}, probs, torch.tensor([0, 2]))
        changes.append(columns["param_change_magnitude"])
        signals.append(columns["learning_signal_strength"])
    assert changes == pytest.approx([math.sqrt(3), 2 * math.sqrt(3)])
    assert signals == ["unknown", "weak"]  # no loss improvement, no gradients sampled, change > 0.01: 1
    assert columns["sell_precision"] == 1.0 and columns["buy_recall"] == 1.0 and columns["hold_recall"] == 0.0
    assert columns["prediction_confidence_avg"] == pytest.approx(0.7)
    assert columns["class_balance_score"] == pytest.approx(0.5)  # shares (1/2, 0, 1/2)
    assert columns["overfitting_score"] == pytest.approx(0.1)
    assert detailed["learning_indicators"]["convergence_indicator"] == "plateauing"
    assert detailed["timing"] == {"epoch_duration": 0.1, "batch_count": 1, "samples_processed": 4}


def test_parameter_change_hand_values():
    previous = {"w": torch.tensor([[0.0, 0.0]]), "b": torch.tensor([1.0])}
    current = {"w": torch.tensor([[3.0, 4.0]]), "b": torch.tensor([1.0])}
    change = parameter_change(current, previous)
    assert change["total_magnitude"] == pytest.approx(5.0)
    assert change["by_layer"]["w"] == pytest.approx({"l2_change": 5.0, "mean_change": 3.5, "std_change": 0.5})
    assert change["by_layer"]["b"]["l2_change"] == 0.0


def test_snapshot_is_a_deep_copy():
    layer = nn.Linear(2, 1)
    snapshot = snapshot_parameters(layer)
    with torch.no_grad():
        layer.weight.add_(1.0)
    assert parameter_change(snapshot_parameters(layer), snapshot)["by_layer"]["weight"]["l2_change"] == (
        pytest.approx(math.sqrt(2))
    )


@pytest.mark.parametrize(
    ("previous", "current", "grad_avg", "change", "expected"),
    [
        (None, 1.0, 1.0, 1.0, "unknown"),
        (1.0, 0.9, 0.2, 0.02, "strong"),  # 10% -> 2, grad > 0.1 -> 2, change -> 1: 5
        (1.0, 0.9, 0.05, 0.0, "medium"),  # 2 + 1 = 3
        (1.0, 0.98, 0.05, 0.0, "medium"),  # 2% -> 1, grad > 0.01 -> 1: 2
        (1.0, 0.98, 0.005, 0.02, "medium"),  # 1 + 0 + 1 = 2
        (1.0, 0.995, 0.005, 0.02, "weak"),  # 0.5% -> 0, + 1 = 1
        (1.0, 1.1, 0.2, 0.0, "medium"),  # loss worse -> 0, grad -> 2
        (1.0, 1.0, 0.001, 0.001, "weak"),
    ],
)
def test_learning_signal_strength_cases(previous, current, grad_avg, change, expected):
    assert learning_signal_strength(previous, current, grad_avg, change) == expected


def test_class_metrics_on_a_known_confusion():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2, 2, 2, 0])
    metrics = class_metrics(y_true, y_pred)
    assert list(metrics) == ["SELL", "HOLD", "BUY"]
    assert metrics["SELL"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert metrics["HOLD"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    assert metrics["BUY"] == pytest.approx({"precision": 3 / 4, "recall": 3 / 4, "f1": 3 / 4, "support": 4})
    never_buy = class_metrics(np.array([0, 1, 2]), np.array([0, 1, 1]))
    assert never_buy["BUY"]["precision"] == 0.0 and never_buy["HOLD"]["precision"] == 0.5
    absent = class_metrics(np.array([0, 1]), np.array([0, 1]))["BUY"]
    assert absent == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


@pytest.mark.parametrize("seed", range(5))
def test_class_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, 3, 50), rng.integers(0, 2 + seed % 2, 50)  # some runs never predict BUY
    ours = class_metrics(y_true, y_pred)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2], average=None, zero_division=0
    )
    for i, name in enumerate(["SELL", "HOLD", "BUY"]):
        assert ours[name] == pytest.approx(
            {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]}, abs=1e-12
        )


def test_prediction_stats_hand_values():
    probs = np.array([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3]])
    stats = prediction_stats(probs, high_confidence=0.8)
    assert stats["mean_confidence"] == pytest.approx((0.9 + 0.5 + 1 / 3) / 3)
    assert stats["confidence_distribution"] == pytest.approx([0, 1 / 3, 1 / 3, 0, 1 / 3])
    entropies = [-sum(p * math.log(p) for p in row) for row in probs]
    assert stats["prediction_entropy"] == pytest.approx(np.mean(entropies))
    assert stats["high_confidence_predictions"] == pytest.approx(1 / 3)
    one_hot = prediction_stats(np.array([[1.0, 0.0, 0.0]]), 0.8)
    assert one_hot["prediction_entropy"] == 0.0


def test_overfitting_balance_and_convergence_scores():
    assert overfitting_score(1.0, 1.3) == pytest.approx(0.3)
    assert overfitting_score(0.5, 0.4) == 0.0
    assert overfitting_score(0.0, 1.0) == 0.0
    assert class_balance_score(np.array([0, 1, 2] * 4)) == pytest.approx(1.0)
    assert class_balance_score(np.zeros(10, dtype=int)) == pytest.approx(0.0)
    assert class_balance_score(np.array([0, 0, 1, 1])) == pytest.approx(0.5)
    assert convergence_indicator(None, 1.0) == "unknown"
    assert convergence_indicator(1.0, 0.9) == "improving"
    assert convergence_indicator(1.0, 1.005) == "plateauing"
    assert convergence_indicator(1.0, 1.2) == "diverging"


# --------------------------------------------------------------------------- alert rules
def _healthy(n: int = 15) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "val_loss": 1.0 / e + 0.05,
            "val_acc": 0.6,
            "gradient_norm_avg": 0.5,
            "gradient_norm_max": 1.0,
            "learning_signal_strength": "strong",
            "class_balance_score": 0.9,
        }
        for e in range(1, n + 1)
    ]


def _with(rows: list[dict], epochs: range, **values) -> list[dict]:
    for row in rows:
        if row["epoch"] in epochs:
            row.update(values)
    return rows


def _fired(rows: list[dict]) -> list[tuple[str, int, int]]:
    return [(a["rule"], a["epoch"], a["epochs"]) for a in evaluate_alerts(rows, AnalyticsConfig())]


def test_healthy_history_raises_no_alert():
    assert _fired(_healthy()) == []


@pytest.mark.parametrize(
    ("epochs", "values", "expected"),
    [
        (range(4, 9), {"gradient_norm_avg": 0.001}, [("vanishing_gradients", 6, 3)]),  # only epoch > 5
        (range(3, 4), {"gradient_norm_max": 12.0}, [("exploding_gradients", 3, 1)]),
        (range(9, 11), {"val_loss": 2.0}, [("severe_overfitting", 9, 2)]),
        (range(3, 8), {"learning_signal_strength": "weak"}, [("learning_plateau", 7, 1)]),
        (range(3, 7), {"learning_signal_strength": "weak"}, []),  # 4 weak epochs are not a plateau
        (range(2, 3), {"class_balance_score": 0.4}, [("class_imbalance", 2, 1)]),
        (range(1, 16), {"val_acc": 0.35}, [("poor_convergence", 11, 5)]),  # only after epoch 10
    ],
)
def test_each_rule_fires_on_its_crafted_history(epochs, values, expected):
    assert _fired(_with(_healthy(), epochs, **values)) == expected


def test_streaks_alert_separately_and_the_text_names_them():
    rows = _with(_with(_healthy(), range(2, 4), gradient_norm_max=20.0), range(6, 7), gradient_norm_max=11.0)
    alerts = evaluate_alerts(rows, AnalyticsConfig())
    assert [(a["epoch"], a["last_epoch"]) for a in alerts] == [(2, 3), (6, 6)]
    text = alerts_text(alerts, [{"rule": "timeout", "severity": "warning", "message": "too slow"}])
    assert "[CRITICAL] epochs 2-3 exploding_gradients: 🚨 Exploding gradients" in text
    assert "gradient_norm_max=20, threshold=10" in text
    assert "[WARNING] timeout: too slow" in text


def test_rules_skip_missing_columns_and_read_csv_strings():
    boosting_rows = [{"epoch": r, "train_loss": 0.5, "val_loss": 0.6, "val_acc": 0.7} for r in range(1, 20)]
    assert evaluate_alerts(boosting_rows, AnalyticsConfig()) == []
    parsed = list(csv.DictReader(io.StringIO(metrics_csv_text(_with(_healthy(), range(3, 4), val_loss=5.0)))))
    assert [a["rule"] for a in evaluate_alerts(parsed, AnalyticsConfig())] == ["severe_overfitting"]


def test_thresholds_come_from_config():
    rows = _with(_healthy(), range(3, 4), gradient_norm_max=12.0)
    assert evaluate_alerts(rows, AnalyticsConfig(exploding_gradient_norm=15.0)) == []


# --------------------------------------------------------------------------- CSV
def _full_row(epoch: int, rng: np.random.Generator) -> dict:
    row = {column: float(rng.random()) for column in METRICS_COLUMNS}
    row.update(epoch=epoch, learning_signal_strength="medium", early_stopping_triggered=False)
    row.update(batch_count=55, total_samples_processed=3500)
    return row


def test_csv_has_the_notes_columns_in_order():
    assert ",".join(METRICS_COLUMNS) == NOTE_HEADER
    text = metrics_csv_text([_full_row(1, np.random.default_rng(0)) | {"extra_key": 1}])
    header, line = text.splitlines()
    assert header == NOTE_HEADER and len(line.split(",")) == len(METRICS_COLUMNS)


def test_hundred_epoch_csv_is_under_50_kb(tmp_path):
    rng = np.random.default_rng(0)
    path = write_metrics_csv(tmp_path / "metrics.csv", [_full_row(e, rng) for e in range(1, 101)])
    assert 10_000 < path.stat().st_size < 50_000
    assert len(path.read_text().splitlines()) == 101


def test_rows_without_a_column_leave_it_empty(tmp_path):
    path = write_metrics_csv(tmp_path / "m.csv", [{"epoch": 1, "train_loss": 0.5, "val_loss": float("nan")}])
    row = next(csv.DictReader(path.open()))
    assert row["train_loss"] == "0.5" and row["val_loss"] == "nan" and row["gradient_norm_avg"] == ""


def test_live_csv_appends_one_flushed_row_at_a_time(tmp_path):
    live = LiveMetricsCsv(tmp_path / "metrics.csv")
    assert live.path.read_text().splitlines() == [NOTE_HEADER]
    live.append({"epoch": 1, "train_loss": 0.123456789})
    live.append({"epoch": 2, "train_loss": 0.1})
    lines = live.path.read_text().splitlines()
    assert len(lines) == 3 and lines[1].startswith("1,0.123457,")
