"""Train the whole graph for the shipped symbols with the shipped strategy and report, per model, its
walk-forward evidence and verdict: out-of-fold accuracy, both naive baselines, the binomial test's p-value
(n and effective n), the mean fold gap, the fold stability, the untouched holdout accuracy, the gates it
failed, and whether it was deployed; then the time each symbol took.

    python -m ktrdr_assets.benchmarks.model_report [--symbols EURUSD AAPL MSFT] [--strategy PATH]

Runs in a temporary DAGSTER_HOME / warehouse / MLflow store, so the project's own are untouched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def _fmt(value, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", nargs="+", default=["EURUSD", "AAPL", "MSFT"])
    parser.add_argument("--strategy", default=None, help="strategy YAML (default: the shipped one)")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="ktrdr-model-report-"))
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["KTRDR_WAREHOUSE_DIR"] = str(home / "warehouse")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    from ktrdr_assets.paths import PROJECT_ROOT

    instance_config = PROJECT_ROOT / "dagster_home" / "dagster.yaml"
    if instance_config.is_file():  # the project's instance settings (telemetry off, concurrency pools)
        shutil.copy(instance_config, home / "dagster.yaml")

    import dagster as dg

    from ktrdr_assets.core.models.registry import model_specs
    from ktrdr_assets.core.selection.gates import evaluate_gates
    from ktrdr_assets.core.util.markdown import markdown_table
    from ktrdr_assets.definitions import defs
    from ktrdr_assets.io import read_asset
    from ktrdr_assets.jobs.retraining import SYMBOL_JOB
    from ktrdr_assets.resources import StrategyResource

    job = defs.resolve_job_def(SYMBOL_JOB)
    run_config = {"loggers": {"progress": {}}}
    resource = StrategyResource()
    if args.strategy:
        run_config["resources"] = {"strategy": {"config": {"path": args.strategy}}}
        resource = StrategyResource(path=args.strategy)
    header = [
        "symbol",
        "model",
        "OOF acc",
        "majority",
        "persistence",
        "p-value",
        "n (eff.)",
        "mean gap",
        "folds > base",
        "fold std",
        "holdout acc",
        "holdout majority",
        "failed gates",
        "verdict",
        "train s",
    ]
    rows, walls = [], []
    with dg.DagsterInstance.get() as instance:
        for symbol in args.symbols:
            started = time.perf_counter()
            job.execute_in_process(partition_key=symbol, instance=instance, run_config=run_config, raise_on_error=False)
            wall = time.perf_counter() - started
            gates = resource.for_symbol(symbol).gates
            selected = read_asset("model_selection", symbol).get("selected_model")
            for spec in model_specs():
                try:
                    result = read_asset(spec.asset_name, symbol)["result"]
                except FileNotFoundError:
                    rows.append((symbol, spec.display_name, *["failed"] * 13))
                    continue
                evidence = result.get("evidence") or {}
                oof = evidence.get("oof", {})
                failed = [g.name for g in evaluate_gates(result, gates) if not g.passed]
                rows.append(
                    (
                        symbol,
                        result["model_name"],
                        _fmt(oof.get("accuracy")),
                        _fmt(oof.get("majority_accuracy")),
                        _fmt(oof.get("persistence_accuracy")),
                        _fmt(oof.get("p_value"), ".2g"),
                        f"{oof.get('n')} ({oof.get('n_effective')})",
                        _fmt(evidence.get("mean_gap"), "+.3f"),
                        _fmt(evidence.get("share_folds_above_baseline"), ".0%"),
                        _fmt(evidence.get("fold_accuracy_std")),
                        _fmt((result.get("holdout") or {}).get("accuracy")),
                        _fmt((result.get("holdout") or {}).get("majority_accuracy")),
                        ", ".join(failed) or "none",
                        "deployed" if selected == result["model_name"] else ("passed" if not failed else "rejected"),
                        f"{result['training_cost']['total_seconds']:.0f}",
                    )
                )
            walls.append(f"<!-- {symbol}: whole graph {wall:.0f} s wall -->")
    print(markdown_table(header, rows, align="llrrrrrrrrrrlll"))
    print("\n".join(walls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
