"""What several test modules share: strategy files, in-process Dagster runs and what they recorded, warehouse,
registry and MLflow reads, and MSFT's data stage run through the core functions.

A plain module; the fixtures live in conftest.py. Dagster's code location and MLflow are imported by the functions
that use them, so that core tests, which need only the strategy and data-stage helpers, do not pay seconds for them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from ktrdr_assets.benchmarks.fast_models import FAST_EVALUATION, FAST_MODELS
from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.config.schema import StrategyConfig, _deep_merge
from ktrdr_assets.core.data.bars import load_bars
from ktrdr_assets.core.data.splits import TemporalSplits
from ktrdr_assets.core.data.stage import run_data_stage
from ktrdr_assets.core.data.warmup import required_bars
from ktrdr_assets.paths import default_tracking_uri, raw_dir, warehouse_dir
from ktrdr_assets.resources.champion import CHAMPION, registered_name

if TYPE_CHECKING:
    import dagster as dg
    from mlflow.tracking import MlflowClient

SHIPPED_STRATEGY = Path(__file__).resolve().parent.parent / "data" / "strategies" / "neuro_mean_reversion.yaml"
DATA_ASSETS = (
    "ohlcv",
    "indicators",
    "fuzzy_memberships",
    "zigzag_labels",
    "features",
    "temporal_splits",
    "augmented_train_set",
)
MODEL_TYPES = ("random_forest", "xgboost", "neural_network", "lstm", "gru", "attention_lstm", "cnn_lstm")
TORCH_TYPES = MODEL_TYPES[2:]
SEQUENCE_TYPES = MODEL_TYPES[3:]
MODEL_ASSETS = tuple(f"{t}_model" for t in MODEL_TYPES)
POOLED_ASSETS = tuple(f"pooled_{t}_model" for t in TORCH_TYPES)
#: What select_symbol materializes: the pooled models' evaluations (a report when there is nothing to
#: evaluate), then selection, backtest and analytics.
SELECTION_ASSETS = (*POOLED_ASSETS, "model_selection", "backtest", "training_analytics")
MANUAL_REVIEW = "MANUAL_REVIEW_REQUIRED"
#: Every gate passable but the significance test of the accuracy gate (beat the best naive baseline).
PERMISSIVE_GATES = {"max_gap": 1.0, "min_accuracy": 0.0, "min_folds_above_baseline": 0.0, "max_fold_accuracy_std": 1.0}
#: Tiny, fast NN / LSTM settings on top of FAST_MODELS.
TINY = {"neural_network": {"batch_size": 256}, "lstm": {"batch_size": 256, "hidden_size": 8}}


# --------------------------------------------------------------------------- strategies
def write_strategy(path: Path, **sections) -> Path:
    """The shipped strategy with fast models, a short walk-forward and `sections` deep-merged over it,
    written to `path`."""
    raw = yaml.safe_load(SHIPPED_STRATEGY.read_text())
    raw = _deep_merge(raw, {"models": FAST_MODELS, "evaluation": FAST_EVALUATION})
    raw = _deep_merge(raw, sections)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def strategy_run_config(path: Path) -> dict:
    return {"resources": {"strategy": {"config": {"path": str(path)}}}}


# --------------------------------------------------------------------------- Dagster runs
def run_job(
    strategy: Path,
    partition: str | None = None,
    assets: Sequence[str] = (),
    *,
    job: str = "materialize_symbol",
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """Execute `job` (only `assets` of it when given) for one partition in this process with `strategy`, never
    raising on a failed step; in a fresh ephemeral instance unless `instance` is given. The partition is
    registered in the instance first (symbols are dynamic partitions)."""
    import dagster as dg

    from ktrdr_assets.definitions import defs
    from ktrdr_assets.symbol_registry import register_symbols

    instance = dg.DagsterInstance.ephemeral() if instance is None else instance
    if partition is not None:
        register_symbols(instance, [partition])
    return defs.resolve_job_def(job).execute_in_process(
        partition_key=partition,
        run_config=strategy_run_config(strategy),
        instance=instance,
        asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
        raise_on_error=False,
    )


def apply_partition_requests(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """Apply a sensor result's dynamic partition requests to `instance`, as the sensor daemon does."""
    import dagster as dg

    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def step_errors(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """{failed step: the user code's error as `ExceptionClass: message`}, unwrapped from Dagster's."""
    out = {}
    for event in result.all_events:
        if event.is_step_failure:
            error = event.event_specific_data.error
            while error.cause is not None and error.cls_name.startswith("Dagster"):
                error = error.cause
            out[event.step_key] = error.message.strip()
    return out


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """{asset name: its materialization metadata} of one run."""
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        out[mat.asset_key.to_user_string()] = mat.metadata
    return out


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    """{(asset, check): AssetCheckEvaluation} of one run (each check evaluated once per run)."""
    out = {}
    for evaluation in result.get_asset_check_evaluations():
        key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
        assert key not in out, f"{key} evaluated twice in one run"
        out[key] = evaluation
    return out


# --------------------------------------------------------------------------- warehouse, registry, MLflow
def _mlflow_client() -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(default_tracking_uri())


def model_records(symbol: str) -> dict[str, dict]:
    """{model_type: the model asset's stored record} of every materialized model of `symbol`."""
    out = {}
    for model_type, asset in zip(MODEL_TYPES, MODEL_ASSETS, strict=True):
        path = warehouse_dir() / asset / f"{symbol}.json"
        if path.exists():
            out[model_type] = json.loads(path.read_text(encoding="utf-8"))
    return out


def manifest_path() -> Path:
    return warehouse_dir() / "deployment_manifest" / "all.json"


def read_manifest() -> dict:
    return json.loads(manifest_path().read_text(encoding="utf-8"))


def registry_versions(symbol: str) -> list[Any]:
    return _mlflow_client().search_model_versions(f"name = '{registered_name(symbol)}'")


def champion(symbol: str) -> Any:
    """The model version the `champion` alias points at (MLflow ModelVersion)."""
    return _mlflow_client().get_model_version_by_alias(registered_name(symbol), CHAMPION)


def mlflow_runs(experiment: str, /, **tags: str) -> list:
    """The runs of MLflow `experiment` carrying these tag values (none if the experiment does not exist)."""
    client = _mlflow_client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    where = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items()) or None
    return client.search_runs([found.experiment_id], filter_string=where)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones included) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def restored(path: Path) -> Iterator[Path]:
    """`path`, put back byte for byte and with its times after the block (which may rewrite, touch or move it)."""
    saved, stat = path.read_bytes(), path.stat()
    try:
        yield path
    finally:
        path.write_bytes(saved)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# --------------------------------------------------------------------------- the data stage through the core
@dataclass
class Inputs:
    splits: TemporalSplits
    augmented: pd.DataFrame
    strategy: StrategyConfig
    features: pd.DataFrame  # unscaled, every labelled bar: what the walk-forward reads


def build_inputs(symbol: str, strategy_path: Path) -> Inputs:
    """The data stage of the graph run through the core functions on the session's raw file."""
    strategy = load_strategy(strategy_path).for_symbol(symbol)
    path = next(raw_dir().glob(f"{symbol}_*.csv"))
    bars = load_bars(path, required_bars=required_bars(strategy), adjust_with_adj_close=True)
    return inputs_from_bars(bars, strategy)


def inputs_from_bars(bars: pd.DataFrame, strategy: StrategyConfig) -> Inputs:
    """The data stage of the graph run through the core functions on `bars` (open/high/low/close/volume)."""
    stage = run_data_stage(bars, strategy)
    return Inputs(stage.splits, stage.augmented, strategy, stage.features)


def evidence_result(
    oof: float = 0.70,
    baseline: float = 0.45,
    p_value: float = 1e-6,
    gap: float = 0.05,
    share_above: float = 1.0,
    std: float = 0.03,
    holdout: float = 0.66,
    name: str = "XGBoost",
    symbol: str = "EURUSD",
) -> dict:
    """A model result carrying the walk-forward evidence the gates and the selector read."""
    return {
        "model_name": name,
        "symbol": symbol,
        "evidence": {
            "oof": {
                "accuracy": oof,
                "baseline": baseline,
                "baseline_name": "majority (HOLD)",
                "majority_accuracy": baseline,
                "majority_class": "HOLD",
                "persistence_accuracy": baseline - 0.05,
                "p_value": p_value,
                "n": 1000,
                "n_effective": 120,
                "variance_inflation": 8.3,
                "wilson_low": oof - 0.08,
                "wilson_high": oof + 0.08,
                "predicted_shares": {"SELL": 0.3, "HOLD": 0.4, "BUY": 0.3},
            },
            "mean_gap": gap,
            "share_folds_above_baseline": share_above,
            "fold_accuracy_std": std,
            "folds": [{"gap": gap, "test_accuracy": oof, "baseline": baseline}] * 5,
        },
        "holdout": {"accuracy": holdout, "baseline": baseline},
    }


def planted_sawtooth(n: int = 1500, period: int = 40, amplitude: float = 0.15, seed: int = 0) -> pd.DataFrame:
    """Daily bars that rise and fall by `amplitude` every `period` bars, with 0.2 % noise: a planted edge
    that the strategy's features see (the ZigZag label is the phase of the saw)."""
    rng = np.random.default_rng(seed)
    phase = (np.arange(n) % period) / period
    close = 100 * (1 + amplitude * np.where(phase < 0.5, 2 * phase, 2 - 2 * phase)) * np.exp(rng.normal(0, 0.002, n))
    index = pd.date_range("2015-01-01", periods=n, freq="D", tz="UTC")
    volume = 1e6 + rng.normal(0, 1e4, n)
    return pd.DataFrame(
        {"open": close, "high": close * 1.003, "low": close * 0.997, "close": close, "volume": volume}, index=index
    )
