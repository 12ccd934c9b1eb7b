"""LLM-ready Markdown prompts (note 000, section 3.2): single-run analysis, experiment comparison, failure
diagnosis, each with the real CSV content and its context, and never larger than a byte cap.

Numbers are rounded to 4 significant digits and columns with no value are dropped. When a table still does
not fit, rows are left out evenly (the first, the last and the ones that matter - the best epoch, a failed
run - always stay) and the prompt says how many rows it shows of how many; the files hold every row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_assets.core.models.run_folder import RunFolder
from ktrdr_assets.core.research.experiments import AGGREGATE_CSV, FAILED, MARKER, SUCCESS, SUMMARY_CSV
from ktrdr_assets.core.training.analytics_export import ALERTS_TXT, DETAILED_JSON, METRICS_CSV
from ktrdr_assets.core.util.atomic import write_text_atomic

MAX_PROMPT_BYTES = 12_000
MAX_TEXT_CHARS = 1_500  # alerts and error text inside a prompt
MAX_CELL_CHARS = 120  # a text cell of a table (e.g. an error message)
DIGITS = 4
#: The hyper-parameters named in a run's context line (those present in its config.json).
KEY_PARAMS = (
    "epochs",
    "learning_rate",
    "batch_size",
    "hidden_layers",
    "hidden_size",
    "num_layers",
    "lookback",
    "dropout",
    "weight_decay",
    "patience",
    "loss",
    "focal_gamma",
)



def _alerts_then_metrics(heading: str) -> str:
    """The alerts.txt block, then the metrics.csv table under `heading` (both prompts about one run end so)."""
    return "```text\n{alerts}\n```\n\n## " + heading + " (metrics.csv{note})\n```csv\n{table}\n```\n"


SINGLE_RUN = (
    """# Training run analysis: {title}

Analyze this model training run. The CSV shows its metrics for each epoch (or boosting round).

## Context
- A 3-class classification problem (SELL / HOLD / BUY); random guessing is ~33% accurate.
- The model learns from fuzzy-logic membership features (plus price and volume context and lags).
- Training stopped at epoch {final_epoch} (the maximum was {max_epochs}); stop reason: {stop_reason}.
{context}

## Alerts (alerts.txt)
"""
    + _alerts_then_metrics("Metrics per epoch")
    + """
## Questions
1. Why did training stop when it did?
2. Was the model learning effectively?
3. What specific changes would improve training?
4. Rate the overall training quality (Poor/Fair/Good/Excellent).

Focus on actionable insights, not just descriptions of the data.
"""
)

EXPERIMENT_COMPARISON = """# Experiment comparison: {title}

Compare these training experiments to determine optimal hyperparameters.

## Context
- Experiment: {experiment_type} (one row per value and seed; the other settings are fixed).
- A 3-class classification problem (SELL / HOLD / BUY); random guessing is ~33% accurate.
- best_val_acc is the best epoch's validation accuracy; val_acc, test_acc and train_val_gap are those of the
  kept checkpoint (lowest validation loss); status `failed` rows carry their error.
{context}

## Mean and standard deviation across seeds (aggregate.csv)
```csv
{aggregate}
```

## Summary data (summary.csv{note})
```csv
{table}
```

For each configuration, I need:
1. Average epochs reached
2. Average final accuracy
3. Training stability (consistent across seeds?)
4. Overall ranking (best to worst)

Recommend the optimal {experiment_type} value and explain why.
"""

FAILURE_DIAGNOSIS = (
    """# Failure diagnosis: {title}

This training run failed or performed very poorly. Help diagnose the issue.

## Failure symptoms
- Status: {status}; error: {error}
- Final accuracy: {final_accuracy}
- Epochs completed: {epochs_completed} (the maximum was {max_epochs}); stop reason: {stop_reason}
{context}
- Alerts generated:
"""
    + _alerts_then_metrics("Training data")
    + """
What went wrong and how to fix it?
"""
)


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    rows_total: int  # rows of the main table
    rows_shown: int

    @property
    def size_bytes(self) -> int:
        return len(self.text.encode("utf-8"))


def cap_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """At most `limit` characters, cut at a line end, saying how many lines were left out."""
    text = text.strip()
    if len(text) <= limit:
        return text
    lines, kept, size = text.splitlines(), [], 0
    for line in lines:
        if size + len(line) + 1 > limit - 40:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept) + f"\n... ({len(lines) - len(kept)} more lines)"


def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells cut to MAX_CELL_CHARS."""
    frame = frame.copy()
    for column in frame.select_dtypes(include=["object", "string"]).columns:
        frame[column] = frame[column].map(_cut)
    return frame


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[: MAX_CELL_CHARS - 3] + "..."
    return value


def csv_text(frame: pd.DataFrame, na_rep: str = "") -> str:
    """The table as CSV, numbers rounded to DIGITS significant digits, missing values as `na_rep`."""
    return frame.to_csv(index=False, float_format=f"%.{DIGITS}g", na_rep=na_rep).rstrip("\n")


def _rows(n: int, k: int, keep: Iterable[int]) -> np.ndarray:
    spread = np.round(np.linspace(0, n - 1, k)).astype(int) if k > 0 else np.empty(0, dtype=int)
    return np.union1d(spread, np.fromiter(keep, dtype=int))


def fit_table(
    frame: pd.DataFrame,
    render: Callable[[str, str], str],
    max_bytes: int,
    keep: Iterable[int] = (),
    name: str = "prompt",
    na_rep: str = "",
) -> tuple[str, int]:
    """(prompt text, rows shown): `render(csv, note)` with as many evenly spaced rows of `frame` as fit in
    `max_bytes`; rows at positions `keep` always stay (the first and last too). ValueError when even the
    kept rows do not fit."""
    frame = _compact(frame.reset_index(drop=True))
    n = len(frame)
    text = render(csv_text(frame, na_rep), "")
    if len(text.encode("utf-8")) <= max_bytes:
        return text, n
    keep = [i for i in {0, n - 1, *keep} if 0 <= i < n]

    def attempt(k: int) -> tuple[str, int]:
        rows = _rows(n, k, keep)
        note = f"; {len(rows)} of {n} rows shown, evenly spaced - the file has all"
        return render(csv_text(frame.iloc[rows], na_rep), note), len(rows)

    low, high = 0, n  # the largest k whose prompt fits
    best = attempt(0)
    if len(best[0].encode("utf-8")) > max_bytes:
        size = len(best[0].encode("utf-8"))
        raise ValueError(f"{name}: {size} bytes with only {best[1]} table rows, above the cap of {max_bytes}")
    while low < high:
        middle = (low + high + 1) // 2
        candidate = attempt(middle)
        if len(candidate[0].encode("utf-8")) <= max_bytes:
            low, best = middle, candidate
        else:
            high = middle - 1
    return best


def _bullets(context: Mapping[str, Any]) -> str:
    return "\n".join(f"- {key}: {_fmt(value)}" for key, value in context.items() if value is not None)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.{DIGITS}g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _read_metrics(path: Path) -> pd.DataFrame:
    """metrics.csv without the columns that are empty in every row (no meaning for this model)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    empty = [column for column in raw.columns if (raw[column] == "").all()]
    return pd.read_csv(path).drop(columns=empty)


@dataclass(frozen=True)
class RunFiles:
    """What a run folder holds for a prompt (absent files are empty / None)."""

    metrics: pd.DataFrame
    alerts: str
    result: dict[str, Any] | None
    config: dict[str, Any] | None
    detailed: dict[str, Any] | None

    @classmethod
    def read(cls, run_dir: Path | None) -> RunFiles:
        def load(name: str) -> dict[str, Any] | None:
            path = run_dir / name if run_dir else None
            return json.loads(path.read_text(encoding="utf-8")) if path and path.is_file() else None

        csv = run_dir / METRICS_CSV if run_dir else None
        alerts = run_dir / ALERTS_TXT if run_dir else None
        return cls(
            metrics=_read_metrics(csv) if csv and csv.is_file() else pd.DataFrame(),
            alerts=alerts.read_text(encoding="utf-8") if alerts and alerts.is_file() else "",
            result=load(RunFolder.METRICS),
            config=load(RunFolder.CONFIG),
            detailed=load(DETAILED_JSON),
        )

    @property
    def params(self) -> dict[str, Any]:
        """Key hyper-parameters from config.json, or from detailed_metrics.json for a run that failed."""
        config = (self.config or {}).get("config") or (self.detailed or {}).get("training_config", {})
        return {key: config[key] for key in KEY_PARAMS if key in config}

    @property
    def max_epochs(self) -> Any:
        return self.params.get("epochs", "unknown")

    @property
    def stop_reason(self) -> str:
        if self.result and self.result.get("stop_reason"):
            return self.result["stop_reason"]
        return (self.detailed or {}).get("run_metadata", {}).get("stopping_reason") or "unknown"

    def best_epoch_position(self) -> list[int]:
        best = (self.result or {}).get("best_epoch")
        if best is None or self.metrics.empty:
            return []
        return [int(i) for i in np.flatnonzero(self.metrics["epoch"].to_numpy() == best)]

    def outcome(self) -> dict[str, Any]:
        if not self.result:
            return {}
        history = self.result["history"]
        return {
            "best epoch (kept checkpoint)": self.result.get("best_epoch"),
            "train / validation / test accuracy": [
                history["train_accuracy"],
                history["val_accuracy"],
                history["test_accuracy"],
            ],
            "test majority-class baseline": self.result.get("test_majority_baseline", {}).get("accuracy"),
        }


def single_run_prompt(
    run_dir: Path, *, title: str, context: Mapping[str, Any] | None = None, max_bytes: int = MAX_PROMPT_BYTES
) -> Prompt:
    """note 000's single_run_analysis of a run folder (metrics.csv, alerts.txt, metrics.json, config.json)."""
    files = RunFiles.read(Path(run_dir))
    if files.metrics.empty:
        raise ValueError(f"single_run_analysis: {Path(run_dir) / METRICS_CSV} is missing or empty")
    lines = _bullets({**(context or {}), **files.outcome(), "hyper-parameters": files.params})

    def render(table: str, note: str) -> str:
        return SINGLE_RUN.format(
            title=title,
            final_epoch=int(files.metrics["epoch"].iloc[-1]),
            max_epochs=files.max_epochs,
            stop_reason=files.stop_reason,
            context=lines,
            alerts=cap_text(files.alerts) or "(no alerts.txt)",
            note=note,
            table=table,
        )

    text, shown = fit_table(
        files.metrics, render, max_bytes, files.best_epoch_position(), "single_run_analysis", na_rep="nan"
    )
    return Prompt("single_run_analysis", text, len(files.metrics), shown)


def failure_diagnosis_prompt(
    run_dir: Path | None,
    *,
    title: str,
    status: str,
    error: str = "",
    context: Mapping[str, Any] | None = None,
    max_bytes: int = MAX_PROMPT_BYTES,
) -> Prompt:
    """note 000's failure_diagnosis for a failed or poor run; `run_dir` None (or without metrics.csv) for a
    run that failed before its first epoch."""
    files = RunFiles.read(Path(run_dir) if run_dir else None)
    metrics = files.metrics
    final = files.outcome().get("train / validation / test accuracy")
    if final is None and not metrics.empty:
        final = f"validation {_fmt(float(metrics['val_acc'].iloc[-1]))} at the last epoch"
    table = metrics if not metrics.empty else pd.DataFrame({"note": ["no epoch ran: it failed before"]})

    def render(csv: str, note: str) -> str:
        return FAILURE_DIAGNOSIS.format(
            title=title,
            status=status,
            error=cap_text(error, MAX_TEXT_CHARS // 2) or "none",
            final_accuracy=_fmt(final) if final is not None else "none (no epoch completed)",
            epochs_completed=len(metrics),
            max_epochs=files.max_epochs,
            stop_reason=files.stop_reason,
            context=_bullets({**(context or {}), "hyper-parameters": files.params or None}),
            alerts=cap_text(files.alerts) or "(no alerts.txt)",
            note=note,
            table=csv,
        )

    keep = files.best_epoch_position()
    text, shown = fit_table(table, render, max_bytes, keep, "failure_diagnosis", na_rep="nan")
    return Prompt("failure_diagnosis", text, len(metrics), shown if len(metrics) else 0)


def experiment_comparison_prompt(
    summary: pd.DataFrame,
    aggregate: pd.DataFrame,
    *,
    title: str,
    experiment_type: str,
    context: Mapping[str, Any] | None = None,
    max_bytes: int = MAX_PROMPT_BYTES,
) -> Prompt:
    """note 000's experiment_comparison: the aggregate table whole, the summary rows as many as fit (failed
    runs always kept)."""
    shown_summary = summary.drop(columns=["run_dir"], errors="ignore")
    aggregate_csv = csv_text(_compact(aggregate))
    failed = np.flatnonzero(summary["status"].to_numpy() == FAILED) if "status" in summary else []

    def render(table: str, note: str) -> str:
        return EXPERIMENT_COMPARISON.format(
            title=title,
            experiment_type=experiment_type,
            context=_bullets(context or {}),
            aggregate=aggregate_csv,
            note=note,
            table=table,
        )

    text, shown = fit_table(shown_summary, render, max_bytes, failed, "experiment_comparison")
    return Prompt("experiment_comparison", text, len(summary), shown)


def experiment_prompts(experiment_dir: Path, max_bytes: int = MAX_PROMPT_BYTES) -> dict[str, Prompt]:
    """The three prompts of a finished experiment folder: the comparison, the single-run analysis of the
    run with the best validation accuracy and the failure diagnosis of the first failed run (or, with no
    failure, of the run with the worst validation accuracy)."""
    experiment_dir = Path(experiment_dir)
    for name in (MARKER, SUMMARY_CSV, AGGREGATE_CSV):
        if not (experiment_dir / name).is_file():
            raise FileNotFoundError(f"{experiment_dir}: no {name}; is this a finished experiment folder?")
    header = json.loads((experiment_dir / MARKER).read_text(encoding="utf-8"))
    spec = header["spec"]
    summary = pd.read_csv(experiment_dir / SUMMARY_CSV, dtype={"value": str})
    aggregate = pd.read_csv(experiment_dir / AGGREGATE_CSV, dtype={"value": str})
    context = {
        "symbol": header["symbol"],
        "model": spec["model_type"],
        "strategy": header["strategy"],
        "values": spec["values"],
        "seeds": spec["seeds"],
        "epochs override": spec.get("epochs"),
    }
    name = spec["name"]
    prompts = {
        "experiment_comparison": experiment_comparison_prompt(
            summary, aggregate, title=name, experiment_type=spec["grid"], context=context, max_bytes=max_bytes
        )
    }
    succeeded = summary[summary["status"] == SUCCESS]
    if not succeeded.empty:
        best = succeeded.loc[succeeded["best_val_acc"].fillna(-1.0).idxmax()]
        prompts["single_run_analysis"] = single_run_prompt(
            experiment_dir / best["run_dir"],
            title=f"{name} / {best['run_id']} (best validation accuracy of the experiment)",
            context={**context, spec["grid"]: best["value"], "seed": best["seed"]},
            max_bytes=max_bytes,
        )
    failed = summary[summary["status"] == FAILED]
    lowest = succeeded["best_val_acc"].fillna(-1.0).idxmin() if failed.empty else None
    worst = failed.iloc[0] if lowest is None else succeeded.loc[lowest]
    run_dir = experiment_dir / worst["run_dir"] if isinstance(worst["run_dir"], str) else None
    prompts["failure_diagnosis"] = failure_diagnosis_prompt(
        run_dir,
        title=f"{name} / {worst['run_id']}",
        status=worst["status"],
        error=worst["error"] if isinstance(worst["error"], str) else "",
        context={**context, spec["grid"]: worst["value"], "seed": worst["seed"]},
        max_bytes=max_bytes,
    )
    return prompts


def write_prompts(prompts: Mapping[str, Prompt], folder: Path) -> dict[str, Path]:
    """`<folder>/<name>.md` for each prompt; {name: path}."""
    paths = {}
    for name, prompt in prompts.items():
        paths[name] = Path(folder) / f"{name}.md"
        write_text_atomic(paths[name], prompt.text)
    return paths


def write_run_prompt(run_dir: Path, *, title: str, context: Mapping[str, Any], error: BaseException | None) -> Path:
    """The LLM prompt of one model training, beside its files: single_run_analysis.md for a finished
    run, failure_diagnosis.md for a failed one."""
    if error is None:
        prompt = single_run_prompt(run_dir, title=title, context=context)
    else:
        prompt = failure_diagnosis_prompt(
            run_dir, title=title, status="failed", error=f"{type(error).__name__}: {error}", context=context
        )
    return write_prompts({prompt.name: prompt}, run_dir)[prompt.name]
