"""Training losses: (class-weighted) cross-entropy or focal loss, weights from train class frequencies.

`class_weighting` (TorchTrainingConfig): `none` (every row counts once: the loss is the plain likelihood,
whose argmax is the accuracy-maximizing call), `balanced` (n / (k x count): every class weighs the same
in total, which pushes predictions toward rare classes) or `sqrt_balanced` (the square root of the
balanced weights: half way, in log terms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ktrdr_assets.core.config.models import TorchTrainingConfig
from ktrdr_assets.core.data.signals import N_CLASSES


def class_weights(y: torch.Tensor, n_classes: int = N_CLASSES) -> torch.Tensor:
    """Inverse-frequency ('balanced') weights n / (n_classes * count); a class absent from y gets 0."""
    counts = torch.bincount(y.detach().to("cpu", torch.long), minlength=n_classes).to(torch.float32)
    weights = torch.zeros(n_classes)
    present = counts > 0
    weights[present] = y.numel() / (n_classes * counts[present])
    return weights


def weighting_weights(y: torch.Tensor, weighting: str, n_classes: int = N_CLASSES) -> torch.Tensor | None:
    """The per-class loss weights of `weighting`: 'none' -> None, 'balanced', 'sqrt_balanced'."""
    if weighting == "none":
        return None
    weights = class_weights(y, n_classes)
    if weighting == "sqrt_balanced":
        return weights.sqrt()
    if weighting == "balanced":
        return weights
    raise ValueError(f"class_weighting must be none, balanced or sqrt_balanced, got {weighting!r}")


class FocalLoss(nn.Module):
    """Focal loss  -alpha_t (1 - p_t)^gamma log p_t  (Lin et al. 2017).

    With `weight` (alpha per class) the mean is weighted by alpha_t, exactly as torch's weighted
    cross-entropy is, so gamma = 0 reproduces `F.cross_entropy(..., weight=weight)`.
    """

    def __init__(self, gamma: float, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
        loss = -((1.0 - log_p.exp()) ** self.gamma) * log_p
        if self.weight is None:
            return loss.mean()
        alpha = self.weight[target]
        return (alpha * loss).sum() / alpha.sum()


def build_loss(config: TorchTrainingConfig, y_train: torch.Tensor, n_classes: int = N_CLASSES) -> nn.Module:
    """`config.loss`: 'weighted_ce' (with label_smoothing) or 'focal' (gamma; alpha = the class weights
    when `focal_class_weights`), the weights per `config.class_weighting` (none: unweighted).

    Focal loss ignores label_smoothing: its (1 - p_t)^gamma factor already damps confident samples.
    """
    weights = weighting_weights(y_train, config.class_weighting, n_classes)
    if config.loss == "focal":
        return FocalLoss(config.focal_gamma, weights if config.focal_class_weights else None)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)
