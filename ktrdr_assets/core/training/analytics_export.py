"""Writers of a run's analytics files: metrics.csv, detailed_metrics.json and alerts.txt (note 000).

metrics.csv has note 000's column list (24 names; the note's "23 columns" miscounts its own list),
one row per epoch. Floats are written with 6 significant digits (a 100-epoch CSV is ~20 KB), a
column without meaning for a row (e.g. gradients of an XGBoost round) is left empty.
`LiveMetricsCsv` appends and flushes each row as its epoch ends so another process can follow the
run; `write_metrics_csv` then replaces the file atomically with the complete table.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ktrdr_assets.core.util.atomic import write_text_atomic
from ktrdr_assets.core.util.jsonsafe import dumps

METRICS_COLUMNS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "val_loss",
    "train_acc",
    "val_acc",
    "learning_rate",
    "gradient_norm_avg",
    "gradient_norm_max",
    "param_change_magnitude",
    "buy_precision",
    "hold_precision",
    "sell_precision",
    "buy_recall",
    "hold_recall",
    "sell_recall",
    "prediction_confidence_avg",
    "prediction_entropy",
    "learning_signal_strength",
    "early_stopping_triggered",
    "overfitting_score",
    "class_balance_score",
    "batch_count",
    "total_samples_processed",
    "epoch_duration_seconds",
)

METRICS_CSV = "metrics.csv"
DETAILED_JSON = "detailed_metrics.json"
ALERTS_TXT = "alerts.txt"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _csv_lines(rows: Iterable[Mapping[str, Any]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(METRICS_COLUMNS)
    writer.writerows([_cell(row.get(column)) for column in METRICS_COLUMNS] for row in rows)
    return buffer.getvalue()


def metrics_csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The whole metrics.csv (header + one line per row); keys outside METRICS_COLUMNS are ignored."""
    return _csv_lines(rows, header=True)


def write_metrics_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Atomically write metrics.csv at `path` (reusable for XGBoost per-round rows: 'epoch' = round)."""
    write_text_atomic(Path(path), metrics_csv_text(rows))
    return Path(path)


class LiveMetricsCsv:
    """metrics.csv grown one flushed line per epoch, readable by another process while training runs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(_csv_lines([], header=True), encoding="utf-8")

    def append(self, row: Mapping[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(_csv_lines([row], header=False))
            handle.flush()


def alerts_text(alerts: Sequence[Mapping[str, Any]], monitor_alerts: Sequence[Mapping[str, Any]]) -> str:
    """Human-readable alerts.txt: the analytics rules, then the training monitor's alerts."""
    lines = ["Training analytics alerts", "=" * 25]
    for alert in alerts or []:
        span = f"epochs {alert['epoch']}-{alert['last_epoch']}" if alert["epochs"] > 1 else f"epoch {alert['epoch']}"
        details = ", ".join(f"{k}={_cell(v)}" for k, v in alert["details"].items())
        lines.append(f"[{alert['severity'].upper()}] {span} {alert['rule']}: {alert['message']} ({details})")
    if not alerts:
        lines.append("No alerts.")
    lines += ["", "Training monitor", "=" * 16]
    lines += [f"[{a['severity'].upper()}] {a['rule']}: {a['message']}" for a in monitor_alerts]
    if not monitor_alerts:
        lines.append("No alerts.")
    return "\n".join(lines) + "\n"


def write_detailed_json(path: Path, document: Mapping[str, Any]) -> Path:
    write_text_atomic(Path(path), dumps(document))
    return Path(path)


def write_alerts(path: Path, alerts: Sequence[Mapping[str, Any]], monitor_alerts: Sequence[Mapping[str, Any]]) -> Path:
    write_text_atomic(Path(path), alerts_text(alerts, monitor_alerts))
    return Path(path)


STOPPING_TRIGGERS = {
    "completed": "max_epochs_reached",
    "early_stopping": "early_stopping_patience_exceeded",
    "nan_loss": "non_finite_loss",
    "timeout": "timeout",
}


def final_analysis(
    rows: Sequence[Mapping[str, Any]],
    epochs: Sequence[Mapping[str, Any]],
    stop_reason: str,
    best_epoch: int | None,
) -> dict[str, Any]:
    """The run summary of detailed_metrics.json; `best_epoch` is the restored checkpoint (min val loss)."""
    best = rows[best_epoch - 1] if best_epoch else None
    val_accuracies = [row["val_acc"] for row in rows if math.isfinite(row["val_acc"])]
    last = len(rows)
    if stop_reason == "nan_loss":
        progression = f"diverged_non_finite_at_epoch_{last}"
    elif best_epoch == last:
        progression = "improving_until_end"
    else:
        progression = f"plateau_after_epoch_{best_epoch}"
    return {
        "total_epochs_completed": last,
        "best_epoch": best_epoch,
        "best_val_loss": best.get("val_loss") if best else None,
        "best_val_accuracy": best.get("val_acc") if best else None,
        "peak_val_accuracy": max(val_accuracies, default=None),
        "stopping_trigger": STOPPING_TRIGGERS[stop_reason],
        "final_gradient_norm": epochs[-1]["gradient_norms"]["total"] if epochs else None,
        "learning_progression": progression,
    }


def export_run(
    directory: Path,
    *,
    export_csv: bool,
    export_json: bool,
    export_alerts: bool,
    rows: Sequence[Mapping[str, Any]],
    document: Mapping[str, Any],
) -> dict[str, Path]:
    """Write the selected files of one run into `directory`; {kind: path} of what was written.

    `document` is the whole detailed_metrics.json (its "alerts" and "monitor_alerts" also feed alerts.txt).
    """
    directory = Path(directory)
    written: dict[str, Path] = {}
    if export_csv:
        written["metrics_csv"] = write_metrics_csv(directory / METRICS_CSV, rows)
    if export_json:
        written["detailed_json"] = write_detailed_json(directory / DETAILED_JSON, document)
    if export_alerts:
        written["alerts_txt"] = write_alerts(directory / ALERTS_TXT, document["alerts"], document["monitor_alerts"])
    return written
