"""Dagster overhead: one symbol's `materialize_symbol` run, wall time over the sum of its steps' compute times.

Run from the repository root:  .venv/bin/python -m benchmarks.dagster_overhead [--symbol MSFT]

Everything happens in a temporary DAGSTER_HOME (a persistent SQLite instance, as `ktrdr-run` uses),
warehouse and MLflow store, set before ktrdr_assets is imported; the raw bars are the project's
data/raw, read only. Strategy: the shipped one with the small models of the test suite. The MLflow
store is created before timing (a deployed store exists already). 'wall' is from launching the run
to its return; a step's compute time is its STEP_START to its STEP_SUCCESS / STEP_FAILURE in the
run's event log. The ratio wall / sum(steps) is what orchestration costs on top of the work: plan,
resources, event and IO bookkeeping between steps, and for the multiprocess executor (the comparison,
`max_concurrent: 2`) one fresh Python process per step that imports the code location before its
STEP_START; there two steps may overlap, which pulls the ratio down.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import dagster as dg
import yaml

DEFAULT_SYMBOL = "MSFT"
# The small models of ktrdr_assets_tests/conftest.py (FAST_MODELS): a whole symbol trains in seconds.
FAST_MODELS = {
    "random_forest": {"n_estimators": 25, "cross_validation": {"folds": 3}},
    "xgboost": {"n_estimators": 25, "early_stopping_rounds": 5, "cross_validation": {"folds": 3}},
    "neural_network": {"epochs": 5, "hidden_layers": [32, 16], "patience": 3},
    "lstm": {"epochs": 3, "hidden_size": 16, "patience": 2, "batch_size": 64},
    "permutation_repeats": 1,
}
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
    from ktrdr_assets.jobs import SYMBOL_JOB

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


def run_once(executor: str, symbol: str, assets: list[str] | None, strategy: Path, instance) -> dict:
    """One timed run on `executor` ('in_process' or 'multiprocess'): wall, step times, ratio, success."""
    from ktrdr_assets.definitions import defs
    from ktrdr_assets.jobs import SYMBOL_JOB

    run_config: dict = {"resources": {"strategy": {"config": {"path": str(strategy)}}}}
    selection = [dg.AssetKey(name) for name in assets] if assets else None
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
    return {
        "success": result.success,
        "steps": len(steps),
        "wall_s": wall,
        "steps_s": sum(steps.values()),
        "ratio": wall / sum(steps.values()),
    }


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default=DEFAULT_SYMBOL)
    parser.add_argument("--assets", default=None, help="comma-separated asset keys (default: the whole job)")
    parser.add_argument("--no-multiprocess", action="store_true", help="skip the multiprocess comparison")
    args = parser.parse_args(argv)
    assets = args.assets.split(",") if args.assets else None
    executors = ["in_process"] if args.no_multiprocess else ["in_process", "multiprocess"]
    with tempfile.TemporaryDirectory(prefix="ktrdr-bench-") as tmp:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        env = {
            "DAGSTER_HOME": str(home),
            "KTRDR_WAREHOUSE_DIR": str(Path(tmp) / "warehouse"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{Path(tmp) / 'mlflow.db'}",
        }
        with mock.patch.dict(os.environ, env):
            from ktrdr_assets.resources import EXPERIMENT_NAME, default_tracking_uri, ensure_experiment

            ensure_experiment(EXPERIMENT_NAME, default_tracking_uri())
            strategy = write_fast_strategy(Path(tmp) / "fast_strategy.yaml")
            with dg.DagsterInstance.get() as instance:
                results = {name: run_once(name, args.symbol, assets, strategy, instance) for name in executors}
    print(f"materialize_symbol for {args.symbol}{f' (assets {args.assets})' if assets else ''}, fast models")
    print(f"{'executor':<14}{'result':>9}{'steps':>7}{'wall (s)':>10}{'sum steps (s)':>15}{'wall/steps':>12}")
    for name, row in results.items():
        outcome = "success" if row["success"] else "FAILURE"
        print(
            f"{name:<14}{outcome:>9}{row['steps']:>7}{row['wall_s']:>10.2f}{row['steps_s']:>15.2f}{row['ratio']:>12.3f}"
        )
    return results


if __name__ == "__main__":
    main()
