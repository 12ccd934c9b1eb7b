"""What the warehouse holds for a symbol, as `ktrdr-mcp` answers it: its model selection (with each model's gate
values beside the selector's reasons), its backtest (the strategy's metrics beside buy-and-hold) and the
deployment manifest.

Symbols are validated as partition keys are before any path is built from them. A symbol with no raw bar
file is unknown; a known one whose asset was never materialized is NotFound with what to run; a file that
cannot be read is StoreUnavailable.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ktrdr_assets.cli.query_errors import NotFound, StoreUnavailable, one_line
from ktrdr_assets.cli.training_queries import validate_symbol_key
from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.models.registry import candidate_specs
from ktrdr_assets.core.selection.candidates import competing_models
from ktrdr_assets.core.selection.gates import evaluate_gates
from ktrdr_assets.core.util.jsonsafe import to_jsonable
from ktrdr_assets.io import read_asset
from ktrdr_assets.partitions import discover_sources
from ktrdr_assets.paths import default_strategy_path, warehouse_dir


def _read(asset: str, symbol: str | None) -> Any:
    """The stored asset (symbol already validated); NotFound says whether the symbol or the asset is missing."""
    try:
        return read_asset(asset, symbol)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as err:
        where = f"{asset} of {symbol or 'all symbols'} under {warehouse_dir()}"
        raise StoreUnavailable(f"{where} cannot be read: {one_line(err)}") from None
    if symbol is None:
        raise NotFound(f"no {asset} under {warehouse_dir()} yet: materialize it first (job build_manifest)")
    known = sorted(discover_sources())
    if symbol not in known:
        raise NotFound(f"unknown symbol {symbol!r}: known symbols are {', '.join(known) or 'none'}")
    raise NotFound(f"no {asset} for {symbol} under {warehouse_dir()} yet: materialize it first (materialize_symbol)")


def _gates_of(record: dict[str, Any], gates: Any, n_models: int) -> list[dict[str, Any]] | str:
    try:
        return [asdict(gate) for gate in evaluate_gates(record["result"], gates, n_models)]
    except (KeyError, TypeError, ValueError) as err:
        return f"gates cannot be evaluated: {one_line(err)}"


def model_selection(symbol: str, strategy_path: Path | None = None) -> dict[str, Any]:
    """The symbol's selection, and per model type its gate values (measured value, threshold, baseline)
    under the strategy's gates, the selector's reasons and the MLflow run that trained it."""
    symbol = validate_symbol_key(symbol)
    selection = _read("model_selection", symbol)
    path = strategy_path or default_strategy_path()
    try:
        base = load_strategy(path)
        config = base.for_symbol(symbol)
        gates, competing = config.gates, competing_models(config, base)
    except StrategyError as err:
        raise StoreUnavailable(f"strategy {path}: {one_line(err)}") from None
    chosen = selection.get("selected_model")
    models: dict[str, Any] = {}
    for spec in candidate_specs():
        model_type = spec.model_type
        try:
            record = read_asset(spec.asset_name, symbol)
        except FileNotFoundError:
            models[model_type] = {"materialized": False}
            continue
        name = record.get("model_name", model_type)
        reasons = selection.get("rejected", {}).get(name, [])
        models[model_type] = {
            "model_name": name,
            "verdict": "selected" if name == chosen else ("rejected" if reasons else "passed"),
            "reasons": reasons,
            "gates": _gates_of(record, gates, competing),
            "mlflow_run_id": record.get("mlflow_run_id"),
            "run_dir": record.get("run_dir"),
        }
    return to_jsonable(
        {"symbol": symbol, "selection": selection, "models": models, "gates": gates.model_dump(), "strategy": path}
    )


def backtest(symbol: str) -> dict[str, Any]:
    """The symbol's backtest: every candidate over the untouched holdout (and its out-of-fold figures), with
    `side_by_side`: per candidate, each holdout metric for the model and for buy-and-hold."""
    symbol = validate_symbol_key(symbol)
    report = _read("backtest", symbol)
    hold = (report.get("buy_and_hold") or {}).get("holdout") or {}
    side_by_side = {}
    for name, candidate in (report.get("candidates") or {}).items():
        model = (candidate.get("holdout") or {}).get("metrics") or {}
        keys = {**model, **hold}
        side_by_side[name] = {key: {"strategy": model.get(key), "buy_and_hold": hold.get(key)} for key in keys}
    return to_jsonable({**report, "side_by_side": side_by_side})


def deployment_manifest() -> dict[str, Any]:
    """The cross-symbol deployment manifest as last built."""
    return to_jsonable(_read("deployment_manifest", None))
