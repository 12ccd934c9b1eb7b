"""Hyper-parameter search with Optuna (note 003, section 5): TPE sampling, median pruning, resumable studies.

A trial suggests a section for `models.<neural_network|lstm>` from `SearchSpace` (note 003's ranges),
trains it through `train_model` (full analytics, the strategy's seed) into `<output_dir>/trials/<number>/`
and scores the validation accuracy of the returned model (its best-validation-loss checkpoint); the test
part is never looked at by the search. Each epoch's validation accuracy is reported to the trial by
`PruningTracker`, which raises `optuna.TrialPruned` out of training when the pruner says so.

The study lives in an SQLite file (`study_storage`), so a search that was interrupted resumes: the next
call adds `n_trials` more trials to the same study. A Ctrl-C marks the running trial FAIL; a trial of a
killed process is marked FAIL by the storage heartbeat once `grace_period` has passed. The sampler is
re-seeded with `seed + number of trials so far`, so a resumed search does not repeat its first points.

Results (`write_search_outputs`): `trials.csv`, `optimization_history.png`, `study.json` and
`best_override.yaml`, a `models:` section that deep-merges into a strategy file.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import optuna
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.splits import TemporalSplits
from ktrdr_assets.core.models.base import ModelTrainingError
from ktrdr_assets.core.models.registry import check_torch_model_type
from ktrdr_assets.core.models.training_runs import train_model
from ktrdr_assets.core.research.experiments import (
    RecordingTracker,
    TrackerFactory,
    null_tracker_factory,
    one_line_error,
    peak_val_accuracy,
    variant_strategy,
    write_csv,
)
from ktrdr_assets.core.training.tracking import Tracker
from ktrdr_assets.core.util.atomic import write_bytes_atomic, write_text_atomic
from ktrdr_assets.core.util.jsonsafe import dumps
from ktrdr_assets.core.util.plots import figure_png, new_figure

log = logging.getLogger(__name__)

OBJECTIVE = "validation accuracy of the best-validation-loss checkpoint (maximized)"
TRIALS = "trials"
TRIALS_CSV = "trials.csv"
HISTORY_PNG = "optimization_history.png"
OVERRIDE_YAML = "best_override.yaml"
STUDY_JSON = "study.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchSpace(_Strict):
    """Note 003's ranges. `units` is (low, high, step): NN widths per hidden layer, LSTM hidden size;
    `layers` is (low, high): NN hidden layers, stacked LSTM layers. Focal loss adds `focal_gamma` and
    `focal_class_weights` (alpha = inverse class frequency, or none)."""

    learning_rate: tuple[float, float] = Field((1e-5, 1e-2), description="log-uniform")
    batch_sizes: tuple[int, ...] = Field((32, 64, 128, 256), min_length=1)
    dropout: tuple[float, float] = (0.1, 0.5)
    weight_decay: tuple[float, float] = Field((1e-5, 1e-2), description="log-uniform")
    units: tuple[int, int, int] = (32, 256, 32)
    layers: tuple[int, int] = (1, 3)
    losses: tuple[Literal["weighted_ce", "focal"], ...] = Field(("weighted_ce", "focal"), min_length=1)
    focal_gamma: tuple[float, float] = (0.5, 3.0)

    @model_validator(mode="after")
    def _ranges(self) -> SearchSpace:
        for name in ("learning_rate", "dropout", "weight_decay", "layers", "focal_gamma"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: low {low} is above high {high}")
        for name in ("learning_rate", "weight_decay"):
            if getattr(self, name)[0] <= 0:
                raise ValueError(f"{name}: a log-uniform range needs low > 0, got {getattr(self, name)[0]}")
        low, high, step = self.units
        if not 1 <= low <= high or step < 1:
            raise ValueError(f"units: need 1 <= low <= high and step >= 1, got {list(self.units)}")
        if self.layers[0] < 1:
            raise ValueError(f"layers: need at least 1, got {list(self.layers)}")
        return self


class SearchSettings(_Strict):
    seed: int = Field(42, description="sampler seed (plus the number of trials already in the study)")
    sampler_startup_trials: int = Field(10, ge=0, description="random trials before TPE models the space")
    pruner_startup_trials: int = Field(5, ge=0, description="trials completed before pruning starts")
    pruner_warmup_epochs: int = Field(3, ge=0, description="epochs of a trial before it can be pruned")
    heartbeat_seconds: int = Field(60, ge=1, description="a killed trial is failed after 2x this")


def suggest_section(trial: optuna.Trial, model_type: str, space: SearchSpace) -> dict[str, Any]:
    """One trial's `models.<model_type>` section (also rebuilds a finished trial's from `FixedTrial`)."""
    check_torch_model_type(model_type)
    section: dict[str, Any] = {
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "batch_size": trial.suggest_categorical("batch_size", list(space.batch_sizes)),
        "dropout": trial.suggest_float("dropout", *space.dropout),
        "weight_decay": trial.suggest_float("weight_decay", *space.weight_decay, log=True),
    }
    low, high, step = space.units
    layers = trial.suggest_int("layers", *space.layers)
    if model_type == "neural_network":
        widths = [trial.suggest_int(f"units_{i}", low, high, step=step) for i in range(layers)]
        section["hidden_layers"] = widths
    else:
        section["hidden_size"] = trial.suggest_int("hidden_size", low, high, step=step)
        section["num_layers"] = layers
    section["loss"] = trial.suggest_categorical("loss", list(space.losses))
    if section["loss"] == "focal":
        section["focal_gamma"] = trial.suggest_float("focal_gamma", *space.focal_gamma)
        section["focal_class_weights"] = trial.suggest_categorical("focal_class_weights", [True, False])
    return section


def study_storage(path: Path, heartbeat_seconds: int = 60) -> optuna.storages.RDBStorage:
    """The SQLite storage of the studies, with a heartbeat so a killed process's trial gets failed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            f"sqlite:///{path}",
            engine_kwargs={"connect_args": {"timeout": 30}},
            heartbeat_interval=heartbeat_seconds,
            grace_period=2 * heartbeat_seconds,
        )


def open_study(
    storage: optuna.storages.BaseStorage | str,
    study_name: str,
    attrs: Mapping[str, Any],
    settings: SearchSettings | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create the study, or resume it when it exists; `attrs` (symbol, model type, ...) are stored on
    creation and must match on resume, so a study never mixes two problems. Default pruner: median."""
    settings = settings or SearchSettings()
    pruner = pruner or optuna.pruners.MedianPruner(
        n_startup_trials=settings.pruner_startup_trials, n_warmup_steps=settings.pruner_warmup_epochs
    )
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction="maximize", pruner=pruner, load_if_exists=True
    )
    stored = study.user_attrs
    if not stored:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
    else:
        clash = {k: (stored.get(k), v) for k, v in attrs.items() if stored.get(k) != v}
        if clash:
            detail = ", ".join(f"{k}: stored {old!r}, asked {new!r}" for k, (old, new) in clash.items())
            raise ValueError(f"study {study_name!r} belongs to another problem ({detail}); rename")
    study.sampler = optuna.samplers.TPESampler(
        seed=settings.seed + len(study.trials), n_startup_trials=settings.sampler_startup_trials
    )
    return study


class PruningTracker(RecordingTracker):
    """Reports each epoch's `metric` to the trial and raises `optuna.TrialPruned` when it should stop."""

    def __init__(self, trial: optuna.Trial, inner: Tracker | None = None, metric: str = "val_acc") -> None:
        super().__init__(inner)
        self.trial = trial
        self.metric = metric

    def log_epoch(self, step: int, metrics: Mapping[str, Any]) -> None:
        super().log_epoch(step, metrics)
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_epoch", step)
            raise optuna.TrialPruned(f"pruned at epoch {step} ({self.metric}={value:.4f})")


@dataclass(frozen=True)
class SearchResult:
    study: optuna.Study
    trials_run: int  # by this call
    duration_s: float


def run_search(
    study: optuna.Study,
    splits: TemporalSplits,
    augmented: pd.DataFrame,
    strategy: StrategyConfig,
    *,
    symbol: str,
    model_type: str,
    n_trials: int,
    output_dir: Path,
    timeout_s: float | None = None,
    epochs: int | None = None,
    space: SearchSpace | None = None,
    strategy_source: str = "<strategy>",
    tracker_factory: TrackerFactory = null_tracker_factory,
    progress: Callable[[str], None] | None = None,
) -> SearchResult:
    """Add up to `n_trials` trials to `study` (fewer when `timeout_s` passes first).

    A trial whose training diverges (ModelTrainingError) is recorded FAIL and the search goes on; any
    other error, and KeyboardInterrupt, stops the search with the running trial recorded FAIL.
    """
    if n_trials < 1:
        raise ValueError(f"search: n_trials must be >= 1, got {n_trials}")
    space = space or SearchSpace()
    progress = progress or log.info
    output_dir = Path(output_dir)
    before = len(study.trials)

    def objective(trial: optuna.Trial) -> float:
        section = suggest_section(trial, model_type, space)
        run_dir = output_dir / TRIALS / f"{trial.number:04d}"
        shutil.rmtree(run_dir, ignore_errors=True)  # a trial number is new: anything there is stale
        trial.set_user_attr("run_dir", str(run_dir))
        source = f"{strategy_source} (study {study.study_name}, trial {trial.number})"
        seed = strategy.seed
        variant = variant_strategy(strategy, model_type, section, seed=seed, epochs=epochs, source=source)
        progress(f"study {study.study_name}: trial {trial.number} {section}")
        tracker = PruningTracker(trial)
        tags = {
            "study": study.study_name,
            "trial": str(trial.number),
            "symbol": symbol,
            "model_type": model_type,
        }
        try:
            with tracker_factory(f"{study.study_name}/trial_{trial.number}", tags) as inner:
                tracker.inner = inner
                record = train_model(
                    model_type,
                    splits,
                    augmented,
                    variant,
                    symbol=symbol,
                    run_dir=run_dir,
                    run_info={
                        "run_id": f"{study.study_name}_trial_{trial.number}",
                        "strategy": strategy.name,
                    },
                    strategy_source=source,
                    tracker=tracker,
                    progress=progress,
                )
        except ModelTrainingError as err:
            trial.set_user_attr("error", one_line_error(err))
            raise
        finally:
            trial.set_user_attr("epochs_reached", len(tracker.rows))
            trial.set_user_attr("peak_val_acc", peak_val_accuracy(tracker.rows))
        result = record.result
        history = result["history"]
        trial.set_user_attr("stop_reason", result.get("stop_reason"))
        trial.set_user_attr("test_acc", history["test_accuracy"])
        trial.set_user_attr("train_val_gap", history["train_val_gap"])
        trial.set_user_attr("mlflow_run_id", record.mlflow_run_id)
        return float(history["val_accuracy"])

    started = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, catch=(ModelTrainingError,))
    return SearchResult(study, len(study.trials) - before, time.perf_counter() - started)


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def best_override(study: optuna.Study, model_type: str, space: SearchSpace | None = None) -> dict[str, Any]:
    """`{"models": {model_type: section}}` of the best completed trial, to deep-merge into a strategy."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ValueError(f"study {study.study_name!r} has no completed trial yet ({state_counts(study)})")
    best = optuna.trial.FixedTrial(study.best_trial.params)
    section = suggest_section(best, model_type, space or SearchSpace())
    return {"models": {model_type: section}}


def override_yaml(study: optuna.Study, override: Mapping[str, Any]) -> str:
    best = study.best_trial
    attrs = study.user_attrs
    header = [
        f"# Optuna study {study.study_name} ({attrs.get('symbol', '?')}, {attrs.get('model_type', '?')}): "
        f"best trial {best.number} of {len(study.trials)} {state_counts(study)}",
        f"# {OBJECTIVE}: {best.value:.4f}; written {datetime.now(UTC).isoformat(timespec='seconds')}",
        "# Deep-merge into a strategy file, at the top level or under symbol_overrides.<SYMBOL>.",
    ]
    return "\n".join(header) + "\n" + yaml.safe_dump(dict(override), sort_keys=False)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, duration in seconds, params_*, user_attrs_*."""
    frame = study.trials_dataframe(attrs=("number", "value", "state", "duration", "params", "user_attrs"))
    if "duration" in frame:
        frame["duration"] = frame["duration"].dt.total_seconds()
        frame = frame.rename(columns={"duration": "duration_s"})
    return frame


def history_png(study: optuna.Study) -> bytes:
    """Objective per trial (completed: dots, pruned: last reported value as x) and the best so far."""
    fig = new_figure(8, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values]
    if complete:
        numbers = [t.number for t in complete]
        values = [t.value for t in complete]
        ax.plot(numbers, values, "o", label="completed")
        ax.step(numbers, pd.Series(values).cummax(), where="post", label="best so far")
    if pruned:
        last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
        ax.plot([t.number for t in pruned], last, "x", color="grey", label="pruned (last epoch)")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    if complete or pruned:
        ax.legend(loc="best", fontsize=8)
    ax.set_title(f"{study.study_name}: optimization history {state_counts(study)}", fontsize=10)
    return figure_png(fig)


def write_search_outputs(
    study: optuna.Study, output_dir: Path, model_type: str, space: SearchSpace | None = None
) -> dict[str, Path]:
    """trials.csv, optimization_history.png, study.json and (with a completed trial) best_override.yaml;
    returns {name: path} of what was written."""
    output_dir = Path(output_dir)
    paths = {
        "trials_csv": write_csv(trials_frame(study), output_dir / TRIALS_CSV),
        "history_png": output_dir / HISTORY_PNG,
        "study_json": output_dir / STUDY_JSON,
    }
    write_bytes_atomic(paths["history_png"], history_png(study))
    summary: dict[str, Any] = {
        "study": study.study_name,
        **study.user_attrs,
        "objective": OBJECTIVE,
        "trials": len(study.trials),
        "states": state_counts(study),
    }
    try:
        override = best_override(study, model_type, space)
    except ValueError as err:
        summary["best"] = None
        summary["note"] = str(err)
    else:
        best = study.best_trial
        summary["best"] = {
            "trial": best.number,
            "value": best.value,
            "params": best.params,
            **best.user_attrs,
        }
        summary["override"] = override
        paths["override_yaml"] = output_dir / OVERRIDE_YAML
        write_text_atomic(paths["override_yaml"], override_yaml(study, override))
    write_text_atomic(paths["study_json"], dumps(summary))
    return paths
