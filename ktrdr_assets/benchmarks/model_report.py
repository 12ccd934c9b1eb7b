"""Train the whole graph for every symbol with the shipped strategy, then the pooled models once over all
of them, and report per symbol and model (the pooled ones included) its walk-forward evidence and verdict:
out-of-fold accuracy, both naive baselines, the binomial test's p-value (n and effective n), the mean fold
gap, the fold stability, the untouched holdout accuracy, the gates it failed, and whether it was deployed;
then the time each symbol took, and the pooled networks against the per-symbol models of their type.

    python -m ktrdr_assets.benchmarks.model_report [--symbols EURUSD AAPL MSFT] [--strategy PATH]

Symbols default to every raw file in data/raw/ (the shipped ones and any dropped there). Runs in a
temporary DAGSTER_HOME / warehouse / MLflow store, so the project's own are untouched. The order is the
weekly retraining's: each symbol's `materialize_symbol`, then `train_pooled_models`, then each symbol's
`select_symbol` (the pooled models evaluated on it and competing in its selection, judged on their pooled
walk-forward evidence: core/selection/pooled_walk_forward.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _fmt(value, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _holdout_accuracy(result: dict[str, Any]) -> float | None:
    return (result.get("holdout") or {}).get("accuracy")


def _oof_accuracy(result: dict[str, Any]) -> float | None:
    return ((result.get("evidence") or {}).get("oof") or {}).get("accuracy")


def _difference(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a - b:+.3f}"


def _pooling_rows(results: dict[tuple[str, str], dict[str, Any]], symbols: list[str]) -> list[tuple]:
    """Per pooled type and symbol: pooled vs per-symbol out-of-fold and holdout accuracy; per type: the
    training time (final fit and walk-forward) of the one pooled network vs the per-symbol models'."""
    from ktrdr_assets.core.models.registry import pooled_specs

    rows = []
    for spec in pooled_specs():
        base = spec.base.model_type
        pooled = {s: results.get((s, spec.model_type)) for s in symbols}
        alone = {s: results.get((s, base)) for s in symbols}
        if not any(pooled.values()):
            continue
        first = next(r for r in pooled.values() if r)
        pooled_seconds = first["pooled"]["training_seconds"] + (first["pooled"].get("walk_forward_seconds") or 0.0)
        alone_seconds = sum(r["training_cost"]["total_seconds"] for r in alone.values() if r)
        for symbol in symbols:
            p, a = pooled[symbol], alone[symbol]
            if p is None or a is None:
                continue
            pa, aa = _holdout_accuracy(p), _holdout_accuracy(a)
            po, ao = _oof_accuracy(p), _oof_accuracy(a)
            rows.append(
                (
                    spec.display_name,
                    symbol,
                    p["pooled"]["asset_embedding"],
                    _fmt(po),
                    _fmt(ao),
                    _difference(po, ao),
                    _fmt(pa),
                    _fmt(aa),
                    _difference(pa, aa),
                    _fmt((p.get("holdout") or {}).get("baseline")),
                    f"{pooled_seconds:.1f} vs {alone_seconds:.1f}",
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", nargs="+", default=None, help="default: every raw file in data/raw/")
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
    from ktrdr_assets.core.selection.candidates import competing_models, disabled_types
    from ktrdr_assets.core.selection.gates import evaluate_gates
    from ktrdr_assets.core.util.markdown import markdown_table
    from ktrdr_assets.definitions import defs
    from ktrdr_assets.io import read_asset_if_present
    from ktrdr_assets.jobs.pooled import TRAIN_POOLED_JOB
    from ktrdr_assets.jobs.retraining import SELECT_JOB, SYMBOL_JOB
    from ktrdr_assets.partitions import discover_sources
    from ktrdr_assets.resources import StrategyResource
    from ktrdr_assets.symbol_registry import register_symbols

    symbols = args.symbols or sorted(discover_sources())
    pooled_types = {spec.model_type for spec in pooled_specs()}
    run_config: dict[str, Any] = {"loggers": {"progress": {}}}
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
    rows, walls, results = [], [], {}
    with dg.DagsterInstance.get() as instance:
        register_symbols(instance, symbols)  # the symbols as partitions of this instance

        def execute(job: str, partition_key: str | None = None) -> float:
            started = time.perf_counter()
            defs.resolve_job_def(job).execute_in_process(
                partition_key=partition_key, instance=instance, run_config=run_config, raise_on_error=False
            )
            return time.perf_counter() - started

        for symbol in symbols:
            walls.append(f"<!-- {symbol}: whole graph {execute(SYMBOL_JOB, symbol):.0f} s wall -->")
        wall = execute(TRAIN_POOLED_JOB)
        walls.append(f"<!-- pooled models over {len(symbols)} symbols: {wall:.0f} s wall -->")
        for symbol in symbols:
            execute(SELECT_JOB, symbol)
            base = resource.load()
            config = base.for_symbol(symbol)
            disabled, competing = disabled_types(config, base), competing_models(config, base)
            selected = (read_asset_if_present("model_selection", symbol) or {}).get("selected_model")
            for spec in candidate_specs():
                record = read_asset_if_present(spec.asset_name, symbol)
                if record is None:
                    if spec.model_type not in disabled:
                        status = "not evaluated" if spec.model_type in pooled_types else "failed"
                        rows.append((symbol, spec.display_name, *[status] * 13))
                    continue
                result = results[symbol, spec.model_type] = record["result"]
                evidence = result.get("evidence") or {}
                oof = evidence.get("oof", {})
                failed = [g.name for g in evaluate_gates(result, config.gates, competing) if not g.passed]
                pooled = result.get("pooled")
                if pooled:  # the one network's final fit and pooled walk-forward, over every symbol
                    seconds = pooled["training_seconds"] + (pooled.get("walk_forward_seconds") or 0.0)
                else:
                    seconds = result["training_cost"]["total_seconds"]
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
                        _fmt(_holdout_accuracy(result)),
                        _fmt((result.get("holdout") or {}).get("majority_accuracy")),
                        ", ".join(failed) or "none",
                        "deployed" if selected == result["model_name"] else ("passed" if not failed else "rejected"),
                        f"{seconds:.0f}" + (" (all symbols)" if pooled else ""),
                    )
                )
        pooled_summary = read_asset_if_present(POOLED_MODELS, None) or {}
    print(markdown_table(header, rows, align="llrrrrrrrrrrllr"))
    print("\n".join(walls))
    left_out = {s for summary in pooled_summary.values() for s in summary.get("excluded", {})}
    if left_out:
        print(f"\nLeft out of the pooled training: {sorted(left_out)} (reasons in pooled_models' metadata)")
    header = ["pooled model", "symbol", "embedding", "pooled OOF acc", "per-symbol OOF acc", "difference"]
    header += ["pooled holdout acc", "per-symbol holdout acc", "difference"]
    header += ["holdout baseline", "training s: pooled vs sum per-symbol"]
    print("\nPooled networks against the per-symbol model of their type:\n")
    print(markdown_table(header, _pooling_rows(results, symbols), align="lllrrrrrrrr"))
    if not torch.cuda.is_available():
        print("\nCUDA: not available on this machine; every model trained on the CPU.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
