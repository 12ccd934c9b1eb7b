"""Typed config of the four model types, the training analytics and the quality gates.

Defaults are the regularized values of the design (note 002); every one is overridable from the
strategy file's `models:`, `analytics:` and `gates:` sections.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ktrdr_assets.core.config.errors import StrategyError, format_validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrossValidationConfig(_Strict):
    folds: int = Field(5, ge=2, description="TimeSeriesSplit folds on the train set")
    max_std: float = Field(0.05, gt=0, description="fold-accuracy std at or below this is 'stable'")


class RandomForestConfig(_Strict):
    n_estimators: int = Field(200, ge=1)
    max_depth: int | None = Field(10, ge=1)
    min_samples_split: int = Field(20, ge=2)
    min_samples_leaf: int = Field(10, ge=1)
    max_features: Literal["sqrt", "log2"] | float = "sqrt"
    max_samples: float | None = Field(0.7, gt=0, le=1)
    class_weight: Literal["balanced", "balanced_subsample"] | None = "balanced"
    n_jobs: int = 2
    cross_validation: CrossValidationConfig = CrossValidationConfig()


class XGBoostConfig(_Strict):
    n_estimators: int = Field(200, ge=1)
    max_depth: int = Field(4, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    subsample: float = Field(0.7, gt=0, le=1)
    colsample_bytree: float = Field(0.7, gt=0, le=1)
    min_child_weight: float = Field(5, ge=0)
    reg_alpha: float = Field(0.2, ge=0)
    reg_lambda: float = Field(2.0, ge=0)
    early_stopping_rounds: int = Field(20, ge=1, description="on the validation set")
    n_jobs: int = 2
    cross_validation: CrossValidationConfig = CrossValidationConfig()


class TorchTrainingConfig(_Strict):
    """What the NN and LSTM share: optimizer, schedule, loss, early stopping, monitor limits."""

    epochs: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-3, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    loss: Literal["weighted_ce", "focal"] = "weighted_ce"
    focal_gamma: float = Field(2.0, ge=0)
    focal_class_weights: bool = Field(True, description="focal loss alpha = train inverse class frequency")
    grad_clip_norm: float = Field(1.0, gt=0)
    patience: int = Field(15, ge=1, description="early stopping on validation loss")
    lr_patience: int = Field(5, ge=1, description="ReduceLROnPlateau patience")
    lr_factor: float = Field(0.5, gt=0, lt=1)
    min_delta: float = Field(1e-4, ge=0, description="improvement below this does not count")
    max_minutes: float = Field(10.0, gt=0, description="training monitor timeout")
    divergence_epochs: int = Field(10, ge=2, description="monitor: val loss rising this many epochs")
    exploding_gradient_norm: float = Field(
        10.0, gt=0, description="monitor: a batch's total gradient norm (before clipping) above this"
    )
    overfit_train_acc: float = Field(0.95, gt=0, le=1, description="monitor: severe overfitting when")
    overfit_val_acc: float = Field(0.60, gt=0, le=1, description="... train acc above AND val acc below")
    mixed_precision: bool = Field(True, description="autocast on CUDA; ignored on CPU")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int = Field(
        1, ge=1, description="torch CPU threads; 1 keeps two concurrent runs on 2 cores from thrashing"
    )


class NeuralNetworkConfig(TorchTrainingConfig):
    hidden_layers: tuple[int, ...] = Field((256, 128, 64), min_length=1)
    dropout: float = Field(0.4, ge=0, lt=1)
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden Linear")
    label_smoothing: float = Field(0.2, ge=0, lt=1)


class LSTMConfig(TorchTrainingConfig):
    hidden_size: int = Field(64, ge=1)
    num_layers: int = Field(1, ge=1)
    lookback: int = Field(10, ge=1, description="bars per input window")
    dropout: float = Field(0.5, ge=0, lt=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    patience: int = Field(15, ge=1)


MODEL_CONFIGS: dict[str, type[_Strict]] = {
    "random_forest": RandomForestConfig,
    "xgboost": XGBoostConfig,
    "neural_network": NeuralNetworkConfig,
    "lstm": LSTMConfig,
}


class ModelsConfig(_Strict):
    """Per-model sections are validated when that model trains (`section`), so a bad NN section fails
    the NN asset with a message naming the key, while the data assets and the other models run."""

    random_forest: dict[str, Any] = Field(default_factory=dict)
    xgboost: dict[str, Any] = Field(default_factory=dict)
    neural_network: dict[str, Any] = Field(default_factory=dict)
    lstm: dict[str, Any] = Field(default_factory=dict)
    permutation_repeats: int = Field(5, ge=1, description="permutation feature importance repeats")
    top_features: int = Field(10, ge=1)

    def section(self, model_type: str, source: str = "<strategy>") -> Any:
        """The typed config of one model type; StrategyError naming `source` and `models.<type>.<key>`."""
        if model_type not in MODEL_CONFIGS:
            raise StrategyError(f"{source}: models: unknown model type {model_type!r}; known: {list(MODEL_CONFIGS)}")
        try:
            return MODEL_CONFIGS[model_type].model_validate(getattr(self, model_type))
        except ValidationError as err:
            raise StrategyError(format_validation_error(err, source, prefix=f"models.{model_type}")) from None


class AnalyticsConfig(_Strict):
    enabled: bool = True
    export_csv: bool = True
    export_json: bool = True
    export_alerts: bool = True
    batch_sampling_rate: int = Field(10, ge=1, description="per-layer gradient norms every n-th batch")
    high_confidence: float = Field(0.8, gt=0, le=1, description="max class probability counted 'high'")
    vanishing_gradient_norm: float = 0.01
    exploding_gradient_norm: float = 10.0
    overfitting_loss_gap: float = 0.3
    plateau_epochs: int = Field(5, ge=1, description="plateau alert / trend: epochs without progress")
    class_balance_min: float = 0.5
    poor_accuracy: float = 0.4
    poor_accuracy_after_epoch: int = 10
    # Loss-trend analysis (core/training/trends.py): live MLflow trend metrics and ktrdr-analyze.
    trend_window: int = Field(5, ge=2, description="epochs of the least-squares loss slopes and % change")
    trend_min_delta: float = Field(1e-4, ge=0, description="an improvement: val loss drops more than this")
    plateau_tolerance: float = Field(1e-3, ge=0, description="plateau: val loss has not dropped beyond this")
    diverging_pct: float = Field(10.0, gt=0, description="diverging: val loss up > this % over the window")


class GatesConfig(_Strict):
    max_gap: float = Field(0.20, gt=0, le=1, description="train accuracy - validation accuracy")
    min_accuracy: float = Field(0.55, ge=0, le=1, description="test accuracy floor")
    max_val_test_diff: float = Field(0.05, gt=0, le=1, description="|validation - test accuracy|")
    gap_penalty: float = Field(0.5, ge=0, description="selection score = test accuracy - penalty x gap")
