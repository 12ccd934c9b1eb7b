"""Experiment grids (note 000, section 3.1): one hyper-parameter of the NN or LSTM swept over values x seeds.

Every grid run trains through `train_model` with the full analytics (metrics.csv, detailed_metrics.json,
alerts.txt) into its own folder, and becomes one row of `summary.csv`; `aggregate.csv` has the mean and
standard deviation across seeds of each value. A run that fails (an invalid value, NaN loss) is a row with
status `failed` and its one-line error, never the end of the experiment. Layout of an experiment folder:

    experiment.json             the spec, symbol, strategy, timings and counts
    summary.csv                 one row per run (rewritten after every run, so it is readable mid-way)
    aggregate.csv               one row per grid value
    runs/<run_id>/              the run's model, analytics files and learning curves

Grids: `learning_rate` and `patience` set that key of the model's section; `architecture` takes a list of
layer widths: the NN's `hidden_layers`, or for the LSTM equal widths [w, w, ...] = `num_layers` stacked
layers of `hidden_size` w.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.splits import TemporalSplits
from ktrdr_assets.core.models.registry import check_torch_model_type, get_spec
from ktrdr_assets.core.models.training_runs import train_model
from ktrdr_assets.core.training.analytics_export import DETAILED_JSON
from ktrdr_assets.core.training.tracking import NullTracker, Tracker
from ktrdr_assets.core.util.atomic import write_text_atomic
from ktrdr_assets.core.util.jsonsafe import dumps
from ktrdr_assets.core.util.names import check_name

log = logging.getLogger(__name__)

Grid = Literal["learning_rate", "patience", "architecture"]

#: Note 000's grids.
DEFAULT_VALUES: dict[str, tuple[Any, ...]] = {
    "learning_rate": (0.01, 0.001, 0.0001, 0.00001),
    "patience": (10, 20, 30, 50),
    "architecture": ((32, 16), (64, 32, 16), (128, 64, 32), (256, 128, 64)),
}
DEFAULT_SEEDS: tuple[int, ...] = (42, 123, 456)

MARKER = "experiment.json"
SUMMARY_CSV = "summary.csv"
AGGREGATE_CSV = "aggregate.csv"
RUNS = "runs"
SUCCESS, FAILED = "success", "failed"

SUMMARY_COLUMNS: tuple[str, ...] = (
    "run_id",
    "grid",
    "value",
    "seed",
    "status",
    "error",
    "epochs_reached",
    "max_epochs",
    "stop_reason",
    "best_epoch",
    "best_val_acc",
    "val_acc",
    "train_acc",
    "test_acc",
    "train_val_gap",
    "duration_s",
    "run_dir",
)
_TEXT_COLUMNS = {"run_id", "grid", "value", "seed", "status", "error", "stop_reason", "run_dir"}
NUMERIC_COLUMNS = tuple(c for c in SUMMARY_COLUMNS if c not in _TEXT_COLUMNS)
#: Columns averaged across the seeds of one value in aggregate.csv (successful runs only).
AGGREGATED = ("epochs_reached", "best_val_acc", "test_acc", "train_val_gap", "duration_s")

#: (run name, tags) -> a context manager yielding the Tracker of that run (MLflow in the Dagster shell).
TrackerFactory = Callable[[str, Mapping[str, str]], AbstractContextManager[Tracker]]


def null_tracker_factory(_name: str, _tags: Mapping[str, str]) -> AbstractContextManager[Tracker]:
    return nullcontext(NullTracker())


class ExperimentSpec(BaseModel):
    """What to sweep. `values` defaults to note 000's grid of `grid`; `epochs` overrides the strategy's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="folder name of the experiment")
    model_type: str = Field(description="a torch model type of the registry")
    grid: Grid
    values: tuple[Any, ...] = Field(min_length=1)
    seeds: tuple[int, ...] = Field(DEFAULT_SEEDS, min_length=1)
    epochs: int | None = Field(None, ge=1, description="overrides the model section's epochs")

    @model_validator(mode="before")
    @classmethod
    def _default_values(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("values") and data.get("grid") in DEFAULT_VALUES:
            data = {**data, "values": DEFAULT_VALUES[data["grid"]]}
        return data

    @field_validator("model_type")
    @classmethod
    def _torch_model(cls, value: str) -> str:
        return check_torch_model_type(value)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_name(value, "experiment name")

    @model_validator(mode="after")
    def _unique(self) -> ExperimentSpec:
        labels = [folder_label(v) for v in self.values]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"values must be unique as folder names, repeated: {repeated}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be unique, got {list(self.seeds)}")
        return self


@dataclass(frozen=True)
class GridRun:
    run_id: str
    value: Any
    label: str
    seed: int


@dataclass(frozen=True)
class ExperimentResult:
    output_dir: Path
    summary: pd.DataFrame
    aggregate: pd.DataFrame
    duration_s: float

    @property
    def summary_csv(self) -> Path:
        return self.output_dir / SUMMARY_CSV

    @property
    def aggregate_csv(self) -> Path:
        return self.output_dir / AGGREGATE_CSV


def value_label(value: Any) -> str:
    """A grid value as text: 0.001 -> '0.001', 1e-05 -> '1e-05', [64, 32] -> '64-32'."""
    if isinstance(value, (list, tuple)):
        return "-".join(value_label(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def folder_label(value: Any) -> str:
    """`value_label` made safe for a folder name (other characters become '_'; at most 80 characters)."""
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", value_label(value))[:80]


def expand_grid(spec: ExperimentSpec) -> list[GridRun]:
    """Every (value, seed) pair, values outer, in the spec's order."""
    runs = []
    for value in spec.values:
        prefix = f"{spec.grid}_{folder_label(value)}_seed_"
        runs += [GridRun(f"{prefix}{seed}", value, value_label(value), seed) for seed in spec.seeds]
    return runs


def section_override(model_type: str, grid: str, value: Any) -> dict[str, Any]:
    """The keys of the model section one grid value sets; ValueError for an architecture it cannot build."""
    if grid in ("learning_rate", "patience"):
        return {grid: value}
    if grid != "architecture":
        raise ValueError(f"unknown grid {grid!r}; known: {list(DEFAULT_VALUES)}")
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"architecture value {value!r}: give a non-empty list of widths, e.g. [64, 32]")
    if model_type == "neural_network":
        return {"hidden_layers": list(value)}
    if len(set(value)) != 1:
        raise ValueError(
            f"architecture {list(value)} for lstm: stacked LSTM layers share one hidden size; "
            "give equal widths such as [64, 64]"
        )
    return {"hidden_size": value[0], "num_layers": len(value)}


def variant_strategy(
    strategy: StrategyConfig,
    model_type: str,
    override: Mapping[str, Any],
    *,
    seed: int,
    epochs: int | None = None,
    source: str = "<strategy>",
) -> StrategyConfig:
    """`strategy` with `override` merged into `models.<model_type>`, the seed set and every analytics file on.

    The merged section is validated now: a StrategyError naming `source` and `models.<type>.<key>`.
    """
    section = {**strategy.models.sections().get(model_type, {}), **override}
    if epochs is not None:
        section["epochs"] = epochs
    models = strategy.models.with_section(model_type, section)
    analytics = strategy.analytics.model_copy(
        update={"enabled": True, "export_csv": True, "export_json": True, "export_alerts": True}
    )
    variant = strategy.model_copy(update={"models": models, "seed": seed, "analytics": analytics})
    get_spec(model_type).parse_config(variant.models, source)
    return variant


class RecordingTracker:
    """Keeps every epoch row it is given (also those of a run that then fails) and forwards all to `inner`."""

    def __init__(self, inner: Tracker | None = None) -> None:
        self.inner: Tracker = inner or NullTracker()
        self.rows: list[dict[str, Any]] = []

    @property
    def run_id(self) -> str | None:
        return self.inner.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.inner.log_params(params)

    def log_epoch(self, step: int, metrics: Mapping[str, Any]) -> None:
        self.rows.append(dict(metrics))
        self.inner.log_epoch(step, metrics)

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        self.inner.log_metrics(metrics)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        self.inner.log_artifacts(folder, artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.inner.set_tags(tags)

    def close(self) -> None:
        self.inner.close()


def one_line_error(err: BaseException, limit: int = 500) -> str:
    """`Type: message` on one line, at most `limit` characters."""
    text = " | ".join(line.strip() for line in f"{type(err).__name__}: {err}".splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def peak_val_accuracy(rows: list[dict[str, Any]]) -> float | None:
    """The highest validation accuracy of the epochs whose validation loss is finite (None without one)."""
    usable = [row for row in rows if _finite(row.get("val_loss")) and _finite(row.get("val_acc"))]
    return max((float(row["val_acc"]) for row in usable), default=None)


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def _stop_reason_on_disk(run_dir: Path) -> str | None:
    path = run_dir / DETAILED_JSON
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("run_metadata", {}).get("stopping_reason")


def fresh_output_dir(path: Path, marker: str = MARKER) -> Path:
    """Empty `path` for a new experiment; an existing folder is replaced only when it holds `marker`."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(f"{path}: exists and is not a folder")
        if any(path.iterdir()) and not (path / marker).is_file():
            raise FileExistsError(f"{path}: exists, is not empty and has no {marker}; choose another name")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def summary_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    for column in NUMERIC_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def aggregate(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per grid value (first-seen order): run counts, then mean and std (ddof 1) across the seeds
    of each AGGREGATED column over the successful runs (NaN when a value has fewer than 1 or 2 of them)."""
    by_value = summary.groupby("value", sort=False)
    out = pd.DataFrame(
        {
            "grid": by_value["grid"].first(),
            "runs": by_value.size(),
            "succeeded": by_value["status"].apply(lambda s: int((s == SUCCESS).sum())),
        }
    )
    out["failed"] = out["runs"] - out["succeeded"]
    ok = summary[summary["status"] == SUCCESS]
    stats = ok.groupby("value", sort=False)[list(AGGREGATED)].agg(["mean", "std"])
    stats.columns = [f"{column}_{stat}" for column, stat in stats.columns]
    table = out.join(stats).reset_index()
    return table[["grid", "value", *[c for c in table.columns if c not in ("grid", "value")]]]


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    write_text_atomic(path, frame.to_csv(index=False, float_format="%.6g"))
    return path


def _run_one(
    spec: ExperimentSpec,
    run: GridRun,
    splits: TemporalSplits,
    augmented: pd.DataFrame,
    strategy: StrategyConfig,
    *,
    symbol: str,
    output_dir: Path,
    strategy_source: str,
    tracker_factory: TrackerFactory,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    run_dir = output_dir / RUNS / run.run_id
    row = {"run_id": run.run_id, "grid": spec.grid, "value": run.label, "seed": run.seed}
    recorder = RecordingTracker()
    tags = {
        "experiment": spec.name,
        "grid": spec.grid,
        "value": run.label,
        "seed": str(run.seed),
        "symbol": symbol,
        "model_type": spec.model_type,
    }
    started = time.perf_counter()
    try:
        source = f"{strategy_source} (experiment {spec.name}, {spec.grid}={run.label})"
        override = section_override(spec.model_type, spec.grid, run.value)
        variant = variant_strategy(
            strategy, spec.model_type, override, seed=run.seed, epochs=spec.epochs, source=source
        )
        row["max_epochs"] = get_spec(spec.model_type).parse_config(variant.models).epochs
        with tracker_factory(f"{spec.name}/{run.run_id}", tags) as tracker:
            recorder.inner = tracker
            record = train_model(
                spec.model_type,
                splits,
                augmented,
                variant,
                symbol=symbol,
                run_dir=run_dir,
                run_info={"run_id": run.run_id, "experiment": spec.name, "strategy": strategy.name},
                strategy_source=source,
                tracker=recorder,
                progress=progress,
            )
    except Exception as err:  # one failed run is a row of the summary, not the end of the experiment
        log.warning("experiment %s: run %s failed: %s", spec.name, run.run_id, err)
        rows = recorder.rows
        stop = (_stop_reason_on_disk(run_dir) or "error") if rows else "not_started"
        return {
            **row,
            "run_dir": str(run_dir.relative_to(output_dir)) if run_dir.exists() else "",
            "status": FAILED,
            "error": one_line_error(err),
            "epochs_reached": len(rows),
            "stop_reason": stop,
            "best_val_acc": peak_val_accuracy(rows),
            "duration_s": time.perf_counter() - started,
        }
    result = record.result
    history = result["history"]
    return {
        **row,
        "run_dir": str(run_dir.relative_to(output_dir)),
        "status": SUCCESS,
        "error": "",
        "epochs_reached": result.get("epochs_run", len(recorder.rows)),
        "stop_reason": result.get("stop_reason"),
        "best_epoch": result.get("best_epoch"),
        "best_val_acc": peak_val_accuracy(recorder.rows),
        "val_acc": history["val_accuracy"],
        "train_acc": history["train_accuracy"],
        "test_acc": history["test_accuracy"],
        "train_val_gap": history["train_val_gap"],
        "duration_s": time.perf_counter() - started,
    }


def run_experiment(
    spec: ExperimentSpec,
    splits: TemporalSplits,
    augmented: pd.DataFrame,
    strategy: StrategyConfig,
    *,
    symbol: str,
    output_dir: Path,
    strategy_source: str = "<strategy>",
    tracker_factory: TrackerFactory = null_tracker_factory,
    progress: Callable[[str], None] | None = None,
) -> ExperimentResult:
    """Run every (value, seed) of `spec` on one symbol's splits; write and return summary and aggregate.

    `output_dir` is emptied first (only when it is a previous experiment's folder, see `fresh_output_dir`).
    `best_val_acc` is the highest validation accuracy of any epoch; `val_acc` / `test_acc` / `train_val_gap`
    are those of the returned model (its best-validation-loss checkpoint).
    """
    progress = progress or log.info
    output_dir = fresh_output_dir(output_dir)
    started_at, started = datetime.now(UTC), time.perf_counter()
    header = {
        "spec": spec.model_dump(mode="json"),
        "symbol": symbol,
        "strategy": strategy.name,
        "strategy_source": strategy_source,
        "started_at": started_at,
    }
    write_text_atomic(output_dir / MARKER, dumps({**header, "status": "running"}))
    runs = expand_grid(spec)
    rows: list[dict[str, Any]] = []
    for number, run in enumerate(runs, start=1):
        progress(f"experiment {spec.name}: run {number}/{len(runs)} {run.run_id}")
        rows.append(
            _run_one(
                spec,
                run,
                splits,
                augmented,
                strategy,
                symbol=symbol,
                output_dir=output_dir,
                strategy_source=strategy_source,
                tracker_factory=tracker_factory,
                progress=progress,
            )
        )
        write_csv(summary_frame(rows), output_dir / SUMMARY_CSV)
    summary = summary_frame(rows)
    table = aggregate(summary)
    write_csv(table, output_dir / AGGREGATE_CSV)
    duration = time.perf_counter() - started
    counts = summary["status"].value_counts().to_dict()
    write_text_atomic(
        output_dir / MARKER,
        dumps(
            {
                **header,
                "status": "finished",
                "finished_at": datetime.now(UTC),
                "duration_s": duration,
                "runs": len(rows),
                "succeeded": counts.get(SUCCESS, 0),
                "failed": counts.get(FAILED, 0),
            }
        ),
    )
    return ExperimentResult(output_dir=output_dir, summary=summary, aggregate=table, duration_s=duration)
