"""The one training loop of the NN and the LSTM.

AdamW, ReduceLROnPlateau on validation loss, gradient clipping, class-weighted CE or focal loss,
early stopping on validation loss with the best checkpoint restored (a deep copy), the training
monitor, optional per-epoch analytics, and seeding so the same seed gives the same history.

* Seeding: python `random`, numpy and torch are seeded and the model's parameters are
  re-initialised from the seed, so a run does not depend on the caller's RNG state; batches are
  shuffled with a dedicated `torch.Generator` (the DataLoader-generator equivalent). Batches are
  cut from index permutations of tensors already on the device, not through a DataLoader, which
  would index and collate one sample at a time.
* Device: `config.device` 'auto' -> CUDA when available, else CPU. On CUDA with `mixed_precision`,
  forward passes run under float16 autocast with a GradScaler. The data are moved to the device
  once when they take less than half its free memory, else batch by batch.
* Epoch duration = shuffling + training + validation of that epoch, taken before any analytics,
  callback or file write.
* A non-finite loss stops training at once; the result is returned with status 'failed' and an
  `error` naming the epoch and the likely cause, so the caller can fail its asset with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import TensorDataset

from ktrdr_assets.core.config.models import AnalyticsConfig, TorchTrainingConfig
from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.training.alerts import evaluate_alerts
from ktrdr_assets.core.training.analytics import EpochAnalytics
from ktrdr_assets.core.training.analytics_export import (
    METRICS_CSV,
    LiveMetricsCsv,
    export_run,
    final_analysis,
)
from ktrdr_assets.core.training.losses import build_loss
from ktrdr_assets.core.training.monitor import EarlyStopping, StopReason, TrainingMonitor
from ktrdr_assets.core.training.windows import WindowDataset

logger = logging.getLogger(__name__)

EVAL_BATCH_SIZE = 4096
DEVICE_MEMORY_SHARE = 0.5

TrainData = WindowDataset | TensorDataset | tuple[Any, Any]


@dataclass
class TorchTrainingResult:
    """A trained NN/LSTM (on the CPU, best checkpoint loaded, eval mode) with what training recorded.

    `history` has one row per epoch: epoch (1-based), train_loss, val_loss, train_acc, val_acc,
    learning_rate, early_stopping_triggered, batch_count, total_samples_processed (per epoch),
    epoch_duration_seconds, gradient_total_norm_max (largest batch gradient norm before clipping),
    plus the analytics columns of metrics.csv when analytics is enabled.
    """

    model: nn.Module
    status: Literal["success", "failed"]
    stop_reason: StopReason
    error: str | None
    history: list[dict[str, Any]]
    best_epoch: int | None
    device: str
    device_name: str
    mixed_precision: bool
    duration_s: float
    monitor_alerts: list[dict[str, Any]]
    analytics_alerts: list[dict[str, Any]] = field(default_factory=list)
    analytics_files: dict[str, Path] = field(default_factory=dict)

    @property
    def best_row(self) -> dict[str, Any] | None:
        return self.history[self.best_epoch - 1] if self.best_epoch else None

    def predict_proba(self, X: TrainData | torch.Tensor | np.ndarray) -> np.ndarray:
        return predict_proba(self.model, X)


def resolve_device(requested: str) -> torch.device:
    """'auto' -> cuda when available else cpu; an explicit 'cuda' without CUDA is a ValueError."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("training config device='cuda' but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def predict_proba(model: nn.Module, X: TrainData | torch.Tensor | np.ndarray) -> np.ndarray:
    """(n, n_classes) softmax probabilities (float64; column i = signal code i) on the model's device.

    `X`: feature rows (MLP), windows (LSTM), or a WindowDataset / TensorDataset (its first tensor).
    """
    if hasattr(X, "tensors"):
        X = X.tensors[0]
    if not isinstance(X, torch.Tensor):
        X = torch.from_numpy(np.asarray(X, dtype=np.float32))
    X = X.float()
    device = next(model.parameters()).device
    model.eval()
    return F.softmax(_forward(model, X, device, amp=False).float(), dim=1).cpu().double().numpy()


def train_torch_model(
    model: nn.Module,
    train: TrainData,
    validation: TrainData,
    config: TorchTrainingConfig,
    analytics: AnalyticsConfig,
    *,
    seed: int,
    run_info: dict[str, Any],
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    analytics_dir: Path | None = None,
) -> TorchTrainingResult:
    """Train `model` on `train`, early-stopping on `validation` loss; see the module doc for the rules.

    `train`/`validation`: a WindowDataset (LSTM), a TensorDataset or an (X, y) pair of arrays.
    `run_info` (run_id, symbol, strategy, model_type, ...) names the run in messages and in
    detailed_metrics.json. `on_epoch_end(row)` gets each epoch's history row as the epoch ends.
    With `analytics.enabled` the analytics columns are added to each row, and when `analytics_dir`
    is given metrics.csv grows there epoch by epoch, then the selected files are written atomically.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    label = str(run_info.get("run_id", "torch training"))
    device = resolve_device(config.device)
    X_train, y_train = _as_tensors(train, f"{label}: train")
    X_val, y_val = _as_tensors(validation, f"{label}: validation")
    _reset(model, seed)
    model.to(device)
    X_train, y_train, train_on_device = _place(train, X_train, y_train, device)
    X_val, y_val, _ = _place(validation, X_val, y_val, device)
    y_val = y_val.to(device)
    collector = EpochAnalytics(model, analytics) if analytics.enabled else None
    runner = _EpochRunner.build(model, config, y_train, device, collector)
    scheduler = ReduceLROnPlateau(
        runner.optimizer,
        mode="min",
        factor=config.lr_factor,
        patience=config.lr_patience,
        threshold=config.min_delta,
        threshold_mode="abs",
    )
    generator = torch.Generator().manual_seed(seed)
    stopper = EarlyStopping(config.patience, config.min_delta)
    monitor = TrainingMonitor(config)
    live_csv = (
        LiveMetricsCsv(Path(analytics_dir) / METRICS_CSV)
        if collector is not None and analytics_dir is not None and analytics.export_csv
        else None
    )
    bounds = _batch_bounds(len(y_train), config.batch_size)

    history: list[dict[str, Any]] = []
    detailed: list[dict[str, Any]] = []
    best_state: dict[str, torch.Tensor] | None = None
    stop_reason: StopReason = "completed"
    for epoch in range(1, config.epochs + 1):
        if collector is not None:
            collector.start_epoch()  # parameter snapshot, outside the epoch's timing
        row, val_logits = _train_and_validate(
            runner, epoch, (X_train, y_train, train_on_device), (X_val, y_val), generator, bounds
        )
        stop = monitor.check_epoch(
            epoch=epoch,
            train_loss=row["train_loss"],
            val_loss=row["val_loss"],
            train_acc=row["train_acc"],
            val_acc=row["val_acc"],
            grad_norm_max=row["gradient_total_norm_max"],
            elapsed_seconds=time.perf_counter() - started,
        )
        if stop != "nan_loss":
            scheduler.step(row["val_loss"])
            if stopper.step(epoch, row["val_loss"]):
                # A deep copy: state_dict() returns references that the next optimizer step overwrites.
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if stop is None and stopper.should_stop:
                stop = "early_stopping"
                row["early_stopping_triggered"] = True
        if collector is not None:
            columns, entry = collector.collect(row, F.softmax(val_logits, dim=1), y_val)
            row.update(columns)
            detailed.append(entry)
        history.append(row)
        if live_csv is not None:
            live_csv.append(row)
        if on_epoch_end is not None:
            on_epoch_end(dict(row))
        if stop is not None:
            stop_reason = stop
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu").eval()
    failed = stop_reason == "nan_loss"
    result = TorchTrainingResult(
        model=model,
        status="failed" if failed else "success",
        stop_reason=stop_reason,
        error=_non_finite_message(label, history[-1], X_train, X_val, config) if failed else None,
        history=history,
        best_epoch=stopper.best_epoch,
        device=device.type,
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        mixed_precision=runner.amp,
        duration_s=time.perf_counter() - started,
        monitor_alerts=monitor.alerts,
    )
    if collector is not None:
        _export_analytics(result, config, analytics, run_info, seed, started_at, detailed, analytics_dir)
    return result


def _reset(model: nn.Module, seed: int) -> None:
    """Seed every generator and re-initialise the parameters from the seed."""
    seed_everything(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def _train_and_validate(
    runner: _EpochRunner,
    epoch: int,
    train: tuple[torch.Tensor, torch.Tensor, bool],
    validation: tuple[torch.Tensor, torch.Tensor],
    generator: torch.Generator,
    bounds: list[tuple[int, int]],
) -> tuple[dict[str, Any], torch.Tensor]:
    """One epoch: (its history row, the validation logits). The duration covers shuffling, training and
    validation. `train` is (X, y, whether they are on the device already)."""
    X_train, y_train, on_device = train
    X_val, y_val = validation
    epoch_start = time.perf_counter()
    learning_rate = runner.optimizer.param_groups[0]["lr"]
    order = torch.randperm(len(y_train), generator=generator)
    order = order.to(runner.device) if on_device else order
    train_stats = runner.train_epoch(X_train, y_train, order, bounds)
    val_logits, val_stats = runner.validate(X_val, y_val)
    train_loss, train_acc, grad_max, val_loss, val_acc = torch.cat([train_stats, val_stats]).tolist()
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "train_acc": train_acc,
        "val_acc": val_acc,
        "learning_rate": learning_rate,
        "early_stopping_triggered": False,
        "batch_count": len(bounds),
        "total_samples_processed": len(y_train),
        "epoch_duration_seconds": time.perf_counter() - epoch_start,
        "gradient_total_norm_max": grad_max,
    }
    return row, val_logits


def _export_analytics(
    result: TorchTrainingResult,
    config: TorchTrainingConfig,
    analytics: AnalyticsConfig,
    run_info: dict[str, Any],
    seed: int,
    started_at: datetime,
    epochs: list[dict[str, Any]],
    analytics_dir: Path | None,
) -> None:
    """The alerts of the finished run, and its analytics files when a folder is given: metrics.csv,
    alerts.txt and detailed_metrics.json (note 000's structure, plus the monitor's alerts)."""
    result.analytics_alerts = evaluate_alerts(result.history, analytics)
    if analytics_dir is None:
        return
    training_config = config.model_dump(mode="json")
    config_hash = hashlib.sha256(json.dumps(training_config, sort_keys=True).encode()).hexdigest()
    document = {
        "run_metadata": {
            **run_info,
            "model_class": type(result.model).__name__,
            "n_parameters": sum(p.numel() for p in result.model.parameters()),
            "seed": seed,
            "device": result.device,
            "device_name": result.device_name,
            "mixed_precision": result.mixed_precision,
            "start_time": started_at,
            "end_time": datetime.now(UTC),
            "total_epochs": len(result.history),
            "stopping_reason": result.stop_reason,
            "status": result.status,
            "error": result.error,
            "config_hash": config_hash,
        },
        "training_config": {**training_config, "analytics": analytics.model_dump(mode="json")},
        "epoch_metrics": epochs,
        "alerts": result.analytics_alerts,
        "monitor_alerts": result.monitor_alerts,
        "final_analysis": final_analysis(result.history, epochs, result.stop_reason, result.best_epoch),
    }
    result.analytics_files = export_run(
        Path(analytics_dir),
        export_csv=analytics.export_csv,
        export_json=analytics.export_json,
        export_alerts=analytics.export_alerts,
        rows=result.history,
        document=document,
    )


@dataclass
class _EpochRunner:
    """One epoch of training and one validation pass; statistics stay on the device until read."""

    model: nn.Module
    params: list[nn.Parameter]
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    amp: bool
    grad_clip_norm: float
    collector: EpochAnalytics | None

    @classmethod
    def build(
        cls,
        model: nn.Module,
        config: TorchTrainingConfig,
        y_train: torch.Tensor,
        device: torch.device,
        collector: EpochAnalytics | None,
    ) -> _EpochRunner:
        amp = device.type == "cuda" and config.mixed_precision
        params = [p for p in model.parameters() if p.requires_grad]
        return cls(
            model=model,
            params=params,
            criterion=build_loss(config, y_train).to(device),
            optimizer=torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay),
            scaler=torch.amp.GradScaler(device.type, enabled=amp),
            device=device,
            amp=amp,
            grad_clip_norm=config.grad_clip_norm,
            collector=collector,
        )

    def train_epoch(
        self, X: torch.Tensor, y: torch.Tensor, order: torch.Tensor, bounds: list[tuple[int, int]]
    ) -> torch.Tensor:
        """[mean train loss, train accuracy, largest finite batch gradient norm before clipping]."""
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        norms: list[torch.Tensor] = []
        for batch, (lo, hi) in enumerate(bounds):
            index = order[lo:hi]
            xb = X[index].to(self.device, non_blocking=True)
            yb = y[index].to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                logits = self.model(xb)
            loss = self.criterion(logits.float(), yb)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            if self.collector is not None and self.collector.samples_batch(batch):
                self.collector.record_gradients()
            norms.append(nn.utils.clip_grad_norm_(self.params, self.grad_clip_norm))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss_sum += loss.detach() * (hi - lo)
            correct += (logits.detach().argmax(dim=1) == yb).sum()
        batch_norms = torch.stack(norms)
        finite = torch.where(torch.isfinite(batch_norms), batch_norms, torch.zeros_like(batch_norms))
        n = bounds[-1][1]
        return torch.stack([loss_sum / n, correct / n, finite.max().float()])

    def validate(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(validation logits as float32, [validation loss, validation accuracy])."""
        self.model.eval()
        logits = _forward(self.model, X, self.device, self.amp).float()
        with torch.inference_mode():
            loss = self.criterion(logits, y)
            accuracy = (logits.argmax(dim=1) == y).float().mean()
        return logits, torch.stack([loss, accuracy])


def _as_tensors(data: TrainData, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(X float32, y int64) of a WindowDataset / TensorDataset / (X, y) pair, labels checked."""
    if hasattr(data, "tensors"):  # WindowDataset, TensorDataset or alike
        X, y = data.tensors
    else:
        X, y = data
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    if X.shape[0] == 0 or X.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: needs as many labels as samples (> 0), got X {tuple(X.shape)}, y {tuple(y.shape)}")
    if y.min() < 0 or y.max() >= N_CLASSES:
        raise ValueError(
            f"{name}: labels must be signal codes 0..{N_CLASSES - 1}, found {int(y.min())}..{int(y.max())}"
        )
    return X, y


def _place(
    data: TrainData, X: torch.Tensor, y: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(X, y, on_device): moved to `device` once when they fit, else left on the CPU for per-batch copies."""
    if device.type == "cpu":
        return X, y, True
    base = data.features if isinstance(data, WindowDataset) else X
    free, _ = torch.cuda.mem_get_info(device)
    if base.element_size() * base.numel() + y.element_size() * y.numel() > DEVICE_MEMORY_SHARE * free:
        logger.info("training data exceed %.0f%% of free GPU memory: copied batch by batch", 100 * DEVICE_MEMORY_SHARE)
        return X, y, False
    if isinstance(data, WindowDataset):  # move the base rows once, not the materialised windows
        moved = data.to(device)
        return moved.windows, moved.labels, True
    return X.to(device), y.to(device), True


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """[lo, hi) batch slices; a trailing batch of one sample joins the previous one (BatchNorm needs 2)."""
    bounds = [(lo, min(lo + batch_size, n)) for lo in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _forward(model: nn.Module, X: torch.Tensor, device: torch.device, amp: bool) -> torch.Tensor:
    """Logits of `X` in EVAL_BATCH_SIZE chunks (only a chunk is copied when X is a window view)."""
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
        return torch.cat([model(chunk.to(device, non_blocking=True)) for chunk in X.split(EVAL_BATCH_SIZE)])


def _non_finite_message(
    label: str, row: dict[str, Any], X_train: torch.Tensor, X_val: torch.Tensor, config: TorchTrainingConfig
) -> str:
    bad_train = int((~torch.isfinite(X_train)).sum())
    bad_val = int((~torch.isfinite(X_val)).sum())
    if bad_train or bad_val:
        cause = f"the features hold non-finite values (train: {bad_train}, validation: {bad_val})"
    else:
        cause = (
            f"the features are finite, so training diverged: lower learning_rate ({config.learning_rate:g}) "
            f"or grad_clip_norm ({config.grad_clip_norm:g})"
        )
    return (
        f"{label}: non-finite loss at epoch {row['epoch']} (train_loss={row['train_loss']}, "
        f"val_loss={row['val_loss']}) - training stopped; {cause}"
    )
