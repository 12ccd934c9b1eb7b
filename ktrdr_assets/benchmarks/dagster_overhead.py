"""Dagster overhead: a `materialize_symbol` run's wall time over the sum of its steps' compute times.

Run from the repository root:  .venv/bin/python -m ktrdr_assets.benchmarks.dagster_overhead [--symbol MSFT]

Everything happens in a temporary DAGSTER_HOME (a persistent SQLite instance configured by the
project's dagster_home/dagster.yaml, as `ktrdr-run` uses), warehouse and MLflow store, set before
ktrdr_assets is imported; the raw bars are the project's data/raw, read only. Strategy: the shipped
one with the small models of the test suite. The MLflow store is created before timing (a deployed
store exists already). 'wall' is from launching the run to its return; a step's compute time is its
STEP_START to its STEP_SUCCESS / STEP_FAILURE in the run's event log, so it holds the step's input
loading, output writing and its own events. The ratio wall / sum(steps) is what orchestration adds
outside the steps: building the plan and writing its 'planned' events, starting resources, the event
writes between one step and the next and, with the multiprocess executor (the comparison,
`max_concurrent: 2`), one fresh Python process per step that imports the code location before its
STEP_START; there two steps may overlap, pulling the ratio down.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import dagster as dg
import mlflow
import yaml

from ktrdr_assets.benchmarks.fast_models import FAST_MODELS
from ktrdr_assets.paths import PROJECT_ROOT

DEFAULT_SYMBOL = "MSFT"
PROJECT_INSTANCE_CONFIG = PROJECT_ROOT / "dagster_home" / "dagster.yaml"
STEP_END = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


def write_fast_strategy(path: Path) -> Path:
    """The shipped strategy with FAST_MODELS, written to `path`."""
    from ktrdr_assets.paths import default_strategy_path

    raw = yaml.safe_load(default_strategy_path().read_text())
    raw["models"] = {**raw.get("models", {}), **FAST_MODELS}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def multiprocess_job() -> dg.JobDefinition:
    """`materialize_symbol` on the multiprocess executor; reconstructable: every step process rebuilds it."""
    from ktrdr_assets.definitions import defs
    from ktrdr_assets.jobs.retraining import SYMBOL_JOB

    return defs.resolve_job_def(SYMBOL_JOB).with_executor_def(dg.multiprocess_executor)


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Per step key: seconds from its STEP_START to its STEP_SUCCESS or STEP_FAILURE event."""
    starts: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_START, *STEP_END}):
        if entry.dagster_event.event_type in STEP_END:
            seconds[entry.step_key] = entry.timestamp - starts[entry.step_key]
        else:
            starts[entry.step_key] = entry.timestamp
    return seconds


def timed_run(
    executor: str,
    symbol: str,
    strategy: Path,
    instance: dg.DagsterInstance,
    selection: list[dg.AssetKey] | None,
) -> dict:
    """One run of `selection` (None: the whole job) on `executor` ('in_process' or 'multiprocess'):
    success, step count, wall seconds, summed step seconds and their ratio."""
    from ktrdr_assets.definitions import defs
    from ktrdr_assets.jobs.retraining import SYMBOL_JOB

    run_config: dict = {
        "resources": {"strategy": {"config": {"path": str(strategy)}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    from ktrdr_assets.symbol_registry import register_symbols

    register_symbols(instance, [symbol])
    start = time.perf_counter()
    if executor == "in_process":
        result = defs.resolve_job_def(SYMBOL_JOB).execute_in_process(
            run_config=run_config,
            instance=instance,
            partition_key=symbol,
            asset_selection=selection,
            raise_on_error=False,
        )
    else:
        run_config["execution"] = {"config": {"max_concurrent": 2}}
        result = dg.execute_job(
            dg.reconstructable(multiprocess_job),
            instance,
            run_config=run_config,
            tags={"dagster/partition": symbol},
            asset_selection=selection,
        )
    wall = time.perf_counter() - start
    steps = step_seconds(instance, result.run_id)
    total = sum(steps.values())
    return {
        "success": result.success,
        "steps": len(steps),
        "wall_s": wall,
        "steps_s": total,
        "ratio": wall / total,
    }


@contextmanager
def isolated_environment() -> Iterator[Path]:
    """A temporary folder for DAGSTER_HOME (with the project's dagster.yaml), the warehouse and the
    MLflow store, set in the environment (restored after, MLflow's tracking URI too); the raw bars stay
    the project's. Step processes of the multiprocess executor keep Dagster's beta warnings to themselves."""
    previous_uri = mlflow.get_tracking_uri()
    with tempfile.TemporaryDirectory(prefix="ktrdr-bench-") as name:
        tmp = Path(name)
        (tmp / "dagster_home").mkdir()
        shutil.copy(PROJECT_INSTANCE_CONFIG, tmp / "dagster_home")
        env = {
            "DAGSTER_HOME": str(tmp / "dagster_home"),
            "KTRDR_WAREHOUSE_DIR": str(tmp / "warehouse"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
            "PYTHONWARNINGS": "ignore",
        }
        with mock.patch.dict(os.environ, env):
            try:
                yield tmp
            finally:
                mlflow.set_tracking_uri(previous_uri)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default=DEFAULT_SYMBOL)
    parser.add_argument("--assets", default=None, help="comma-separated asset keys (default: the whole job)")
    parser.add_argument("--no-multiprocess", action="store_true", help="skip the multiprocess comparison")
    args = parser.parse_args(argv)
    selection = [dg.AssetKey(name) for name in args.assets.split(",")] if args.assets else None
    executors = ["in_process"] if args.no_multiprocess else ["in_process", "multiprocess"]
    with isolated_environment() as tmp:
        from ktrdr_assets.paths import default_tracking_uri
        from ktrdr_assets.resources.tracking import EXPERIMENT_NAME, ensure_experiment

        ensure_experiment(EXPERIMENT_NAME, default_tracking_uri())
        strategy = write_fast_strategy(tmp / "fast_strategy.yaml")
        with dg.DagsterInstance.get() as instance:
            results = {e: timed_run(e, args.symbol, strategy, instance, selection) for e in executors}
    scope = f"assets {args.assets}" if selection else "whole job"
    print(f"materialize_symbol, {args.symbol}, {scope}, fast models")
    print(f"{'executor':<14}{'result':>9}{'steps':>7}{'wall (s)':>10}{'sum steps (s)':>15}{'wall/steps':>12}")
    for name, row in results.items():
        outcome = "success" if row["success"] else "FAILURE"
        times = f"{row['wall_s']:>10.2f}{row['steps_s']:>15.2f}{row['ratio']:>12.3f}"
        print(f"{name:<14}{outcome:>9}{row['steps']:>7}{times}")
    return results


if __name__ == "__main__":
    main()
