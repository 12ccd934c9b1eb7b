"""Training time per epoch of every torch model type on real symbols, and of the pooled networks against
the sum of the per-symbol ones.

    python -m ktrdr_assets.benchmarks.epoch_times [--symbols EURUSD AAPL] [--pooled-symbols EURUSD AAPL MSFT]
        [--types neural_network lstm gru attention_lstm cnn_lstm] [--pooled-types neural_network lstm] [--epochs 4]

Each symbol's data stage runs through Dagster (the real assets, in a temporary DAGSTER_HOME / warehouse /
MLflow store); then every type trains `--epochs` epochs with the shipped strategy's settings (early
stopping off) on the CPU threads its config says (1 by default), and the pooled network of each pooled
type the same number of epochs on every pooled symbol. An epoch's time is the loop's own
`epoch_duration_seconds` (shuffle, train, validate); the figure is the fastest epoch after the first
(warm-up), so that other processes on a shared machine disturb it least.
Where CUDA is present, one epoch of each sequence type is also timed on it; where it is not, it says so.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_TYPES = ("neural_network", "lstm", "gru", "attention_lstm", "cnn_lstm")


def _best_epoch(history: list[dict[str, Any]]) -> float:
    """The fastest epoch after the first (warm-up): on a shared machine, the least disturbed one."""
    seconds = [row["epoch_duration_seconds"] for row in history]
    return float(np.min(seconds[1:] if len(seconds) > 1 else seconds))


def _fixed_epochs(section: dict[str, Any], epochs: int, device: str = "auto") -> dict[str, Any]:
    return {**section, "epochs": epochs, "patience": epochs + 1, "max_minutes": 120.0, "device": device}


def per_symbol_epoch(model_type: str, symbol: str, epochs: int, run_dir: Path, device: str = "auto") -> dict:
    """(mean s / epoch, samples / epoch, device) of `model_type` trained `epochs` epochs on `symbol`."""
    import pandas as pd

    from ktrdr_assets.core.models.training_runs import train_model
    from ktrdr_assets.io import read_asset
    from ktrdr_assets.resources import StrategyResource

    strategy = StrategyResource().for_symbol(symbol)
    section = _fixed_epochs(strategy.models.settings(model_type), epochs, device)
    strategy = strategy.model_copy(update={"models": strategy.models.with_section(model_type, section)})
    splits, augmented = read_asset("temporal_splits", symbol), read_asset("augmented_train_set", symbol)
    record = train_model(model_type, splits, augmented, strategy, symbol=symbol, run_dir=run_dir, run_info={})
    history = pd.read_csv(run_dir / "metrics.csv").to_dict("records")
    return {
        "s_per_epoch": _best_epoch(history),
        "samples": int(history[0]["total_samples_processed"]),
        "device": record.device,
    }


def pooled_epoch(model_type: str, symbols: list[str], epochs: int, run_dir: Path) -> dict:
    from ktrdr_assets.core.models.pooled import SymbolData, train_pooled
    from ktrdr_assets.io import read_asset
    from ktrdr_assets.resources import StrategyResource

    base = StrategyResource().load()
    pooled = base.models.pooled
    overrides = {**pooled.overrides, model_type: _fixed_epochs(pooled.overrides.get(model_type, {}), epochs)}
    models = base.models.model_copy(update={"pooled": pooled.model_copy(update={"overrides": overrides})})
    base = base.model_copy(update={"models": models})
    data = {s: SymbolData(read_asset("temporal_splits", s), read_asset("augmented_train_set", s)) for s in symbols}
    summary = train_pooled(model_type, data, base, run_dir=run_dir, run_info={"run_id": "epoch-times"})
    samples = sum(entry["train_samples"] for entry in summary["symbols"].values())
    return {"s_per_epoch": _best_epoch(summary["history"]), "samples": samples, "symbols": list(summary["symbols"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", nargs="+", default=["EURUSD", "AAPL"])
    parser.add_argument("--pooled-symbols", nargs="+", default=["EURUSD", "AAPL", "MSFT"])
    parser.add_argument("--types", nargs="+", default=list(DEFAULT_TYPES))
    parser.add_argument("--pooled-types", nargs="+", default=["neural_network", "lstm"])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="ktrdr-epoch-times-"))
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["KTRDR_WAREHOUSE_DIR"] = str(home / "warehouse")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"

    import dagster as dg
    import torch

    from ktrdr_assets.core.models.registry import get_spec
    from ktrdr_assets.core.util.markdown import markdown_table
    from ktrdr_assets.definitions import defs
    from ktrdr_assets.jobs.retraining import SYMBOL_JOB
    from ktrdr_assets.resources import StrategyResource

    data_assets = ["ohlcv", "indicators", "fuzzy_memberships", "zigzag_labels", "features", "temporal_splits"]
    data_assets.append("augmented_train_set")
    symbols = list(dict.fromkeys([*args.symbols, *args.pooled_symbols]))
    with dg.DagsterInstance.get() as instance:
        for symbol in symbols:
            defs.resolve_job_def(SYMBOL_JOB).execute_in_process(
                partition_key=symbol, instance=instance, asset_selection=[dg.AssetKey(a) for a in data_assets]
            )

    times = {(t, s): per_symbol_epoch(t, s, args.epochs, home / "runs" / t / s) for t in args.types for s in symbols}
    header = ["type", *(f"{s} s/epoch (samples)" for s in args.symbols)]
    rows = [
        (
            get_spec(t).display_name,
            *(f"{times[t, s]['s_per_epoch']:.3f} ({times[t, s]['samples']})" for s in args.symbols),
        )
        for t in args.types
    ]
    threads = get_spec(args.types[0]).parse_config(StrategyResource().load().models).cpu_threads
    print(f"Per-type epoch time, CPU, {threads} torch thread(s), best of epochs 2..{args.epochs}:\n")
    print(markdown_table(header, rows, align="l" + "r" * len(args.symbols)))

    pooled_rows = []
    for model_type in args.pooled_types:
        pooled = pooled_epoch(model_type, args.pooled_symbols, args.epochs, home / "pooled" / model_type)
        alone = sum(times[model_type, s]["s_per_epoch"] for s in pooled["symbols"])
        alone_samples = sum(times[model_type, s]["samples"] for s in pooled["symbols"])
        pooled_rows.append(
            (
                f"Pooled{get_spec(model_type).display_name}",
                ", ".join(pooled["symbols"]),
                f"{pooled['s_per_epoch']:.3f} ({pooled['samples']})",
                f"{alone:.3f} ({alone_samples})",
                f"{pooled['s_per_epoch'] / alone:.2f}",
            )
        )
    header = ["pooled type", "symbols", "pooled s/epoch (samples)", "sum of per-symbol s/epoch (samples)", "ratio"]
    print("\nOne pooled epoch against one epoch of each per-symbol model:\n")
    print(markdown_table(header, pooled_rows, align="llrrr"))

    if torch.cuda.is_available():
        rows = []
        for model_type in [t for t in args.types if get_spec(t).uses_sequences]:
            gpu = per_symbol_epoch(model_type, args.symbols[0], 2, home / "cuda" / model_type, device="cuda")
            cpu = times[model_type, args.symbols[0]]["s_per_epoch"]
            rows.append(
                (
                    get_spec(model_type).display_name,
                    f"{cpu:.3f}",
                    f"{gpu['s_per_epoch']:.3f}",
                    f"{cpu / gpu['s_per_epoch']:.1f}",
                )
            )
        print(f"\nOne epoch on {torch.cuda.get_device_name(0)} against the CPU ({args.symbols[0]}):\n")
        print(markdown_table(["type", "CPU s/epoch", "CUDA s/epoch", "speed-up"], rows, align="lrrr"))
    else:
        print("\nCUDA: not available on this machine; no GPU epoch was timed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
