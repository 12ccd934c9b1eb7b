"""Note 000's six alert rules as a pure function over per-epoch metric rows.

Rows are mappings with the metrics.csv columns (native values, or the strings of a CSV read back);
a rule whose inputs are missing from a row (None, "", NaN) does not fire for that row, so XGBoost
per-round rows (no gradients) are checked on what they have. One alert is raised per streak of
consecutive epochs where a rule holds: at the streak's first epoch, with its last epoch and length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ktrdr_assets.core.config.models import AnalyticsConfig

Row = Mapping[str, Any]


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str
    category: str
    message: str
    check: Callable[[Row, AnalyticsConfig, int], tuple[bool, dict[str, Any]]]


def _num(row: Row, key: str) -> float | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _vanishing(row: Row, cfg: AnalyticsConfig, _weak_run: int) -> tuple[bool, dict[str, Any]]:
    value, epoch = _num(row, "gradient_norm_avg"), int(row["epoch"])
    fired = value is not None and value < cfg.vanishing_gradient_norm and epoch > 5
    return fired, {"gradient_norm_avg": value, "threshold": cfg.vanishing_gradient_norm}


def _exploding(row: Row, cfg: AnalyticsConfig, _weak_run: int) -> tuple[bool, dict[str, Any]]:
    value = _num(row, "gradient_norm_max")
    fired = value is not None and value > cfg.exploding_gradient_norm
    return fired, {"gradient_norm_max": value, "threshold": cfg.exploding_gradient_norm}


def _overfitting(row: Row, cfg: AnalyticsConfig, _weak_run: int) -> tuple[bool, dict[str, Any]]:
    train, val = _num(row, "train_loss"), _num(row, "val_loss")
    fired = train is not None and val is not None and val > train + cfg.overfitting_loss_gap
    return fired, {"train_loss": train, "val_loss": val, "max_gap": cfg.overfitting_loss_gap}


def _plateau(row: Row, cfg: AnalyticsConfig, weak_run: int) -> tuple[bool, dict[str, Any]]:
    return weak_run >= cfg.plateau_epochs, {"weak_epochs": weak_run, "threshold": cfg.plateau_epochs}


def _imbalance(row: Row, cfg: AnalyticsConfig, _weak_run: int) -> tuple[bool, dict[str, Any]]:
    value = _num(row, "class_balance_score")
    fired = value is not None and value < cfg.class_balance_min
    return fired, {"class_balance_score": value, "threshold": cfg.class_balance_min}


def _poor_convergence(row: Row, cfg: AnalyticsConfig, _weak_run: int) -> tuple[bool, dict[str, Any]]:
    value, epoch = _num(row, "val_acc"), int(row["epoch"])
    fired = value is not None and value < cfg.poor_accuracy and epoch > cfg.poor_accuracy_after_epoch
    return fired, {
        "val_acc": value,
        "threshold": cfg.poor_accuracy,
        "after_epoch": cfg.poor_accuracy_after_epoch,
    }


ALERT_RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "vanishing_gradients",
        "warning",
        "gradient_flow",
        "⚠️ Vanishing gradients detected - learning may have stopped",
        _vanishing,
    ),
    AlertRule(
        "exploding_gradients",
        "critical",
        "gradient_flow",
        "🚨 Exploding gradients - reduce learning rate immediately",
        _exploding,
    ),
    AlertRule(
        "severe_overfitting",
        "critical",
        "overfitting",
        "🚨 Severe overfitting - validation much worse than training",
        _overfitting,
    ),
    AlertRule(
        "learning_plateau",
        "warning",
        "learning_progress",
        "📉 Learning plateau detected - consider reducing learning rate",
        _plateau,
    ),
    AlertRule(
        "class_imbalance",
        "warning",
        "class_balance",
        "⚖️ Severe class imbalance affecting learning",
        _imbalance,
    ),
    AlertRule(
        "poor_convergence",
        "warning",
        "convergence",
        "📊 Poor accuracy after 10 epochs - check architecture or features",
        _poor_convergence,
    ),
)


def evaluate_alerts(rows: Sequence[Row], config: AnalyticsConfig) -> list[dict[str, Any]]:
    """Alerts {epoch, last_epoch, epochs, rule, severity, category, message, details} ordered by epoch."""
    weak_runs: list[int] = []
    run = 0
    for row in rows:
        run = run + 1 if row.get("learning_signal_strength") == "weak" else 0
        weak_runs.append(run)
    alerts: list[dict[str, Any]] = []
    for rule in ALERT_RULES:
        current: dict[str, Any] | None = None
        for row, weak_run in zip(rows, weak_runs, strict=True):
            fired, details = rule.check(row, config, weak_run)
            if not fired:
                current = None
            elif current is None:
                current = {
                    "epoch": int(row["epoch"]),
                    "last_epoch": int(row["epoch"]),
                    "epochs": 1,
                    "rule": rule.name,
                    "severity": rule.severity,
                    "category": rule.category,
                    "message": rule.message,
                    "details": details,
                }
                alerts.append(current)
            else:
                current["last_epoch"] = int(row["epoch"])
                current["epochs"] += 1
    return sorted(alerts, key=lambda a: a["epoch"])
