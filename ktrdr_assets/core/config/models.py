"""Typed config shared by the model types (tree cross-validation, the torch training loop), the
`models:` section, the training analytics and the quality gates.

Defaults are the regularized values of the design (note 002); every one is overridable from the
strategy file's `models:`, `analytics:` and `gates:` sections.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from ktrdr_assets.core.config.base import StrictConfig


class CrossValidationConfig(StrictConfig):
    folds: int = Field(5, ge=2, description="TimeSeriesSplit folds on the train set")
    max_std: float = Field(0.05, gt=0, description="fold-accuracy std at or below this is 'stable'")


class TorchTrainingConfig(StrictConfig):
    """What the NN and LSTM share: optimizer, schedule, loss, early stopping, monitor limits."""

    epochs: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-3, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    loss: Literal["weighted_ce", "focal"] = "weighted_ce"
    class_weighting: Literal["none", "balanced", "sqrt_balanced"] = Field(
        "none",
        description="loss weight per class: none; balanced n / (k x count); sqrt_balanced its square root",
    )
    focal_gamma: float = Field(2.0, ge=0)
    focal_class_weights: bool = Field(True, description="focal loss alpha = the class_weighting weights")
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


#: The key every `models.<type>` section may hold besides the type's own settings: `enabled: false`
#: switches that type off (not trained, no time spent, not a candidate).
ENABLED_KEY = "enabled"


class PooledConfig(StrictConfig):
    """`models.pooled`: one network per listed type trained on the train rows of every symbol that has
    the same feature names, each row carrying its symbol's id through an embedding (design note 003)."""

    enabled: bool = Field(True, description="train the pooled networks at all")
    model_types: tuple[str, ...] = Field(
        ("neural_network", "lstm"), description="poolable model types (the registry says which can be)"
    )
    embedding_dim: int = Field(8, ge=8, le=16, description="asset-id embedding size (note 003: 8-16)")
    unknown_asset_rate: float = Field(
        0.1, ge=0, lt=1, description="share of training samples shown with the unknown asset's id (row 0)"
    )
    min_symbols: int = Field(2, ge=1, description="fewer compatible symbols than this: nothing is pooled")
    min_evidence_folds: int = Field(
        2,
        ge=2,
        description="calendar folds of the pooled walk-forward a symbol must be tested in to have evidence "
        "(fewer: its pooled candidate fails the gates for lack of evidence)",
    )
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per type, settings merged over models.<type> for the pooled network"
    )


class ModelsConfig(StrictConfig):
    """The strategy's `models:` section: one mapping per model type (`random_forest:`, `lstm:`, ...) plus
    the settings all types share. Each type's mapping is validated when that type trains
    (`ModelSpec.parse_config`), so a bad NN section fails only the NN asset, with a message naming the
    key; the loader checks that every section names a registered model type. Every section may say
    `enabled: false` (checked here, at load)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    permutation_repeats: int = Field(5, ge=1, description="permutation feature importance repeats")
    top_features: int = Field(10, ge=1)
    pooled: PooledConfig = PooledConfig()

    @model_validator(mode="after")
    def _sections_are_mappings(self) -> ModelsConfig:
        for name, value in (self.model_extra or {}).items():
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"models.{name} must be a mapping of settings, got {type(value).__name__}")
            if value and not isinstance(value.get(ENABLED_KEY, True), bool):
                raise ValueError(f"models.{name}.{ENABLED_KEY} must be true or false, got {value[ENABLED_KEY]!r}")
        return self

    def sections(self) -> dict[str, dict[str, Any]]:
        """{model type: its raw settings}, as written in the strategy."""
        return {name: dict(value or {}) for name, value in (self.model_extra or {}).items()}

    def is_enabled(self, model_type: str) -> bool:
        """False when the strategy switched `model_type` off (`models.<type>.enabled: false`)."""
        return bool(self.sections().get(model_type, {}).get(ENABLED_KEY, True))

    def settings(self, model_type: str) -> dict[str, Any]:
        """`model_type`'s own settings: its section without the `enabled` switch."""
        return {k: v for k, v in self.sections().get(model_type, {}).items() if k != ENABLED_KEY}

    def with_section(self, model_type: str, section: dict[str, Any]) -> ModelsConfig:
        """A copy whose `model_type` section is replaced by `section`."""
        return ModelsConfig.model_validate({**self.model_dump(), model_type: section})


class AnalyticsConfig(StrictConfig):
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


class GatesConfig(StrictConfig):
    """The quality gates, read on each model's walk-forward evidence (core/selection/gates.py)."""

    max_gap: float = Field(0.20, gt=0, le=1, description="mean over folds of train - validation accuracy")
    min_accuracy: float = Field(0.55, ge=0, le=1, description="pooled out-of-fold accuracy floor")
    alpha: float = Field(0.01, gt=0, lt=1, description="one-sided exact binomial test against the best naive baseline")
    multiple_testing: Literal["bonferroni", "none"] = Field(
        "bonferroni", description="bonferroni: each model is tested at alpha / number of competing model types"
    )
    min_folds_above_baseline: float = Field(
        0.6, ge=0, le=1, description="share of folds whose accuracy beats their own best baseline"
    )
    max_fold_accuracy_std: float = Field(0.10, gt=0, le=1, description="std of the fold accuracies")
    gap_penalty: float = Field(0.5, ge=0, description="selection score = OOF accuracy - penalty x mean gap")
    min_deflated_sharpe_probability: float | None = Field(
        None, ge=0, le=1, description="optional: reject a candidate whose out-of-fold deflated Sharpe is lower"
    )
