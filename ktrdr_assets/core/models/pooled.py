"""Pooled multi-symbol training (design note 003): one network of a poolable type trained on the training
rows of every symbol that has the same feature names, each row carrying its symbol's id through an
embedding (`pooled_net.PooledNet`), so that symbols with a few thousand bars share what they have in
common.

What stays per symbol: the splits and their purge gaps, the train-fitted scaler and the augmentation are
each symbol's own (its `temporal_splits` and `augmented_train_set`); the pooled network learns from each
symbol's fit set only (the augmented train set, or for a sequence type windows of the chronological train
part, never crossing a symbol or part boundary) and early-stops on the symbols' validation parts, like a
per-symbol model. No validation or test row of any symbol is a training sample; `PooledSet.rows` records
which rows were.

Evidence: with every symbol's features frame, `train_pooled` also runs the pooled walk-forward
(core/selection/pooled_walk_forward.py: calendar-aligned folds, one pooled network per fold) and saves each
symbol's out-of-fold predictions and evidence in the training folder.

Evaluation is per symbol, on that symbol's own parts: `evaluate_pooled` runs
`training_runs.train_model` for the pooled model type (`pooled_<type>`), which binds the trained network
to the symbol's id (`pooled_net.bind_pooled_model`), with that symbol's pooled walk-forward evidence, so
results, gates and selection are the per-symbol models' own. A symbol without pooled evidence (not in the
pooled training, or tested in too few calendar folds) is judged without it: the gates reject it
(gates.NO_EVIDENCE).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.splits import TemporalSplits
from ktrdr_assets.core.models.base import TORCH_MODEL_FILE, FitContext, check_trainable
from ktrdr_assets.core.models.persistence import save_json
from ktrdr_assets.core.models.pooled_net import (
    POOLED_DIR_KEY,
    SUMMARY_FILE,
    UNKNOWN_ASSET_ID,
    PooledModelSpec,
    read_summary,
)
from ktrdr_assets.core.models.registry import pooled_spec
from ktrdr_assets.core.models.run_folder import RunFolder
from ktrdr_assets.core.models.run_record import TrainingRecord
from ktrdr_assets.core.models.training_runs import (
    _epoch_logger,
    config_fingerprint,
    prepare_arrays,
    splits_fingerprint,
    train_model,
)
from ktrdr_assets.core.training.tracking import NullTracker, Tracker
from ktrdr_assets.core.util.atomic import write_bytes_atomic

if TYPE_CHECKING:  # imported where a pooled set is built or trained: the code location loads without torch
    import torch
from ktrdr_assets.core.util.jsonsafe import to_jsonable
from ktrdr_assets.core.util.plots import learning_curves_png

log = logging.getLogger(__name__)

#: The folder under model_runs/ holding pooled trainings: `_pooled/<type>/<stamp>_<run id>/` (never a
#: symbol: a symbol starts with a letter or digit).
POOLED_RUNS = "_pooled"


@dataclass(frozen=True)
class SymbolData:
    """One symbol's inputs, as its own data stage produced them."""

    splits: TemporalSplits
    augmented: pd.DataFrame
    features: pd.DataFrame | None = None  # the unscaled features frame: the pooled walk-forward's input


@dataclass
class PooledSet:
    """Samples of every pooled symbol: rows (n, F + 1) or windows (n, lookback, F + 1), asset id last."""

    X: torch.Tensor
    y: torch.Tensor
    rows: dict[str, pd.Index]  # per symbol: the timestamps of every feature row its samples read (NaT: synthetic)
    samples: dict[str, int]


def pooled_run_folder(warehouse: Path, model_type: str, run_id: str) -> RunFolder:
    """A fresh folder path (not created) for one pooled training of `model_type`."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return RunFolder(RunFolder.runs_root(warehouse) / POOLED_RUNS / model_type / f"{stamp}_{run_id[:8]}")


def compatible_symbols(data: Mapping[str, SymbolData]) -> tuple[list[str], list[str], dict[str, str]]:
    """(the symbols pooled, their feature names, {symbol left out: why}).

    The pooled feature set is the one most symbols have (a tie goes to the alphabetically first symbol's);
    a symbol whose feature names differ in any way (names or order) is left out, with the reason.
    """
    if not data:
        return [], [], {}
    counts = Counter(tuple(data[s].splits.feature_names) for s in sorted(data))
    names = list(max(counts, key=lambda key: counts[key]))  # max keeps the first of equal counts
    pooled, excluded = [], {}
    for symbol in sorted(data):
        own = data[symbol].splits.feature_names
        if own == names:
            pooled.append(symbol)
            continue
        missing, extra = sorted(set(names) - set(own)), sorted(set(own) - set(names))
        detail = f"missing {missing[:3]}" if missing else f"extra {extra[:3]}" if extra else "another column order"
        excluded[symbol] = f"feature names differ from the pooled set ({len(own)} vs {len(names)}; {detail})"
    return pooled, names, excluded


def asset_id_map(symbols: list[str]) -> dict[str, int]:
    """{symbol: id}, ids from 1 in alphabetical order; id UNKNOWN_ASSET_ID (0) is the unknown asset."""
    return {symbol: i for i, symbol in enumerate(sorted(symbols), start=UNKNOWN_ASSET_ID + 1)}


def pooled_sets(
    spec: PooledModelSpec, lookback: int, data: Mapping[str, SymbolData], ids: Mapping[str, int]
) -> tuple[PooledSet, PooledSet]:
    """(training set, validation set) of the pooled symbols: each symbol's fit set (its augmented train set,
    or its chronological train part for a sequence type) and its validation part, each with its id."""
    import torch

    from ktrdr_assets.core.models.pooled_torch import pooled_samples

    sets: dict[str, list] = {"train": [], "validation": []}
    rows: dict[str, dict[str, pd.Index]] = {"train": {}, "validation": {}}
    for symbol in sorted(ids):
        splits, augmented = data[symbol].splits, data[symbol].augmented
        arrays = prepare_arrays(spec, splits, augmented)
        fit_index = splits.train.index if spec.uses_sequences else augmented.index
        for part, (X, y), index in (
            ("train", (arrays.fit_X, arrays.fit_y), fit_index),
            ("validation", arrays.parts["validation"], splits.validation.index),
        ):
            sets[part].append((symbol, *pooled_samples(spec.uses_sequences, X, y, lookback, ids[symbol])))
            rows[part][symbol] = index
    out = []
    for part in ("train", "validation"):
        out.append(
            PooledSet(
                X=torch.cat([X for _, X, _ in sets[part]]),
                y=torch.cat([y for _, _, y in sets[part]]),
                rows=rows[part],
                samples={symbol: len(y) for symbol, _, y in sets[part]},
            )
        )
    return out[0], out[1]


def _iso(index: pd.Index) -> tuple[str | None, str | None]:
    stamps = index.dropna()
    return (stamps.min().isoformat(), stamps.max().isoformat()) if len(stamps) else (None, None)


def skipped(model_type: str, reason: str, excluded: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"model_type": model_type, "status": "skipped", "reason": reason, "excluded": dict(excluded or {})}


def fit_torch(*args: Any, **kwargs: Any) -> Any:
    """`torch_fit.fit_torch`, imported when a pooled net trains (the code location loads without torch)."""
    from ktrdr_assets.core.models.torch_fit import fit_torch as fit

    return fit(*args, **kwargs)


def train_pooled(
    model_type: str,
    data: Mapping[str, SymbolData],
    strategy: StrategyConfig,
    *,
    run_dir: Path,
    run_info: dict[str, Any],
    strategy_source: str = "<strategy>",
    tracker: Tracker | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the pooled network of `model_type` on every compatible symbol of `data` with the shared torch
    loop; save it in `run_dir` and return its summary (also `run_dir/pooled.json`).

    `strategy` is the base strategy (no symbol's overrides): its `models.<type>`, `models.pooled` and seed.
    Returns a 'skipped' summary (nothing written) when fewer than `models.pooled.min_symbols` symbols are
    compatible. With the symbols' features the pooled walk-forward follows (its evidence per symbol saved
    under `run_dir/walk_forward/`). Raises StrategyError for a bad config and ModelTrainingError when
    training fails.
    """
    from ktrdr_assets.core.models.pooled_torch import build_pooled_net

    spec = pooled_spec(model_type)
    tracker = tracker or NullTracker()
    config = spec.parse_config(strategy.models, strategy_source)
    symbols, names, excluded = compatible_symbols(data)
    minimum = strategy.models.pooled.min_symbols
    if len(symbols) < minimum:
        reason = f"{len(symbols)} compatible symbols, models.pooled.min_symbols is {minimum}"
        return skipped(model_type, reason, excluded)
    ids = asset_id_map(symbols)
    lookback = config.lookback if spec.uses_sequences else 1
    train, validation = pooled_sets(spec, lookback, data, ids)
    check_trainable(train.y.numpy(), spec.display_name)
    folder = RunFolder(Path(run_dir))
    folder.path.mkdir(parents=True, exist_ok=True)
    seed = strategy.seed
    info = {**run_info, "symbol": "pooled", "model_type": spec.model_type, "config": config.model_dump(mode="json")}
    tracker.log_params({"model_type": spec.model_type, "seed": seed, "symbols": ",".join(symbols), **info["config"]})
    context = FitContext(
        seed=seed,
        analytics=strategy.analytics,
        run_info=info,
        run_dir=folder.path,
        on_epoch_end=_epoch_logger(spec, config, strategy, "pooled", tracker, progress or log.info),
    )
    net = build_pooled_net(spec.base, config, len(names), len(ids))
    started = time.perf_counter()
    train_data, validation_data = (train.X, train.y), (validation.X, validation.y)
    fitted = fit_torch(net, train_data, validation_data, config, context, name=spec.display_name, lookback=lookback)
    duration = time.perf_counter() - started
    fitted.save(folder.file(TORCH_MODEL_FILE))
    epoch_seconds = [row["epoch_duration_seconds"] for row in fitted.history]
    summary = {
        "model_type": model_type,
        "pooled_type": spec.model_type,
        "model_name": spec.display_name,
        "status": "trained",
        "run_dir": str(folder.path),
        "asset_ids": ids,
        "unknown_asset_id": UNKNOWN_ASSET_ID,
        "symbols": {
            symbol: {
                "asset_id": ids[symbol],
                "splits_fingerprint": splits_fingerprint(data[symbol].splits),
                "train_samples": train.samples[symbol],
                "validation_samples": validation.samples[symbol],
                "train_rows": dict(zip(("first", "last"), _iso(train.rows[symbol]), strict=True)),
            }
            for symbol in symbols
        },
        "excluded": excluded,
        "feature_names": names,
        "lookback": lookback,
        "config": info["config"],
        "seed": seed,
        "config_fingerprint": config_fingerprint(config, seed, strategy.evaluation),
        "details": {k: fitted.details[k] for k in ("device", "device_name", "stop_reason", "best_epoch", "epochs_run")},
        "duration_s": duration,
        "mean_epoch_seconds": float(np.mean(epoch_seconds)) if epoch_seconds else None,
        "mlflow_run_id": tracker.run_id,
        "history": fitted.history,
    }
    pooled_data = {symbol: data[symbol] for symbol in symbols}
    summary["evidence"] = _pooled_evidence(spec, config, pooled_data, names, ids, strategy, folder.path, info, progress)
    save_json(folder.file(SUMMARY_FILE), summary)
    png = learning_curves_png(fitted.history, f"pooled {spec.display_name} ({len(symbols)} symbols)")
    write_bytes_atomic(folder.file(RunFolder.LEARNING_CURVES), png)
    best = fitted.history[(fitted.details["best_epoch"] or len(fitted.history)) - 1]
    tracker.log_metrics(
        {"best_val_accuracy": best["val_acc"], "best_val_loss": best["val_loss"], "training_duration_seconds": duration}
    )
    tracker.log_artifacts(folder.path)
    return to_jsonable(summary)


def _pooled_evidence(
    spec: PooledModelSpec,
    config: Any,
    data: Mapping[str, SymbolData],
    names: list[str],
    ids: Mapping[str, int],
    strategy: StrategyConfig,
    run_dir: Path,
    info: dict[str, Any],
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    """Run and save the pooled walk-forward of the pooled symbols (`data`) that have their features; its
    summary."""
    from ktrdr_assets.core.selection.pooled_walk_forward import (
        SymbolSeries,
        pooled_walk_forward,
        save_pooled_evidence,
    )

    without = {s: "its features frame was not given to the pooled training" for s in data if data[s].features is None}
    series = {s: SymbolSeries.of(d.features, d.splits, strategy) for s, d in data.items() if d.features is not None}
    if not series:
        return {"without_evidence": without}
    evidence = pooled_walk_forward(
        spec,
        config,
        series,
        names,
        {s: ids[s] for s in series},
        strategy,
        run_info=info,
        progress=progress or log.info,
    )
    save_pooled_evidence(run_dir, evidence)
    summary = evidence.summary()
    summary["without_evidence"] = {**without, **summary["without_evidence"]}
    return summary


def evaluation_status(
    summary: Mapping[str, Any] | None, symbol: str, splits: TemporalSplits, current_config_fingerprint: str | None
) -> str | None:
    """Why `symbol` cannot be scored by the pooled model of `summary` now (None: it can).

    A pooled symbol must be scored on exactly the splits the network was trained with (its rows in other
    splits could be validation or test rows now); a symbol that was not pooled is scored through the
    unknown-asset row, which no row of it ever trained.
    """
    if not summary or summary.get("status") != "trained":
        reason = (summary or {}).get("reason") or (summary or {}).get("error") or "no pooled model trained yet"
        return f"no pooled model: {reason}"
    if summary["config_fingerprint"] != current_config_fingerprint:
        return "the pooled model was trained with another config than the strategy's current one"
    if splits.feature_names != summary["feature_names"]:
        return f"left out: feature names differ from the pooled model's ({len(splits.feature_names)} vs " + (
            f"{len(summary['feature_names'])})"
        )
    pooled = summary["symbols"].get(symbol)
    if pooled is not None and pooled["splits_fingerprint"] != splits_fingerprint(splits):
        return f"the pooled model was trained on other data of {symbol} than the current temporal_splits"
    return None


def pooled_strategy(symbol_strategy: StrategyConfig, base: StrategyConfig) -> StrategyConfig:
    """`symbol_strategy` with the base strategy's models, seed and walk-forward settings: the pooled
    network's own (its evidence was produced under them)."""
    return symbol_strategy.model_copy(update={"models": base.models, "seed": base.seed, "evaluation": base.evaluation})


def evaluate_pooled(
    summary: Mapping[str, Any],
    splits: TemporalSplits,
    augmented: pd.DataFrame,
    strategy: StrategyConfig,
    *,
    symbol: str,
    run_dir: Path,
    run_info: dict[str, Any],
    strategy_source: str = "<strategy>",
    tracker: Tracker | None = None,
    progress: Callable[[str], None] | None = None,
    features: pd.DataFrame | None = None,
) -> TrainingRecord:
    """The pooled model of `summary` evaluated on `symbol`'s own parts, saved in `run_dir` as a run of the
    pooled model type (`strategy`: the symbol's strategy with the pooled models, seed and evaluation), with
    `symbol`'s pooled walk-forward evidence when the pooled training produced some for it."""
    from ktrdr_assets.core.selection.pooled_walk_forward import load_pooled_evidence

    return train_model(
        summary["pooled_type"],
        splits,
        augmented,
        strategy,
        symbol=symbol,
        run_dir=run_dir,
        run_info={**run_info, POOLED_DIR_KEY: summary["run_dir"]},
        strategy_source=strategy_source,
        tracker=tracker,
        progress=progress,
        features=features,
        evidence_result=load_pooled_evidence(Path(summary["run_dir"]), symbol),
    )


def evidence_status(summary: Mapping[str, Any], symbol: str) -> str:
    """What the pooled walk-forward says of `symbol`: 'walk-forward evidence' or why it has none."""
    evidence = summary.get("evidence") or {}
    if symbol in evidence.get("with_evidence", ()):
        return "pooled walk-forward evidence"
    if symbol not in summary.get("symbols", {}):
        return "no evidence: not in the pooled training (scored through the unknown-asset row)"
    why = (evidence.get("without_evidence") or {}).get(symbol, "the pooled training ran no walk-forward")
    return f"no evidence: {why}"


__all__ = [
    "POOLED_RUNS",
    "PooledSet",
    "SymbolData",
    "asset_id_map",
    "compatible_symbols",
    "evaluate_pooled",
    "evaluation_status",
    "evidence_status",
    "pooled_sets",
    "pooled_strategy",
    "read_summary",
    "train_pooled",
]
