"""Train the whole graph for the shipped symbols with the shipped strategy and report, per model, its
walk-forward evidence and verdict: out-of-fold accuracy, both naive baselines, the binomial test's p-value
(n and effective n), the mean fold gap, the fold stability, the untouched holdout accuracy, the gates it
failed, and whether it was deployed; then the time each symbol took.

    python -m ktrdr_assets.benchmarks.model_report [--symbols EURUSD AAPL MSFT] [--strategy PATH]

Symbols default to every raw file in data/raw/ (the shipped ones and any dropped there). Runs in a
temporary DAGSTER_HOME / warehouse / MLflow store, so the project's own are untouched. The order is the
weekly retraining's: each symbol's `materialize_symbol`, then `train_pooled_models`, then each symbol's
`select_symbol` (the pooled models evaluated on it and competing in its selection).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _row(symbol: str, result: dict[str, Any], passed: list[str], selected: str | None) -> tuple:
    history = result["history"]
    pooled = result.get("pooled")
    seconds = pooled["training_seconds"] if pooled else result["training_duration_seconds"]
    return (
        symbol,
        result["model_name"],
        f"{seconds:.1f}" + (" (all symbols)" if pooled else ""),
        result.get("epochs_run", ""),
        f"{history['train_val_gap']:.3f}",
        f"{history['test_accuracy']:.3f}",
        f"{result['test_majority_baseline']['accuracy']:.3f}",
        ", ".join(passed) or "none",
        "yes" if selected == result["model_name"] else "",
    )


def _pooling_rows(results: dict[tuple[str, str], dict[str, Any]], symbols: list[str]) -> list[tuple]:
    """Per pooled type and symbol: pooled vs per-symbol test accuracy; per type: training time."""
    from ktrdr_assets.core.models.registry import pooled_specs

    rows = []
    for spec in pooled_specs():
        base = spec.base.model_type
        pooled = {s: results.get((s, spec.model_type)) for s in symbols}
        alone = {s: results.get((s, base)) for s in symbols}
        if not any(pooled.values()):
            continue
        pooled_seconds = next(r["pooled"]["training_seconds"] for r in pooled.values() if r)
        alone_seconds = sum(r["training_duration_seconds"] for r in alone.values() if r)
        for symbol in symbols:
            p, a = pooled[symbol], alone[symbol]
            if p is None or a is None:
                continue
            pa, aa = p["history"]["test_accuracy"], a["history"]["test_accuracy"]
            rows.append(
                (
                    spec.display_name,
                    symbol,
                    p["pooled"]["asset_embedding"],
                    f"{pa:.3f}",
                    f"{aa:.3f}",
                    f"{pa - aa:+.3f}",
                    f"{p['test_majority_baseline']['accuracy']:.3f}",
                    f"{pooled_seconds:.1f} vs {alone_seconds:.1f}",
                )
            )
    return rows


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
    import torch

    from ktrdr_assets.assets.pooled import POOLED_MODELS
    from ktrdr_assets.core.models.registry import candidate_specs, pooled_specs
    from ktrdr_assets.core.selection.gates import evaluate_gates
    from ktrdr_assets.core.util.markdown import markdown_table
    from ktrdr_assets.definitions import defs
    from ktrdr_assets.io import read_asset_if_present
    from ktrdr_assets.jobs.pooled import TRAIN_POOLED_JOB
    from ktrdr_assets.jobs.retraining import SELECT_JOB, SYMBOL_JOB
    from ktrdr_assets.partitions import discover_sources
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
        "failed gates",
        "verdict",
        "train s",
    ]
    rows, walls = [], []
    with dg.DagsterInstance.get() as instance:
        for symbol in symbols:
            started = time.perf_counter()
            job.execute_in_process(partition_key=symbol, instance=instance, run_config=run_config, raise_on_error=False)
            wall = time.perf_counter() - started
            gates = resource.for_symbol(symbol).gates
            selected = read_asset("model_selection", symbol).get("selected_model")
            for spec in model_specs():
                try:
                    result = read_asset(spec.asset_name, symbol)["result"]
                except FileNotFoundError:
                    rows.append((symbol, spec.display_name, *["failed"] * 12))
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
                        ", ".join(failed) or "none",
                        "deployed" if selected == result["model_name"] else ("passed" if not failed else "rejected"),
                        f"{result['training_cost']['total_seconds']:.0f}",
                    )
                )
            walls.append(f"<!-- {symbol}: whole graph {wall:.0f} s wall -->")
    print(markdown_table(header, rows, align="llrrrrrrrrrlll"))
    print("\n".join(walls))
    left_out = {s for summary in pooled_summary.values() for s in summary.get("excluded", {})}
    if left_out:
        print(f"\nLeft out of the pooled training: {sorted(left_out)} (reasons in pooled_models' metadata)")
    header = ["pooled model", "symbol", "embedding", "pooled test acc", "per-symbol test acc", "difference"]
    header += ["majority baseline", "training s: pooled vs sum per-symbol"]
    print("\nPooled networks against the per-symbol model of their type:\n")
    print(markdown_table(header, _pooling_rows(results, symbols), align="lllrrrrr"))
    if not torch.cuda.is_available():
        print("\nCUDA: not available on this machine; every model trained on the CPU.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
