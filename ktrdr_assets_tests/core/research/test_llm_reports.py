"""LLM prompts built from run and experiment folders written with the platform's own writers: the real CSV
content (rounded to 4 significant digits), the context, and the byte cap with rows left out evenly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ktrdr_assets.core.research.experiments import (
    AGGREGATE_CSV,
    MARKER,
    SUMMARY_CSV,
    aggregate,
    summary_frame,
    write_csv,
)
from ktrdr_assets.core.research.llm_reports import (
    MAX_PROMPT_BYTES,
    cap_text,
    experiment_comparison_prompt,
    experiment_prompts,
    failure_diagnosis_prompt,
    single_run_prompt,
    write_prompts,
)
from ktrdr_assets.core.training.analytics_export import metrics_csv_text

SHOWN = [
    "epoch",
    "train_loss",
    "val_loss",
    "train_acc",
    "val_acc",
    "learning_rate",
    "early_stopping_triggered",
]


def epoch_rows(n: int, nan_from: int | None = None) -> list[dict]:
    """Per-epoch rows with values of at most 6 significant digits (so metrics.csv stores them exactly)."""
    rows = []
    for epoch in range(1, n + 1):
        loss = math.nan if nan_from and epoch >= nan_from else round(1.1 - 0.00123 * epoch, 6)
        rows.append(
            {
                "epoch": epoch,
                "train_loss": loss,
                "val_loss": loss if math.isnan(loss) else round(loss + 0.0456, 6),
                "train_acc": round(0.33 + 0.000777 * epoch, 6),
                "val_acc": round(0.3 + 0.000555 * epoch, 6),
                "learning_rate": 0.001,
                "early_stopping_triggered": epoch == n,
            }
        )
    return rows


def expected_line(row: dict) -> str:
    """The row as the prompt must show it, formatted independently of the module."""
    cells = []
    for key in SHOWN:
        value = row[key]
        if isinstance(value, (bool, int)):
            cells.append(str(value))
        else:
            cells.append("nan" if math.isnan(value) else f"{value:.4g}")
    return ",".join(cells)


def make_run(folder: Path, n: int, best: int, nan_from: int | None = None, result: bool = True) -> Path:
    folder.mkdir(parents=True)
    rows = epoch_rows(n, nan_from)
    (folder / "metrics.csv").write_text(metrics_csv_text(rows))
    (folder / "alerts.txt").write_text("Analytics alerts\n[WARNING] epochs 11-20 learning_plateau: x\n")
    (folder / "config.json").write_text(
        json.dumps({"config": {"epochs": 100, "learning_rate": 0.001, "hidden_layers": [32, 16], "other": 1}})
    )
    if result:
        history = {"train_accuracy": 0.52, "val_accuracy": 0.44, "test_accuracy": 0.41}
        metrics = {"history": history, "best_epoch": best, "stop_reason": "early_stopping"}
        baseline = {"test_majority_baseline": {"accuracy": 0.38}}
        (folder / "metrics.json").write_text(json.dumps({**metrics, **baseline}))
    return folder


def csv_block(text: str, heading: str) -> list[str]:
    """The lines of the ```csv block that follows `heading` in a prompt."""
    start = text.index("```csv\n", text.index(heading)) + len("```csv\n")
    return text[start : text.index("\n```", start)].splitlines()


def test_single_run_prompt_holds_the_csv_and_context(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", n=20, best=12)
    prompt = single_run_prompt(run, title="MSFT nn", context={"symbol": "MSFT"})
    lines = csv_block(prompt.text, "## Metrics per epoch")
    assert lines[0] == ",".join(SHOWN)  # the columns empty in every row are left out
    assert lines[1:] == [expected_line(row) for row in epoch_rows(20)]
    assert (prompt.rows_total, prompt.rows_shown) == (20, 20)
    for fragment in (
        "# Training run analysis: MSFT nn",
        "Training stopped at epoch 20 (the maximum was 100); stop reason: early_stopping.",
        "- symbol: MSFT",
        "- best epoch (kept checkpoint): 12",
        "- train / validation / test accuracy: [0.52, 0.44, 0.41]",
        "- test majority-class baseline: 0.38",
        "- hyper-parameters: {'epochs': 100, 'learning_rate': 0.001, 'hidden_layers': [32, 16]}",
        "[WARNING] epochs 11-20 learning_plateau: x",
        "4. Rate the overall training quality (Poor/Fair/Good/Excellent).",
    ):
        assert fragment in prompt.text
    assert prompt.size_bytes == len(prompt.text.encode()) <= MAX_PROMPT_BYTES


def test_a_long_run_is_cut_evenly_to_the_cap_keeping_first_last_and_best(tmp_path: Path) -> None:
    run = make_run(tmp_path / "long", n=300, best=137)
    prompt = single_run_prompt(run, title="long")
    assert prompt.size_bytes <= MAX_PROMPT_BYTES and 30 < prompt.rows_shown < 300
    note = f"(metrics.csv; {prompt.rows_shown} of 300 rows shown, evenly spaced - the file has all)"
    assert note in prompt.text
    lines = csv_block(prompt.text, "## Metrics per epoch")[1:]
    rows = {row["epoch"]: row for row in epoch_rows(300)}
    epochs = [int(line.split(",")[0]) for line in lines]
    assert lines == [expected_line(rows[e]) for e in epochs]  # whole, unaltered rows
    assert {1, 137, 300} <= set(epochs) and epochs == sorted(epochs)
    gaps = np.diff([e for e in epochs if e != 137])
    assert gaps.max() - gaps.min() <= 1  # evenly spaced
    bigger = single_run_prompt(run, title="long", max_bytes=20_000)
    assert prompt.rows_shown < bigger.rows_shown and bigger.size_bytes <= 20_000
    with pytest.raises(
        ValueError, match=r"^single_run_analysis: \d+ bytes with only 3 table rows, above the cap of 900$"
    ):
        single_run_prompt(run, title="long", max_bytes=900)


def test_failure_diagnosis_keeps_nan_losses_and_handles_a_run_that_never_started(tmp_path: Path) -> None:
    run = make_run(tmp_path / "nan", n=4, best=1, nan_from=3, result=False)
    prompt = failure_diagnosis_prompt(run, title="nan", status="failed", error="ModelTrainingError: nan loss")
    lines = csv_block(prompt.text, "## Training data")
    assert lines[1:] == [expected_line(row) for row in epoch_rows(4, nan_from=3)]
    assert ",nan,nan," in lines[3]
    for fragment in (
        "- Status: failed; error: ModelTrainingError: nan loss",
        "- Final accuracy: validation 0.3022 at the last epoch",
        "- Epochs completed: 4 (the maximum was 100)",
        "What went wrong and how to fix it?",
    ):
        assert fragment in prompt.text
    never = failure_diagnosis_prompt(None, title="invalid", status="failed", error="StrategyError: bad value")
    assert csv_block(never.text, "## Training data") == ["note", "no epoch ran: it failed before"]
    assert "- Epochs completed: 0 (the maximum was unknown)" in never.text
    assert "- Final accuracy: none (no epoch completed)" in never.text
    assert (never.rows_total, never.rows_shown) == (0, 0)


def _summary_rows(n: int, failed_at: int) -> list[dict]:
    rows = []
    for i in range(n):
        ok = i != failed_at
        rows.append(
            {
                "run_id": f"patience_{i}_seed_1",
                "grid": "patience",
                "value": str(i),
                "seed": 1,
                "status": "success" if ok else "failed",
                "error": "" if ok else "ModelTrainingError: boom",
                "epochs_reached": 10 + i,
                "best_val_acc": round(0.3 + i / 1000, 6) if ok else None,
                "test_acc": 0.4 if ok else None,
                "run_dir": f"runs/r{i}" if ok else "",
            }
        )
    return rows


def test_experiment_comparison_keeps_failed_rows_when_cut(tmp_path: Path) -> None:
    summary = summary_frame(_summary_rows(400, failed_at=277))
    table = aggregate(summary)
    prompt = experiment_comparison_prompt(summary, table.head(3), title="p", experiment_type="patience")
    assert prompt.size_bytes <= MAX_PROMPT_BYTES and prompt.rows_shown < 400
    lines = csv_block(prompt.text, "## Summary data")
    assert lines[0].startswith("run_id,grid,value,seed,status,error,epochs_reached")
    assert "run_dir" not in lines[0]
    assert "patience_277_seed_1,patience,277,1,failed,ModelTrainingError: boom,287," in "\n".join(lines)
    means = csv_block(prompt.text, "## Mean and standard deviation")
    assert means[1].startswith("patience,0,1,1,0,10,,0.3,,0.4,")
    assert "Recommend the optimal patience value and explain why." in prompt.text


def test_experiment_prompts_from_an_experiment_folder(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    rows = _summary_rows(3, failed_at=1)
    for i in (0, 2):
        make_run(folder / "runs" / f"r{i}", n=5 + i, best=2)
    spec = {
        "name": "exp",
        "model_type": "neural_network",
        "grid": "patience",
        "values": [0, 1, 2],
        "seeds": [1],
    }
    (folder / MARKER).write_text(json.dumps({"spec": spec, "symbol": "MSFT", "strategy": "s"}))
    summary = summary_frame(rows)
    write_csv(summary, folder / SUMMARY_CSV)
    write_csv(aggregate(summary), folder / AGGREGATE_CSV)

    prompts = experiment_prompts(folder)
    assert set(prompts) == {"experiment_comparison", "single_run_analysis", "failure_diagnosis"}
    best = prompts["single_run_analysis"]
    assert "# Training run analysis: exp / patience_2_seed_1 (best validation accuracy" in best.text
    assert best.rows_total == 7 and "- patience: 2" in best.text
    failure = prompts["failure_diagnosis"].text
    assert "# Failure diagnosis: exp / patience_1_seed_1" in failure
    assert "error: ModelTrainingError: boom" in failure
    comparison = prompts["experiment_comparison"].text
    assert csv_block(comparison, "## Summary data")[1:] == [
        "patience_0_seed_1,patience,0,1,success,,10,,,,0.3,,,0.4,,",
        "patience_1_seed_1,patience,1,1,failed,ModelTrainingError: boom,11,,,,,,,,,",
        "patience_2_seed_1,patience,2,1,success,,12,,,,0.302,,,0.4,,",
    ]
    assert all(p.size_bytes <= MAX_PROMPT_BYTES for p in prompts.values())
    paths = write_prompts(prompts, folder / "reports")
    assert {p.name for p in paths.values()} == {
        "experiment_comparison.md",
        "single_run_analysis.md",
        "failure_diagnosis.md",
    }
    assert paths["failure_diagnosis"].read_text() == failure
    with pytest.raises(FileNotFoundError, match=r"no experiment.json; is this a finished experiment folder"):
        experiment_prompts(tmp_path)


def test_cap_text() -> None:
    text = "\n".join(f"line {i:03d} " + "x" * 20 for i in range(100))
    capped = cap_text(text, 200)
    assert len(capped) <= 200 and capped.startswith("line 000 ")
    kept = capped.count("\n")
    assert capped.endswith(f"... ({100 - kept} more lines)")
    assert cap_text("short\n") == "short"
