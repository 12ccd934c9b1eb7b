"""The experiment, Optuna, report and clean-up jobs run in-process on MSFT's materialized data assets, with
their results on disk, in the Optuna SQLite store and in MLflow."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import mlflow
import optuna
import pandas as pd
import pytest
import yaml

from ktrdr_assets.core.config.loader import parse_strategy
from ktrdr_assets.core.config.schema import _deep_merge
from ktrdr_assets.core.models.registry import get_spec
from ktrdr_assets.definitions import defs
from ktrdr_assets.io import WarehouseIOManager
from ktrdr_assets.jobs.research import (
    MLFLOW_EXPERIMENTS,
    MLFLOW_HPO,
    experiment_jobs,
    mlflow_tracker_factory,
)
from ktrdr_assets.paths import dagster_home, default_tracking_uri, warehouse_dir
from ktrdr_assets.resources import StrategyResource
from ktrdr_assets_tests.helpers import (
    DATA_ASSETS,
    mlflow_runs,
    run_job,
    step_errors,
    strategy_run_config,
    write_strategy,
)

#: The jobs as the code location registers them (same resources as `defs`).
JOBS = dg.Definitions(
    jobs=experiment_jobs, resources={"strategy": StrategyResource(), "io_manager": WarehouseIOManager()}
)


@dataclass
class Env:
    strategy: Path
    instance: dg.DagsterInstance

    def run(self, job: str, config: dict, op: str) -> dg.ExecuteInProcessResult:
        run_config = {**strategy_run_config(self.strategy), "ops": {op: {"config": config}}}
        return JOBS.resolve_job_def(job).execute_in_process(
            run_config=run_config, instance=self.instance, raise_on_error=False
        )


def output_metadata(result: dg.ExecuteInProcessResult) -> dict:
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


@pytest.fixture(scope="module")
def env(module_dir: Path, instance: dg.DagsterInstance) -> Env:
    """MSFT's data assets materialized once into this module's own warehouse."""
    strategy = write_strategy(module_dir / "strategy.yaml", models={"neural_network": {"batch_size": 256}})
    result = run_job(strategy, "MSFT", DATA_ASSETS, instance=instance)
    assert result.success, step_errors(result)
    return Env(strategy, instance)


def test_run_experiment_job_writes_results_reports_and_mlflow_runs(env: Env) -> None:
    config = {"symbol": "MSFT", "values": [0.001, 1e6, -1], "seeds": [5], "epochs": 2, "name": "job_lr"}
    result = env.run("run_experiment", config, "grid_experiment")
    assert result.success
    folder = warehouse_dir() / "experiments" / "job_lr"
    summary = pd.read_csv(folder / "summary.csv", dtype={"value": str}).set_index("value")
    assert summary["status"].to_dict() == {"0.001": "success", "1e+06": "failed", "-1": "failed"}
    assert "non-finite loss at epoch 1" in summary.loc["1e+06", "error"]
    assert "models.neural_network.learning_rate: Input should be greater than 0" in summary.loc["-1", "error"]
    assert summary.loc["0.001", "epochs_reached"] == 2
    metadata = output_metadata(result)
    assert (metadata["runs"], metadata["failed"]) == (3, 2)
    sizes = metadata["llm_prompts"]
    assert set(sizes) == {"experiment_comparison", "single_run_analysis", "failure_diagnosis"}
    for name, info in sizes.items():
        text = (folder / "reports" / f"{name}.md").read_text()
        assert info["bytes"] == len(text.encode()) <= 12_000
    assert (
        "learning_rate_0.001_seed_5,learning_rate,0.001,5,success"
        in (folder / "reports" / "experiment_comparison.md").read_text()
    )
    runs = {r.data.tags["value"]: r.info.status for r in mlflow_runs(MLFLOW_EXPERIMENTS, experiment="job_lr")}
    assert runs == {"0.001": "FINISHED", "1e+06": "FAILED"}  # -1 was rejected before any training

    config = {"experiment": "job_lr", "max_prompt_bytes": 6000}
    rerender = env.run("llm_reports", config, "experiment_reports")
    assert rerender.success
    assert all(info["bytes"] <= 6000 for info in output_metadata(rerender)["llm_prompts"].values())


def test_mlflow_run_status_follows_the_training_outcome() -> None:
    factory = mlflow_tracker_factory("ktrdr_factory_test")
    outcomes = {"ok": None, "pruned": optuna.TrialPruned("epoch 2"), "diverged": ValueError("nan")}
    for name, error in outcomes.items():
        with contextlib.suppress(Exception), factory(name, {"case": name}) as tracker:
            tracker.log_epoch(1, {"val_acc": 0.5})
            if error is not None:
                raise error
    runs = mlflow_runs("ktrdr_factory_test")
    assert {r.data.tags["case"]: r.info.status for r in runs} == {
        "ok": "FINISHED",
        "pruned": "KILLED",
        "diverged": "FAILED",
    }
    client = mlflow.tracking.MlflowClient(default_tracking_uri())
    assert all(client.get_metric_history(r.info.run_id, "val_acc")[0].value == 0.5 for r in runs)


def test_run_experiment_names_the_missing_data_assets(env: Env) -> None:
    result = env.run("run_experiment", {"symbol": "AAPL", "seeds": [1], "epochs": 1}, "grid_experiment")
    assert not result.success
    (message,) = step_errors(result).values()
    assert message.startswith("FileNotFoundError: temporal_splits is not materialized for AAPL under ")
    assert "materialize the symbol's data assets first" in message


def test_optuna_search_job_resumes_the_study_across_runs(env: Env) -> None:
    config = {"symbol": "MSFT", "n_trials": 2, "epochs": 2, "study_name": "job_study"}
    first = env.run("optuna_search", config, "hyperparameter_search")
    assert first.success
    second = env.run("optuna_search", {**config, "n_trials": 1}, "hyperparameter_search")
    assert second.success
    metadata = output_metadata(second)
    assert (metadata["trials_this_run"], metadata["trials_total"]) == (1, 3)
    assert (dagster_home() / "optuna.db").is_file()
    folder = warehouse_dir() / "hpo" / "job_study"
    assert len(pd.read_csv(folder / "trials.csv")) == 3
    assert (folder / "optimization_history.png").read_bytes()[:4] == b"\x89PNG"
    override = yaml.safe_load((folder / "best_override.yaml").read_text())
    merged = parse_strategy(_deep_merge(yaml.safe_load(env.strategy.read_text()), override), "merged")
    assert get_spec("neural_network").parse_config(merged.models).learning_rate == pytest.approx(
        metadata["best_params"]["learning_rate"]
    )
    assert (folder / "reports" / "single_run_analysis.md").stat().st_size <= 12_000
    assert len(mlflow_runs(MLFLOW_HPO, study="job_study")) == 3


def test_cleanup_job_keeps_newest_and_referenced_runs(env: Env) -> None:
    root = warehouse_dir() / "model_runs" / "MSFT" / "xgboost"
    folders = [root / f"202501{day:02d}T030000Z_run{day:05d}" for day in range(1, 6)]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "model.json").write_text("{}")
    manifest = {"selections": {"MSFT": {"selected_model": "XGBoost", "run_dir": str(folders[0])}}}
    record = {"model_type": "xgboost", "run_dir": str(folders[1])}
    for path, document in (
        (warehouse_dir() / "deployment_manifest" / "all.json", manifest),
        (warehouse_dir() / "xgboost_model" / "MSFT.json", record),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document))

    dry = env.run("cleanup_model_runs", {"keep": 2, "dry_run": True}, "cleanup_runs")
    assert dry.success and output_metadata(dry)["selected_for_deletion"] == 1
    assert all(f.exists() for f in folders)
    result = env.run("cleanup_model_runs", {"keep": 2}, "cleanup_runs")
    metadata = output_metadata(result)
    assert (metadata["kept_newest"], metadata["kept_referenced"], metadata["deleted"]) == (2, 2, 1)
    assert [f.exists() for f in folders] == [True, True, False, True, True]
    assert metadata["folders"] == [f"MSFT/xgboost/{folders[2].name}"]


def test_old_model_runs_are_cleaned_up_weekly_after_the_retraining():
    schedules = {s.name: s for s in defs.schedules}
    cleanup, retraining = schedules["weekly_cleanup"], schedules["weekly_retraining"]
    assert cleanup.job_name == "cleanup_model_runs"
    # same weekday, three hours after the retraining starts
    assert cleanup.cron_schedule.split()[2:] == retraining.cron_schedule.split()[2:]
    assert int(cleanup.cron_schedule.split()[1]) > int(retraining.cron_schedule.split()[1])
