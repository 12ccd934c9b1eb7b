"""Train the whole graph for the shipped symbols with the shipped strategy and report, per model:
training time, train/val gap, test accuracy, the test set's majority baseline and the gates.

    python -m ktrdr_assets.benchmarks.model_report [--symbols EURUSD AAPL MSFT]

Runs in a temporary DAGSTER_HOME / warehouse / MLflow store, so the project's own are untouched.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", nargs="+", default=["EURUSD", "AAPL", "MSFT"])
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="ktrdr-model-report-"))
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["KTRDR_WAREHOUSE_DIR"] = str(home / "warehouse")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"

    import dagster as dg

    from ktrdr_assets.core.models.registry import model_specs
    from ktrdr_assets.core.selection.gates import evaluate_gates
    from ktrdr_assets.core.util.markdown import markdown_table
    from ktrdr_assets.definitions import defs
    from ktrdr_assets.io import read_asset
    from ktrdr_assets.jobs.retraining import SYMBOL_JOB
    from ktrdr_assets.resources import StrategyResource
    from ktrdr_assets.symbol_registry import register_symbols

    job = defs.resolve_job_def(SYMBOL_JOB)
    header = ["symbol", "model", "train s", "gap", "test acc", "majority baseline", "gates passed", "selected"]
    rows, walls = [], []
    with dg.DagsterInstance.get() as instance:
        register_symbols(instance, args.symbols)
        for symbol in args.symbols:
            started = time.perf_counter()
            job.execute_in_process(partition_key=symbol, instance=instance, raise_on_error=False)
            wall = time.perf_counter() - started
            gates = StrategyResource().for_symbol(symbol).gates
            selected = read_asset("model_selection", symbol).get("selected_model")
            for spec in model_specs():
                try:
                    result = read_asset(spec.asset_name, symbol)["result"]
                except FileNotFoundError:
                    rows.append((symbol, spec.display_name, "failed", None, None, None, None, None))
                    continue
                history = result["history"]
                passed = [g.name for g in evaluate_gates(result, gates) if g.passed]
                rows.append(
                    (
                        symbol,
                        result["model_name"],
                        f"{result['training_duration_seconds']:.1f}",
                        f"{history['train_val_gap']:.3f}",
                        f"{history['test_accuracy']:.3f}",
                        f"{result['test_majority_baseline']['accuracy']:.3f}",
                        ", ".join(passed) or "none",
                        "yes" if selected == result["model_name"] else "",
                    )
                )
            walls.append(f"<!-- {symbol}: whole graph {wall:.0f} s wall -->")
    print(markdown_table(header, rows, align="llrrrrll"))
    print("\n".join(walls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
