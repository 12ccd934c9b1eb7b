"""The strategy's `evaluation:` section: the walk-forward that is every model's evidence.

The history before the holdout (the temporal splits' test part, the most recent rows) is the evidence
region. Its first `initial_train_fraction` trains the first fold; the rest is cut into `folds` test blocks
in time order. Each fold trains on the rows before its test block (all of them: `expanding`; the last
`initial rows` only: `rolling`) less a purge gap, holds the last `validation_fraction` of those rows (after
another purge gap) as its validation part, refits the scaler and the augmentation on its own training rows
and fits the model type's config afresh (torch epochs capped at `max_epochs_per_fold`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ktrdr_assets.core.config.base import StrictConfig


class EvaluationConfig(StrictConfig):
    folds: int = Field(5, ge=2, le=50, description="walk-forward folds (test blocks) before the holdout")
    window: Literal["expanding", "rolling"] = Field(
        "expanding", description="expanding: each fold trains on all earlier rows; rolling: on a fixed window"
    )
    initial_train_fraction: float = Field(
        0.4, gt=0, lt=1, description="share of the evidence rows before the first test block (rolling: the window)"
    )
    validation_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of a fold's training rows held out as its validation part"
    )
    max_epochs_per_fold: int | None = Field(
        50, ge=1, description="cap on a torch model's epochs in a fold (None: the model's own `epochs`)"
    )
    purge_bars: int | None = Field(
        None, ge=0, description="gap between a fold's parts; None: the splits' purge gap (never below the lookahead)"
    )
