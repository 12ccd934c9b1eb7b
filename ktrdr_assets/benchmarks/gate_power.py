"""Power and false-deployment rate of the gates: the real evaluation (data stage, walk-forward of every
registered model type, gates, selection) on symbols whose answer is known.

    python -m ktrdr_assets.benchmarks.gate_power [--symbols 20] [--strengths 1 2 3] [--default-strength 2]
        [--bars 2500] [--models fast|shipped] [--jobs 2] [--seed 0] [--folds K] [--model-types ...]

Per symbol, daily bars from core/data/synthetic.py with a per-bar volatility drawn uniformly from
[--vol-low, --vol-high] (so the share of HOLD labels, and with it the majority baseline, varies from
symbol to symbol): `--symbols` random walks (no edge) and `--symbols` planted-edge series per strength.
Each symbol goes through the shipped strategy (its features, labels, walk-forward settings and gates;
models: the shipped ones, or the fast ones of benchmarks/fast_models.py with `--models fast`), and is
"deployed" when the selector picks any model. Printed: per strength the deployment rate with its 95 %
Wilson interval, the share of (symbol, model) pairs whose accuracy test alone was significant, and the
median out-of-fold accuracy and baseline. Goals: false deployment <= alpha (and never above 5 %) on the
random walks; power >= 90 % at the default strength. The figures are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def _strategy(models: str, folds: int | None = None):
    import yaml

    from ktrdr_assets.benchmarks.fast_models import FAST_MODELS
    from ktrdr_assets.core.config.loader import parse_strategy
    from ktrdr_assets.core.config.schema import _deep_merge
    from ktrdr_assets.paths import default_strategy_path

    path = default_strategy_path()
    raw = yaml.safe_load(path.read_text())
    if models == "fast":
        raw = _deep_merge(raw, {"models": FAST_MODELS})
    if folds is not None:
        raw = _deep_merge(raw, {"evaluation": {"folds": folds}})
    return parse_strategy(raw, str(path))


def evaluate_symbol(job: dict[str, Any]) -> dict[str, Any]:
    """One symbol end to end: bars -> data stage -> every model type's walk-forward and final fit -> gates
    -> selection. Returns what the table needs."""
    from ktrdr_assets.core.data.stage import run_data_stage
    from ktrdr_assets.core.data.synthetic import planted_edge_bars, random_walk_bars
    from ktrdr_assets.core.models.registry import model_specs
    from ktrdr_assets.core.models.training_runs import train_model
    from ktrdr_assets.core.selection.gates import evaluate_gates
    from ktrdr_assets.core.selection.selector import select_model

    strategy = _strategy(job["models"], job.get("folds"))
    specs = [spec for spec in model_specs() if not job.get("model_types") or spec.model_type in job["model_types"]]
    kind = "random walk" if job["strength"] == 0 else f"planted {job['strength']:g}"
    if job["strength"] == 0:
        bars = random_walk_bars(job["bars"], volatility=job["volatility"], seed=job["seed"])
    else:
        bars = planted_edge_bars(job["bars"], strength=job["strength"], volatility=job["volatility"], seed=job["seed"])
    started = time.perf_counter()
    stage = run_data_stage(bars, strategy)
    root = Path(tempfile.mkdtemp(prefix="ktrdr-gate-power-"))
    candidates, models = {}, []
    try:
        for spec in specs:
            record = train_model(
                spec.model_type,
                stage.splits,
                stage.augmented,
                strategy,
                symbol=job["name"],
                run_dir=root / spec.model_type,
                run_info={},
                features=stage.features,
                progress=lambda line: None,
            )
            result = record.result
            gates = {g.name: g.passed for g in evaluate_gates(result, strategy.gates, len(specs))}
            oof = result["evidence"]["oof"]
            models.append({"model": spec.model_type, "accuracy_gate": gates["accuracy"], **oof})
            candidates[spec.display_name] = dict(result, run_dir=record.run_dir, model_type=spec.model_type)
        selection = select_model(job["name"], candidates, strategy.gates, n_models=len(specs))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        **job,
        "kind": kind,
        "deployed": selection["selected_model"],
        "models": models,
        "seconds": time.perf_counter() - started,
    }


def _wilson(k: int, n: int) -> tuple[float, float]:
    from ktrdr_assets.core.selection.significance import wilson_interval

    return wilson_interval(k, n)


def table(results: list[dict[str, Any]], alpha: float, default_strength: float) -> str:
    from ktrdr_assets.core.util.markdown import markdown_table

    rows = []
    for strength in sorted({r["strength"] for r in results}):
        group = [r for r in results if r["strength"] == strength]
        deployed = sum(1 for r in group if r["deployed"])
        low, high = _wilson(deployed, len(group))
        pairs = [m for r in group for m in r["models"]]
        significant = sum(1 for m in pairs if m["p_value"] < alpha)
        accuracy_gate = sum(1 for m in pairs if m["accuracy_gate"])
        if strength == 0:
            label, goal = "random walk (no edge)", f"<= {alpha:.0%}, never > 5 %"
            met = deployed / len(group) <= alpha  # and so never above 5 %
        else:
            label = f"planted, strength {strength:g}" + (" (default)" if strength == default_strength else "")
            goal = ">= 90 %" if strength == default_strength else ""
            met = deployed / len(group) >= 0.9 if strength == default_strength else None
        rows.append(
            (
                label,
                len(group),
                f"{deployed} ({deployed / len(group):.0%})",
                f"[{low:.0%}, {high:.0%}]",
                f"{significant}/{len(pairs)}",
                f"{accuracy_gate}/{len(pairs)}",
                f"{statistics.median(m['accuracy'] for m in pairs):.3f}",
                f"{statistics.median(m['baseline'] for m in pairs):.3f}",
                goal,
                "" if met is None else ("met" if met else "NOT met"),
            )
        )
    header = [
        "symbols",
        "n",
        "deployed",
        "95 % CI",
        f"models p < {alpha:g}",
        "models passing accuracy gate",
        "median OOF acc",
        "median baseline",
        "goal",
        "",
    ]
    return markdown_table(header, rows, align="lrrrrrrrll")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20, help="symbols per group (no edge, each strength)")
    parser.add_argument("--strengths", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    parser.add_argument("--default-strength", type=float, default=2.0)
    parser.add_argument("--bars", type=int, default=2500)
    parser.add_argument("--vol-low", type=float, default=0.006)
    parser.add_argument("--vol-high", type=float, default=0.012)
    parser.add_argument("--models", choices=["fast", "shipped"], default="fast")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=None, help="walk-forward folds (default: the strategy's)")
    parser.add_argument("--model-types", nargs="+", default=None, help="default: every registered type")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    jobs = []
    for strength in [0.0, *args.strengths]:
        for i in range(args.symbols):
            jobs.append(
                {
                    "name": f"S{int(strength * 10):02d}N{i:02d}",
                    "strength": strength,
                    "volatility": float(rng.uniform(args.vol_low, args.vol_high)),
                    "seed": int(rng.integers(2**31 - 1)),
                    "bars": args.bars,
                    "models": args.models,
                    "folds": args.folds,
                    "model_types": args.model_types,
                }
            )
    started = time.perf_counter()
    results = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for result in pool.map(evaluate_symbol, jobs):
            results.append(result)
            best = max(result["models"], key=lambda m: m["accuracy"] - m["baseline"])
            print(
                f"{result['name']} {result['kind']:<12} vol {result['volatility']:.4f}: "
                f"{'DEPLOYED ' + result['deployed'] if result['deployed'] else 'not deployed':<26} best "
                f"{best['model']} {best['accuracy']:.3f} vs {best['baseline']:.3f} (p {best['p_value']:.2g}) "
                f"[{result['seconds']:.0f} s]",
                flush=True,
            )
    alpha = _strategy(args.models).gates.alpha
    print()
    print(table(results, alpha, args.default_strength))
    print(
        f"\n<!-- {len(results)} symbols of {args.bars} bars, {args.models} models, {args.jobs} processes, "
        f"{time.perf_counter() - started:.0f} s wall -->"
    )
    return results


if __name__ == "__main__":
    main()
