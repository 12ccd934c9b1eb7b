"""Op-based jobs for the people tuning the models, each configurable in the launchpad:

- `run_experiment`: a learning-rate / patience / architecture grid x seeds for one symbol's NN or LSTM,
  written under `<warehouse>/experiments/<name>/` (summary.csv, aggregate.csv, runs/, and the three
  LLM prompts under reports/); every run is an MLflow run of the `ktrdr_experiments` experiment.
- `llm_reports`: re-renders the prompts of an existing experiment (e.g. with another size cap).
- `optuna_search`: a TPE search with median pruning, stored in `$DAGSTER_HOME/optuna.db` so running the
  job again with the same study name resumes it; results under `<warehouse>/hpo/<study>/`, among them
  `best_override.yaml` (a `models:` section to deep-merge into a strategy) and the optimization history
  PNG; every trial is an MLflow run of the `ktrdr_hpo` experiment (pruned trials end KILLED).
- `cleanup_model_runs`: keeps the newest N model run folders per symbol and model, and every folder the
  deployment manifest, a selection or a model asset's latest record points to.

They read the data assets `temporal_splits` and `augmented_train_set` from the warehouse: materialize the
symbol first (`materialize_symbol` job or `ktrdr-run --symbol X`).
"""

# No `from __future__ import annotations`: Dagster reads the op's config class from its annotation.
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field, field_validator

from ktrdr_assets.assets.models import GPU_POOL
from ktrdr_assets.core.data.splits import TemporalSplits
from ktrdr_assets.core.models import cleanup
from ktrdr_assets.core.models.registry import candidate_specs, check_torch_model_type
from ktrdr_assets.core.models.run_folder import RunFolder
from ktrdr_assets.core.research import experiments, llm_reports
from ktrdr_assets.core.research.experiments import TrackerFactory
from ktrdr_assets.core.training.analytics_export import METRICS_CSV
from ktrdr_assets.core.training.tracking import MlflowTracker, Tracker
from ktrdr_assets.core.util.names import check_name
from ktrdr_assets.io import read_all_partitions, read_asset
from ktrdr_assets.metadata import json_value, png_md
from ktrdr_assets.partitions import validate_symbol
from ktrdr_assets.paths import dagster_home, default_tracking_uri, warehouse_dir
from ktrdr_assets.resources import StrategyResource
from ktrdr_assets.resources.tracking import ensure_experiment

if TYPE_CHECKING:  # imported when a search runs: the code location loads without Optuna
    import optuna

EXPERIMENTS_DIR = "experiments"
HPO_DIR = "hpo"
REPORTS_DIR = "reports"
OPTUNA_DB = "optuna.db"
MLFLOW_EXPERIMENTS = "ktrdr_experiments"
MLFLOW_HPO = "ktrdr_hpo"
INPUT_ASSETS = ("temporal_splits", "augmented_train_set")


# --------------------------------------------------------------------------- shared helpers
def _trial_pruned() -> type[BaseException]:
    """Optuna's TrialPruned (imported when a training ends in error, not when the code location loads)."""
    import optuna

    return optuna.TrialPruned


def load_training_inputs(symbol: str) -> tuple[TemporalSplits, pd.DataFrame]:
    """The symbol's stored temporal_splits and augmented_train_set; a clear error when not materialized."""
    validate_symbol(symbol)
    loaded = []
    for asset in INPUT_ASSETS:
        try:
            loaded.append(read_asset(asset, symbol))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{asset} is not materialized for {symbol} under {warehouse_dir()}: materialize the "
                f"symbol's data assets first (the materialize_symbol job, or `ktrdr-run --symbol {symbol}`)"
            ) from None
    return loaded[0], loaded[1]


def mlflow_tracker_factory(experiment_name: str) -> TrackerFactory:
    """One top-level MLflow run per training of the experiment `experiment_name` (store: see resources)."""
    import mlflow

    uri = default_tracking_uri()
    experiment_id = ensure_experiment(experiment_name, uri)
    client = mlflow.tracking.MlflowClient(uri)

    @contextmanager
    def factory(run_name: str, tags: Mapping[str, str]) -> Iterator[Tracker]:
        run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        tracker = MlflowTracker(client, run.info.run_id)
        status = "FAILED"
        try:
            yield tracker
            status = "FINISHED"
        except _trial_pruned():
            status = "KILLED"
            raise
        finally:
            try:
                tracker.close()
            finally:
                client.set_terminated(run.info.run_id, status)

    return factory


def _table_md(frame: pd.DataFrame, columns: list[str]) -> dg.MetadataValue:
    shown = frame[[c for c in columns if c in frame.columns]]
    return dg.MetadataValue.md(shown.to_markdown(index=False, floatfmt=".4g"))


def _prompt_metadata(prompts: Mapping[str, llm_reports.Prompt], paths: Mapping[str, Any]) -> dict[str, Any]:
    sizes = {
        name: {"bytes": p.size_bytes, "rows": f"{p.rows_shown}/{p.rows_total}", "path": str(paths[name])}
        for name, p in prompts.items()
    }
    return {"llm_prompts": json_value(sizes)}


# --------------------------------------------------------------------------- run_experiment
class _TorchTrainingOnSymbol(dg.Config):
    """What experiments and searches share: the symbol whose data assets they train on, a torch model type."""

    symbol: str = Field(description="partition key whose data assets are materialized, e.g. MSFT")
    model_type: str = Field("neural_network", description="a torch model type (neural_network, lstm, ...)")

    @field_validator("model_type")
    @classmethod
    def _torch_model(cls, value: str) -> str:
        return check_torch_model_type(value)


class ExperimentConfig(_TorchTrainingOnSymbol):
    grid: Literal["learning_rate", "patience", "architecture"] = "learning_rate"
    values: list[Any] = Field(
        default_factory=list,
        description="grid values; empty = note 000's grid; architecture: lists of widths, e.g. [[64, 32]]",
    )
    seeds: list[int] = Field(default_factory=lambda: list(experiments.DEFAULT_SEEDS))
    epochs: int | None = Field(None, description="overrides the strategy's epochs for every run")
    name: str | None = Field(None, description="experiment folder; default <symbol>_<model_type>_<grid>")
    max_prompt_bytes: int = Field(llm_reports.MAX_PROMPT_BYTES, description="size cap of each LLM prompt")


def _experiment_dir(name: str) -> Path:
    return warehouse_dir() / EXPERIMENTS_DIR / check_name(name, "experiment name")


def _render_reports(context: dg.OpExecutionContext, folder: Path, max_bytes: int) -> dict[str, Any]:
    prompts = llm_reports.experiment_prompts(folder, max_bytes)
    paths = llm_reports.write_prompts(prompts, folder / REPORTS_DIR)
    for name, prompt in prompts.items():
        context.log.info(f"{name}: {prompt.size_bytes} bytes, {prompt.rows_shown}/{prompt.rows_total} rows")
    return _prompt_metadata(prompts, paths)


@dg.op(out=dg.Out(dg.Nothing), pool=GPU_POOL, description="Train each (value, seed) of the grid.")
def grid_experiment(context: dg.OpExecutionContext, config: ExperimentConfig, strategy: StrategyResource):
    name = config.name or f"{config.symbol}_{config.model_type}_{config.grid}"
    spec = experiments.ExperimentSpec(
        name=name,
        model_type=config.model_type,
        grid=config.grid,
        values=tuple(config.values),
        seeds=tuple(config.seeds),
        epochs=config.epochs,
    )
    splits, augmented = load_training_inputs(config.symbol)
    result = experiments.run_experiment(
        spec,
        splits,
        augmented,
        strategy.for_symbol(config.symbol),
        symbol=config.symbol,
        output_dir=_experiment_dir(name),
        strategy_source=str(strategy.resolved_path()),
        tracker_factory=mlflow_tracker_factory(MLFLOW_EXPERIMENTS),
        progress=context.log.info,
    )
    summary = result.summary
    columns = [
        "run_id",
        "status",
        "epochs_reached",
        "stop_reason",
        "best_val_acc",
        "test_acc",
        "train_val_gap",
    ]
    yield dg.Output(
        None,
        metadata={
            "experiment_dir": dg.MetadataValue.path(str(result.output_dir)),
            "runs": len(summary),
            "failed": int((summary["status"] == experiments.FAILED).sum()),
            "duration_s": round(result.duration_s, 1),
            "summary": _table_md(summary, columns),
            "aggregate": _table_md(result.aggregate, list(result.aggregate.columns)),
            **_render_reports(context, result.output_dir, config.max_prompt_bytes),
        },
    )


@dg.job(name="run_experiment", description="Note 000's experiment grid for one symbol's NN or LSTM.")
def run_experiment_job():
    grid_experiment()


# --------------------------------------------------------------------------- llm_reports
class ReportsConfig(dg.Config):
    experiment: str = Field(description="experiment folder name under <warehouse>/experiments/")
    max_prompt_bytes: int = llm_reports.MAX_PROMPT_BYTES


@dg.op(out=dg.Out(dg.Nothing), description="Render the three LLM prompts of a finished experiment.")
def experiment_reports(context: dg.OpExecutionContext, config: ReportsConfig):
    folder = _experiment_dir(config.experiment)
    yield dg.Output(None, metadata=_render_reports(context, folder, config.max_prompt_bytes))


@dg.job(name="llm_reports", description="Re-render an experiment's LLM prompts (reports/*.md).")
def llm_reports_job():
    experiment_reports()


# --------------------------------------------------------------------------- optuna_search
class SearchConfig(_TorchTrainingOnSymbol):
    n_trials: int = Field(20, ge=1, description="trials added by this run (a study resumes across runs)")
    timeout_s: float | None = Field(None, description="start no new trial after this many seconds")
    study_name: str | None = Field(None, description="default <symbol>_<model_type>; same name = resume")
    epochs: int | None = Field(None, description="overrides the strategy's epochs for every trial")


def _best_trial_metadata(study: "optuna.Study", output_dir: Path, override: Path, config: SearchConfig) -> dict:
    """The best trial's value, params and override file, and its single-run prompt under reports/."""
    from ktrdr_assets.core.research import hpo

    best = study.best_trial
    metadata = {
        "best_value": best.value,
        "best_trial": best.number,
        "best_params": json_value(best.params),
        "best_override": dg.MetadataValue.path(str(override)),
    }
    best_dir = output_dir / hpo.TRIALS / f"{best.number:04d}"
    if (best_dir / METRICS_CSV).is_file():  # absent when the study was resumed on another warehouse
        prompt = llm_reports.single_run_prompt(
            best_dir,
            title=f"{study.study_name} best trial {best.number}",
            context={"symbol": config.symbol, "model": config.model_type, "study": study.study_name},
        )
        paths = llm_reports.write_prompts({prompt.name: prompt}, output_dir / REPORTS_DIR)
        metadata.update(_prompt_metadata({prompt.name: prompt}, paths))
    return metadata


@dg.op(
    out=dg.Out(dg.Nothing),
    pool=GPU_POOL,
    description="Run or resume an Optuna study; write its best override.",
)
def hyperparameter_search(context: dg.OpExecutionContext, config: SearchConfig, strategy: StrategyResource):
    from ktrdr_assets.core.research import hpo  # Optuna, when a search runs: the code location loads without it

    study_name = check_name(config.study_name or f"{config.symbol}_{config.model_type}", "study name")
    splits, augmented = load_training_inputs(config.symbol)
    variant = strategy.for_symbol(config.symbol)
    attrs = {"symbol": config.symbol, "model_type": config.model_type, "strategy": variant.name}
    study = hpo.open_study(hpo.study_storage(dagster_home() / OPTUNA_DB), study_name, attrs)
    output_dir = warehouse_dir() / HPO_DIR / study_name
    context.log.info(f"study {study_name}: {len(study.trials)} trials so far, adding up to {config.n_trials}")
    try:
        result = hpo.run_search(
            study,
            splits,
            augmented,
            variant,
            symbol=config.symbol,
            model_type=config.model_type,
            n_trials=config.n_trials,
            output_dir=output_dir,
            timeout_s=config.timeout_s,
            epochs=config.epochs,
            strategy_source=str(strategy.resolved_path()),
            tracker_factory=mlflow_tracker_factory(MLFLOW_HPO),
            progress=context.log.info,
        )
    finally:  # also after an interruption: the files show the study as it stands
        paths = hpo.write_search_outputs(study, output_dir, config.model_type)
    metadata: dict[str, Any] = {
        "study": study_name,
        "storage": dg.MetadataValue.path(str(dagster_home() / OPTUNA_DB)),
        "output_dir": dg.MetadataValue.path(str(output_dir)),
        "trials_this_run": result.trials_run,
        "trials_total": len(study.trials),
        "states": json_value(hpo.state_counts(study)),
        "duration_s": round(result.duration_s, 1),
        "optimization_history": png_md(paths["history_png"].read_bytes(), f"{study_name} history"),
    }
    if "override_yaml" in paths:
        metadata.update(_best_trial_metadata(study, output_dir, paths["override_yaml"], config))
    yield dg.Output(None, metadata=metadata)


@dg.job(name="optuna_search", description="Note 003's Optuna search (TPE + median pruning), resumable.")
def optuna_search_job():
    hyperparameter_search()


# --------------------------------------------------------------------------- cleanup_model_runs
class CleanupConfig(dg.Config):
    keep: int = Field(5, ge=1, description="newest run folders kept per symbol and model type")
    dry_run: bool = Field(False, description="only report what would be deleted")


def warehouse_references() -> set[str]:
    """Every run_dir named by the deployment manifest, the selections, the model assets' records (the pooled
    evaluations' included) and the pooled models' summaries."""
    documents = []
    assets = ["deployment_manifest", "model_selection", "pooled_models", *(s.asset_name for s in candidate_specs())]
    for asset in assets:
        try:
            documents += read_all_partitions(asset).values()
        except (OSError, ValueError) as err:
            raise RuntimeError(f"cleanup stopped: cannot read the references in {asset}: {err}") from err
    return cleanup.referenced_run_dirs(documents)


@dg.op(out=dg.Out(dg.Nothing), description="Delete old model run folders that nothing references.")
def cleanup_runs(context: dg.OpExecutionContext, config: CleanupConfig):
    runs_root = RunFolder.runs_root(warehouse_dir())
    plan = cleanup.plan_cleanup(runs_root, config.keep, warehouse_references())
    freed = cleanup.folder_bytes(plan.delete)
    deleted = [] if config.dry_run else cleanup.apply_cleanup(plan, runs_root)
    verb = "would delete" if config.dry_run else "deleted"
    context.log.info(f"{verb} {len(plan.delete)} run folders ({freed / 1e6:.1f} MB) under {runs_root}")
    yield dg.Output(
        None,
        metadata={
            "dry_run": config.dry_run,
            "kept_newest": len(plan.keep),
            "kept_referenced": len(plan.protected),
            "selected_for_deletion": len(plan.delete),
            "deleted": len(deleted),
            "megabytes": round(freed / 1e6, 3),
            "folders": json_value([str(p.relative_to(runs_root)) for p in plan.delete]),
            "skipped_non_run_entries": len(plan.skipped),
        },
    )


@dg.job(name="cleanup_model_runs", description="Keep the newest N runs per symbol/model, and all referenced.")
def cleanup_model_runs_job():
    cleanup_runs()


#: After the Monday retraining: old model run folders beyond the newest `keep` go (referenced ones never).
weekly_cleanup = dg.ScheduleDefinition(
    name="weekly_cleanup", job=cleanup_model_runs_job, cron_schedule="0 6 * * 1", execution_timezone="UTC"
)

experiment_jobs = [run_experiment_job, llm_reports_job, optuna_search_job, cleanup_model_runs_job]
