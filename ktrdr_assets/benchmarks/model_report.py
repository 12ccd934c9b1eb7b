"""Train the whole graph for every symbol with the shipped strategy, then the pooled models once over all
of them, and report per symbol and model (the pooled ones included): training time, epochs, train/val gap,
test accuracy, the test set's majority baseline, the gates passed and the selection; then the pooled
networks against the per-symbol models of their type.

    python -m ktrdr_assets.benchmarks.model_report [--symbols EURUSD AAPL MSFT]

Symbols default to every raw file in data/raw/ (the shipped ones and any dropped there). Runs in a
temporary DAGSTER_HOME / warehouse / MLflow store, so the project's own are untouched. The order is the
weekly retraining's: each symbol's `materialize_symbol`, then `train_pooled_models`, then each symbol's
`select_symbol` (the pooled models evaluated on it and competing in its selection).
"""

from __future__ import annotations

import argparse
import os
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", nargs="+", default=None, help="default: every raw file in data/raw/")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="ktrdr-model-report-"))
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["KTRDR_WAREHOUSE_DIR"] = str(home / "warehouse")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"

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

    symbols = args.symbols or sorted(discover_sources())
    pooled_types = {spec.model_type for spec in pooled_specs()}
    header = [
        "symbol",
        "model",
        "train s",
        "epochs",
        "gap",
        "test acc",
        "majority baseline",
        "gates passed",
        "selected",
    ]
    rows, walls, results = [], [], {}
    with dg.DagsterInstance.get() as instance:
        for symbol in symbols:
            started = time.perf_counter()
            defs.resolve_job_def(SYMBOL_JOB).execute_in_process(
                partition_key=symbol, instance=instance, raise_on_error=False
            )
            walls.append(f"<!-- {symbol}: whole graph {time.perf_counter() - started:.0f} s wall -->")
        started = time.perf_counter()
        defs.resolve_job_def(TRAIN_POOLED_JOB).execute_in_process(instance=instance, raise_on_error=False)
        walls.append(f"<!-- pooled models over {len(symbols)} symbols: {time.perf_counter() - started:.0f} s wall -->")
        for symbol in symbols:
            defs.resolve_job_def(SELECT_JOB).execute_in_process(
                partition_key=symbol, instance=instance, raise_on_error=False
            )
            gates = StrategyResource().for_symbol(symbol).gates
            selected = (read_asset_if_present("model_selection", symbol) or {}).get("selected_model")
            for spec in candidate_specs():
                record = read_asset_if_present(spec.asset_name, symbol)
                if record is None:
                    if spec.is_enabled(StrategyResource().load().models):
                        status = "not evaluated" if spec.model_type in pooled_types else "failed"
                        rows.append((symbol, spec.display_name, status, *[None] * 6))
                    continue
                result = results[symbol, spec.model_type] = record["result"]
                passed = [g.name for g in evaluate_gates(result, gates) if g.passed]
                rows.append(_row(symbol, result, passed, selected))
        pooled_summary = read_asset_if_present(POOLED_MODELS, None) or {}
    print(markdown_table(header, rows, align="llrrrrrll"))
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
