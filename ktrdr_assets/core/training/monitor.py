"""Early stopping and the training monitor (note 002): plain Python over per-epoch numbers, no torch.

The monitor stops training on a non-finite loss (`nan_loss`) or when `max_minutes` is exceeded
(`timeout`), and raises alerts for divergence, exploding gradients and severe overfitting. An alert
is raised on the first epoch of each streak of a condition, not on every epoch it persists.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ktrdr_assets.core.config.models import TorchTrainingConfig

logger = logging.getLogger(__name__)

StopReason = Literal["completed", "early_stopping", "nan_loss", "timeout"]


class EarlyStopping:
    """Stop once `patience` epochs in a row fail to improve the best value by more than `min_delta`."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.patience = patience
        self.min_delta = min_delta
        self.best_value = math.inf
        self.best_epoch: int | None = None
        self.epochs_since_improvement = 0

    def step(self, epoch: int, value: float) -> bool:
        """Record `value` (lower is better) for `epoch`; True when it is a new best."""
        if value < self.best_value - self.min_delta:  # NaN compares False: never an improvement
            self.best_value = value
            self.best_epoch = epoch
            self.epochs_since_improvement = 0
            return True
        self.epochs_since_improvement += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.epochs_since_improvement >= self.patience


@dataclass
class TrainingMonitor:
    """Per-epoch health checks; `alerts` collects {epoch, rule, severity, message, details} dicts."""

    config: TorchTrainingConfig
    alerts: list[dict[str, Any]] = field(default_factory=list)
    _val_losses: list[float] = field(default_factory=list)
    _active: set[str] = field(default_factory=set)

    def check_epoch(
        self,
        *,
        epoch: int,
        train_loss: float,
        val_loss: float,
        train_acc: float,
        val_acc: float,
        grad_norm_max: float,
        elapsed_seconds: float,
    ) -> StopReason | None:
        """Run every check for one finished epoch; the stop reason when training must stop, else None."""
        cfg = self.config
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            self._alert(
                epoch,
                "nan_loss",
                "critical",
                f"Epoch {epoch}: non-finite loss (train={train_loss}, val={val_loss}) - stopping training",
                {"train_loss": train_loss, "val_loss": val_loss},
            )
            return "nan_loss"
        self._val_losses.append(val_loss)
        recent = self._val_losses[-(cfg.divergence_epochs + 1) :]
        rising = len(recent) == cfg.divergence_epochs + 1 and all(
            b > a for a, b in zip(recent[:-1], recent[1:], strict=True)
        )
        self._streak(
            rising,
            epoch,
            "divergence",
            f"Epoch {epoch}: validation loss rose {cfg.divergence_epochs} consecutive epochs",
            {"val_losses": recent},
        )
        self._streak(
            grad_norm_max > cfg.exploding_gradient_norm,
            epoch,
            "exploding_gradients",
            f"Epoch {epoch}: exploding gradient (total norm {grad_norm_max:.3g} > "
            f"{cfg.exploding_gradient_norm:g} before clipping)",
            {"gradient_norm_max": grad_norm_max, "threshold": cfg.exploding_gradient_norm},
        )
        self._streak(
            train_acc > cfg.overfit_train_acc and val_acc < cfg.overfit_val_acc,
            epoch,
            "severe_overfitting",
            f"Epoch {epoch}: severe overfitting (train acc {train_acc:.2f} > {cfg.overfit_train_acc:g}, "
            f"val acc {val_acc:.2f} < {cfg.overfit_val_acc:g})",
            {"train_acc": train_acc, "val_acc": val_acc},
        )
        if elapsed_seconds > cfg.max_minutes * 60.0:
            self._alert(
                epoch,
                "timeout",
                "warning",
                f"Epoch {epoch}: training exceeded max_minutes={cfg.max_minutes:g} "
                f"({elapsed_seconds / 60.0:.2f} min) - stopping with the best checkpoint",
                {"elapsed_seconds": elapsed_seconds, "max_minutes": cfg.max_minutes},
            )
            return "timeout"
        return None

    def _streak(self, condition: bool, epoch: int, rule: str, message: str, details: dict[str, Any]) -> None:
        if condition and rule not in self._active:
            self._alert(epoch, rule, "warning", message, details)
        if condition:
            self._active.add(rule)
        else:
            self._active.discard(rule)

    def _alert(self, epoch: int, rule: str, severity: str, message: str, details: dict[str, Any]) -> None:
        logger.warning(message)
        self.alerts.append({"epoch": epoch, "rule": rule, "severity": severity, "message": message, "details": details})
