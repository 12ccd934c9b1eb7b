"""Torch training: the shared NN/LSTM loop, LSTM windows, losses, the monitor and training analytics."""

from ktrdr_assets.core.training.alerts import evaluate_alerts
from ktrdr_assets.core.training.analytics_export import METRICS_COLUMNS, LiveMetricsCsv, write_metrics_csv
from ktrdr_assets.core.training.monitor import EarlyStopping, TrainingMonitor
from ktrdr_assets.core.training.trainer import (
    TorchTrainingResult,
    predict_proba,
    resolve_device,
    train_torch_model,
)
from ktrdr_assets.core.training.windows import WindowDataset, sliding_windows

__all__ = [
    "METRICS_COLUMNS",
    "EarlyStopping",
    "LiveMetricsCsv",
    "TorchTrainingResult",
    "TrainingMonitor",
    "WindowDataset",
    "evaluate_alerts",
    "predict_proba",
    "resolve_device",
    "sliding_windows",
    "train_torch_model",
    "write_metrics_csv",
]
