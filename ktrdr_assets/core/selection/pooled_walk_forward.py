"""Walk-forward evidence of a pooled network (design note 003): the per-symbol walk-forward of
core/selection/walk_forward.py, with one pooled network per fold trained on every symbol at once.

Why the folds are cut in calendar time: a pooled fold trains on several symbols together. Were each
symbol's folds cut by its own row fractions (as the per-symbol walk-forward does), a fold testing AAPL on
2008 could train on MSFT's bars of 2008 or later, and learn the market's common move on the very days it is
judged on. So the fold edges are timestamps shared by every symbol:

    T_0 ............. T_1 ......... T_2 ... T_(K-1) ........ (end)
    [initial]  [test block 1]  [test block 2] ... [test block K]

- The edges are the `initial_train_fraction` and the fold quantiles of the pooled evidence timeline, each
  symbol weighing the same whatever its bar count (an hourly symbol does not push the edges into its own
  history). Each symbol contributes only rows of its own evidence region (rows before its holdout).
- For fold k and symbol s: the test block is s's rows with T_(k-1) <= t < T_k; its training rows end
  `purge` of s's bars before the block (expanding from s's first row, or rolling over s's own initial
  window), the last `validation_fraction` of them are its validation part, another purge gap before that.
  So no symbol's training row, nor the label it looks ahead to, reaches the test period of any symbol.
- The network of fold k is fitted on the fit rows of every symbol taking part in fold k (scaler and
  augmentation per symbol, fitted on that symbol's fit rows only; epochs capped at `max_epochs_per_fold`),
  early-stopping on their validation parts together. Each symbol's decision rule is chosen on its own
  validation part and applied to its own test block through its own asset id.
- A symbol takes part in fold k when each of its parts there is large enough (walk_forward.fold_shortfall;
  a sequence type also needs `lookback` rows in its fit and validation parts). A symbol with its history
  elsewhere in time takes part in fewer folds; with fewer than `models.pooled.min_evidence_folds` tested
  folds it has no evidence (and the gates reject its pooled candidate with the reason).

Each symbol's evidence has the per-symbol walk-forward's structure (walk_forward.walk_forward_evidence),
so the same gates judge it, plus `scheme.pooled`: the edges and which symbols each fold trained on.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.models.base import FitContext
from ktrdr_assets.core.models.persistence import save_json
from ktrdr_assets.core.selection.walk_forward import (
    Fold,
    FoldData,
    SymbolSeries,
    WalkForwardResult,
    fold_between,
    fold_config,
    fold_line,
    fold_shortfall,
    prepare_fold,
    score_fold,
    walk_forward_evidence,
)

if TYPE_CHECKING:
    from ktrdr_assets.core.models.pooled_net import PooledModelSpec

#: Where a pooled training folder keeps each symbol's evidence: walk_forward/<symbol>/{oof.parquet, evidence.json}.
EVIDENCE_DIR = "walk_forward"
OOF_FILE = "oof.parquet"
EVIDENCE_FILE = "evidence.json"


@dataclass
class PooledEvidence:
    """Every pooled symbol's walk-forward result, or why it has none."""

    results: dict[str, WalkForwardResult]
    missing: dict[str, str]
    edges: list[str]
    fold_symbols: dict[int, list[str]]
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "edges": self.edges,
            "fold_symbols": {str(k): v for k, v in self.fold_symbols.items()},
            "with_evidence": sorted(self.results),
            "without_evidence": self.missing,
            "fits": sum(1 for members in self.fold_symbols.values() if members),
            "seconds": self.seconds,
        }


def calendar_edges(indexes: Mapping[str, pd.DatetimeIndex], initial_fraction: float, folds: int) -> list[pd.Timestamp]:
    """T_0..T_(folds-1): the first timestamps with `initial_fraction`, then each fold quantile up to 1, of the
    pooled timeline's mass before them (every row weighing 1 / its symbol's row count / the symbols)."""
    if not indexes or any(len(index) == 0 for index in indexes.values()):
        raise ValueError("calendar_edges: every symbol needs at least one evidence row")
    first, *others = indexes.values()
    stamps = first.append(list(others)) if others else first
    weights = np.concatenate([np.full(len(index), 1.0 / len(index)) for index in indexes.values()])
    order = np.argsort(stamps.asi8, kind="stable")
    before = (np.cumsum(weights[order]) - weights[order]) / len(indexes)  # the mass strictly before each row
    quantiles = np.linspace(initial_fraction, 1.0, folds + 1)[:-1]
    positions = np.minimum(np.searchsorted(before, quantiles - 1e-12, side="left"), len(before) - 1)
    return list(stamps[order][positions])


def plan_symbol_folds(
    index: pd.DatetimeIndex, edges: list[pd.Timestamp], strategy: StrategyConfig, purge: int, min_rows: int
) -> tuple[dict[int, Fold], dict[int, str]]:
    """({fold number: this symbol's rows in it}, {fold number it sits out: why}) for one symbol's evidence
    rows `index` and the shared `edges`; `min_rows`: the least fit / validation rows (a sequence's lookback)."""
    evaluation = strategy.evaluation
    bounds = [*index.searchsorted(pd.DatetimeIndex(edges)), len(index)]
    window_rows = int(round(len(index) * evaluation.initial_train_fraction))
    planned, skipped = {}, {}
    for number in range(1, len(edges) + 1):
        fold = fold_between(number, int(bounds[number - 1]), int(bounds[number]), window_rows, evaluation, purge)
        rows = fold.rows()
        shortfall = fold_shortfall(fold)
        if shortfall is None and min(rows["fit"], rows["validation"]) < min_rows:
            shortfall = f"fold {number} has {rows['fit']} fit and {rows['validation']} validation rows (< {min_rows})"
        if shortfall:
            skipped[number] = shortfall
        else:
            planned[number] = fold
    return planned, skipped


def pooled_walk_forward(
    spec: PooledModelSpec,
    config: Any,
    series: Mapping[str, SymbolSeries],
    feature_names: list[str],
    ids: Mapping[str, int],
    strategy: StrategyConfig,
    *,
    run_info: dict[str, Any] | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> PooledEvidence:
    """The evidence of the pooled model type `spec` for every symbol of `ids`; see the module docstring.
    `series[s]`: symbol s's features and evidence region; `config`: the pooled config."""
    from ktrdr_assets.core.models.pooled_torch import build_pooled_net, pooled_predictor, pooled_samples
    from ktrdr_assets.core.models.torch_fit import fit_torch

    evaluation = strategy.evaluation
    capped = fold_config(config, evaluation.max_epochs_per_fold)
    lookback = capped.lookback if spec.uses_sequences else 1
    symbols = sorted(ids)
    edges = calendar_edges({s: series[s].index for s in symbols}, evaluation.initial_train_fraction, evaluation.folds)
    plans = {s: plan_symbol_folds(series[s].index, edges, strategy, series[s].purge, max(lookback, 1)) for s in symbols}
    frames: dict[str, list[pd.DataFrame]] = {s: [] for s in symbols}
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in symbols}
    fold_symbols: dict[int, list[str]] = {}
    started = time.perf_counter()
    name = f"pooled {spec.base.display_name}"
    for number in range(1, evaluation.folds + 1):
        members = [s for s in symbols if number in plans[s][0]]
        fold_symbols[number] = members
        if not members:
            progress(f"{name} walk-forward fold {number}/{evaluation.folds}: no symbol has enough rows, skipped")
            continue
        fold_started = time.perf_counter()
        data: dict[str, FoldData] = {
            s: prepare_fold(series[s].features, plans[s][0][number], feature_names, strategy, spec.uses_sequences)
            for s in members
        }
        train = [pooled_samples(spec.uses_sequences, d.fit_X, d.fit_y, lookback, ids[s]) for s, d in data.items()]
        validation = [
            pooled_samples(spec.uses_sequences, *d.parts["validation"], lookback, ids[s]) for s, d in data.items()
        ]
        net = build_pooled_net(spec.base, capped, len(feature_names), len(ids))
        context = FitContext(
            seed=strategy.seed,
            analytics=AnalyticsConfig(enabled=False),
            run_info={**(run_info or {}), "symbol": "pooled", "walk_forward_fold": number},
            run_dir=Path("."),
            inner_cv=False,
        )
        try:
            fitted = fit_torch(net, _cat(train), _cat(validation), capped, context, name=name, lookback=lookback)
        except Exception as err:
            raise type(err)(f"{name} walk-forward fold {number}/{evaluation.folds}: {err}") from err
        seconds = time.perf_counter() - fold_started
        progress(
            f"{name} walk-forward fold {number}/{evaluation.folds}: trained on {len(members)} symbols "
            f"({', '.join(members)}), {sum(len(y) for _, y in train)} samples, "
            f"{fitted.details.get('epochs_run')} epochs ({seconds:.1f} s)"
        )
        for s in members:
            own = dataclasses.replace(fitted, predict_proba_rows=pooled_predictor(fitted.model, lookback, ids[s]))
            frame, record = score_fold(own, data[s], series[s].features, feature_names, series[s].lookahead, seconds)
            record["symbols_in_fold"] = members
            frames[s].append(frame)
            records[s].append(record)
            progress(fold_line(f"{s} {name}", record, evaluation.folds))
    total = time.perf_counter() - started
    minimum = strategy.models.pooled.min_evidence_folds
    results, missing = {}, {}
    edge_text = [edge.isoformat() for edge in edges]
    for s in symbols:
        if len(records[s]) < minimum:
            sat_out = "; ".join(plans[s][1].values()) or "-"
            missing[s] = (
                f"tested in {len(records[s])} of {evaluation.folds} calendar folds of the pooled walk-forward "
                f"(models.pooled.min_evidence_folds is {minimum}): {sat_out}"
            )
            continue
        oof = pd.concat(frames[s])
        evidence = walk_forward_evidence(
            oof, records[s], evaluation, series[s].purge, series[s].lookahead, series[s].evidence_rows, total, capped
        )
        evidence["scheme"]["pooled"] = {
            "calendar_edges": edge_text,
            "folds_tested": [r["fold"] for r in records[s]],
            "folds_sat_out": {str(k): why for k, why in plans[s][1].items()},
        }
        results[s] = WalkForwardResult(oof=oof, evidence=evidence)
    return PooledEvidence(results, missing, edge_text, fold_symbols, total)


def _cat(samples: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    import torch

    return torch.cat([X for X, _ in samples]), torch.cat([y for _, y in samples])


def save_pooled_evidence(run_dir: Path, evidence: PooledEvidence) -> None:
    """Each symbol's out-of-fold rows and evidence under `run_dir/walk_forward/<symbol>/`."""
    for symbol, result in evidence.results.items():
        folder = Path(run_dir) / EVIDENCE_DIR / symbol
        folder.mkdir(parents=True, exist_ok=True)
        result.oof.to_parquet(folder / OOF_FILE)
        save_json(folder / EVIDENCE_FILE, result.evidence)


def load_pooled_evidence(run_dir: Path, symbol: str) -> WalkForwardResult | None:
    """`symbol`'s pooled walk-forward result saved in `run_dir`, or None when it has none."""
    folder = Path(run_dir) / EVIDENCE_DIR / symbol
    if not (folder / EVIDENCE_FILE).is_file():
        return None
    evidence = json.loads((folder / EVIDENCE_FILE).read_text(encoding="utf-8"))
    return WalkForwardResult(oof=pd.read_parquet(folder / OOF_FILE), evidence=evidence)
