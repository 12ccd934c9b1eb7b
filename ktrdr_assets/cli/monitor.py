"""`ktrdr-monitor` and `ktrdr-analyze`: follow and judge model trainings from the MLflow tracking store.

Each model training of a Dagster run is one MLflow run nested under that run's parent run and tagged
symbol, model_type, dagster_run_id, partition and strategy (`resources.nested_training_run`), whose
per-epoch metrics (`core/training/trends.LIVE_METRICS`: losses,
accuracies, learning rate and loss trend) reach the store moments after each epoch ends. Both commands
pick runs the same way:

    --run-id ID                     that MLflow run
    --dagster-run ID                the training runs of that Dagster run (--model-type: only that one)
    --symbol SYM / --model-type T   the latest training run with those tags (either or both)

(experiment and HPO trainings are top-level runs: follow those by --run-id)
in the store of `--tracking-uri` (default: MLFLOW_TRACKING_URI, else the SQLite store under DAGSTER_HOME,
as the platform resolves it).

`ktrdr-monitor` polls the store every `--interval` seconds and prints each new epoch once, as one line
(`--json`: one JSON object per line, with an "event": run | waiting | epoch | end | timeout), until every
followed run is FINISHED, FAILED or KILLED; with `--dagster-run` it also picks up training runs that start
later, and waits for more while the Dagster instance under DAGSTER_HOME says that run is still going.
An epoch is printed once all its metrics are in (the keys of the epoch before it; the four losses and
accuracies for the first: the tracker may write an epoch in two batches), or when a later epoch or the
run's end shows that nothing more is coming.

`ktrdr-analyze` reads each selected run's per-epoch history (running or finished) and prints the loss
trend, its % change, best epoch, epochs since improvement, overfitting/plateau flags and a
recommendation (`core/training/trends.loss_trend`; rules from `--strategy`'s `analytics:` section,
else the defaults).

Exit codes: 0 done; 1 a run FAILED or was KILLED (monitor), or a run has no epochs yet (analyze);
2 no such run / store / strategy file, or bad arguments; 124 `--timeout` reached (monitor).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.models.registry import model_types
from ktrdr_assets.core.training.trends import LIVE_METRICS, loss_trend
from ktrdr_assets.core.util.jsonsafe import dumps
from ktrdr_assets.paths import dagster_home, default_tracking_uri

EPOCH_COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc")
TERMINAL = frozenset({"FINISHED", "FAILED", "KILLED"})
EXIT_OK, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_TIMEOUT = 0, 1, 2, 124


class RunNotFound(LookupError):
    """The selection matches no run (or the store does not exist); the message says what was looked for."""


@dataclass(frozen=True)
class Selection:
    run_id: str | None = None
    dagster_run: str | None = None
    symbol: str | None = None
    model_type: str | None = None

    def describe(self) -> str:
        if self.run_id:
            return f"MLflow run {self.run_id}"
        return "training runs tagged " + ", ".join(f"{k}={v}" for k, v in self.tags().items())

    def tags(self) -> dict[str, str]:
        """The run tags that the selection asks for (resources.nested_training_run sets them)."""
        wanted = {"dagster_run_id": self.dagster_run, "symbol": self.symbol, "model_type": self.model_type}
        return {key: value for key, value in wanted.items() if value}


# --------------------------------------------------------------------------- the store
def open_store(tracking_uri: str) -> Any:
    """An MlflowClient on an existing store (a missing SQLite file is RunNotFound, never created)."""
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise RunNotFound(f"no MLflow store at {path}")
    return MlflowClient(tracking_uri)


def _quoted(name: str, value: str) -> str:
    if "'" in value or '"' in value:
        raise RunNotFound(f"tag {name}={value!r}: quotes are not allowed")
    return f"'{value}'"


def find_runs(client: Any, selection: Selection) -> list[Any]:
    """The MLflow runs of `selection` (see the module doc); [] when none match."""
    from mlflow.exceptions import MlflowException

    if selection.run_id:
        try:
            return [client.get_run(selection.run_id)]
        except MlflowException:
            return []
    query = " and ".join(f"tags.{key} = {_quoted(key, value)}" for key, value in selection.tags().items())
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    runs = client.search_runs(experiments, query, order_by=["attributes.start_time DESC"])
    # model trainings nested under a Dagster run's parent: not that parent, nor top-level experiment/HPO runs
    runs = [run for run in runs if {"mlflow.parentRunId", "model_type"} <= run.data.tags.keys()]
    return sorted(runs, key=lambda run: run.info.start_time) if selection.dagster_run else runs[:1]


def epoch_table(client: Any, run_id: str, keys: Sequence[str]) -> dict[int, dict[str, float]]:
    """{epoch: {key: value, "_logged_ms": latest timestamp}} of a run's per-epoch metrics `keys`."""
    table: dict[int, dict[str, float]] = {}
    for key in keys:
        for metric in client.get_metric_history(run_id, key):
            row = table.setdefault(int(metric.step), {"_logged_ms": 0})
            row[key] = metric.value
            row["_logged_ms"] = max(row["_logged_ms"], metric.timestamp)
    return table


def _complete(table: dict[int, dict[str, float]], epoch: int) -> bool:
    """Whether the latest epoch has all its metrics: the keys of the epoch before it (the tracker writes
    epochs in order, but may split one over two writes), or the four losses/accuracies for the first."""
    before = [e for e in table if e < epoch]
    expected = set(table[max(before)]) if before else {*EPOCH_COLUMNS, "_logged_ms"}
    return expected <= set(table[epoch])


def _label(run: Any) -> str:
    tags = run.data.tags
    return f"{tags.get('symbol', '?')}/{tags.get('model_type', '?')}"


def _identity(run: Any) -> dict[str, Any]:
    tags = run.data.tags
    return {"run_id": run.info.run_id, "symbol": tags.get("symbol"), "model_type": tags.get("model_type")}


def _dagster_run_finished(run_id: str) -> bool | None:
    """Whether the Dagster run has finished, per the instance under DAGSTER_HOME (None: unknown there)."""
    home = dagster_home()
    if not home.is_dir():
        return None
    import dagster as dg

    dagster_log = logging.getLogger("dagster")
    level = dagster_log.level
    dagster_log.setLevel(logging.ERROR)  # not "no dagster.yaml found, defaulting to ...": fine for reading
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run = instance.get_run_by_id(run_id)
    finally:
        dagster_log.setLevel(level)
    return None if run is None else run.is_finished


# --------------------------------------------------------------------------- ktrdr-monitor
@dataclass
class _Followed:
    run: Any
    last_epoch: int = 0
    epochs: int = 0
    said_waiting: bool = False
    status: str | None = None


@dataclass
class Monitor:
    """Follows the runs of one selection; `emit(text_line, json_object)` prints one event."""

    client: Any
    selection: Selection
    emit: Callable[[str, dict[str, Any]], None]
    followed: dict[str, _Followed] = field(default_factory=dict)

    def discover(self) -> None:
        for run in find_runs(self.client, self.selection):
            if run.info.run_id not in self.followed:
                self.followed[run.info.run_id] = _Followed(run)
                self.emit(
                    f"following {_label(run)} run {run.info.run_id} ({run.info.status})",
                    {"event": "run", **_identity(run), "status": run.info.status},
                )

    def poll(self, followed: _Followed) -> None:
        """Print the run's new epochs; its end once it is terminal (status read before the metrics, so
        every epoch logged before the end is seen)."""
        run_id = followed.run.info.run_id
        status = self.client.get_run(run_id).info.status
        table = epoch_table(self.client, run_id, LIVE_METRICS)
        terminal = status in TERMINAL
        new = sorted(epoch for epoch in table if epoch > followed.last_epoch)
        for epoch in new:
            if epoch == new[-1] and not terminal and not _complete(table, epoch):
                break  # the rest of this epoch is still on its way
            self._emit_epoch(followed.run, epoch, table[epoch])
            followed.last_epoch = epoch
            followed.epochs += 1
        if not table and not followed.said_waiting and not terminal:
            followed.said_waiting = True
            event = {"event": "waiting", **_identity(followed.run), "message": "no metrics yet"}
            self.emit(f"{_label(followed.run)} waiting: no metrics yet", event)
        if terminal:
            followed.status = status
            self.emit(
                f"{_label(followed.run)} run {run_id}: {status} after {followed.epochs} epochs",
                {"event": "end", **_identity(followed.run), "status": status, "epochs": followed.epochs},
            )

    def _emit_epoch(self, run: Any, epoch: int, values: dict[str, float]) -> None:
        metrics = {key: values[key] for key in LIVE_METRICS if key in values}
        text = f"{_label(run)} epoch {epoch}: " + " ".join(
            f"{key}={metrics[key]:.4f}" for key in EPOCH_COLUMNS if key in metrics
        )
        if "best_epoch" in metrics and "epochs_since_improvement" in metrics:
            text += f" best_epoch={metrics['best_epoch']:.0f} ({metrics['epochs_since_improvement']:.0f} ago)"
        text += "".join(f" [{flag}]" for flag in ("overfitting", "plateaued") if metrics.get(f"is_{flag}"))
        logged = datetime.fromtimestamp(values["_logged_ms"] / 1000, UTC)
        self.emit(text, {"event": "epoch", **_identity(run), "epoch": epoch, **metrics, "logged_at": logged})

    def waiting_for_more(self) -> bool:
        """With --dagster-run: whether training runs may still start (that Dagster run is still going)."""
        if not self.selection.dagster_run:
            return False
        finished = _dagster_run_finished(self.selection.dagster_run)
        return finished is False

    def run(self, interval: float, timeout: float | None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.discover()
        if not self.followed and not self.waiting_for_more():
            raise RunNotFound(f"no {self.selection.describe()}")
        said_pending = False
        while True:
            if self.selection.dagster_run:
                self.discover()
            for followed in self.followed.values():
                if followed.status is None:
                    self.poll(followed)
            open_runs = [f for f in self.followed.values() if f.status is None]
            if not open_runs:
                if not self.waiting_for_more():
                    failed = any(f.status != "FINISHED" for f in self.followed.values())
                    return EXIT_FAILED if failed else EXIT_OK
                if not said_pending:
                    said_pending = True
                    self.emit(
                        f"waiting: dagster run {self.selection.dagster_run} is still going",
                        {"event": "waiting", "dagster_run_id": self.selection.dagster_run},
                    )
            if deadline is not None and time.monotonic() >= deadline:
                self.emit(
                    f"timeout: gave up after {timeout:g} s; still running: "
                    + (", ".join(f.run.info.run_id for f in open_runs) or "(waiting for new runs)"),
                    {"event": "timeout", "running": [f.run.info.run_id for f in open_runs]},
                )
                return EXIT_TIMEOUT
            time.sleep(interval)


# --------------------------------------------------------------------------- ktrdr-analyze
def analyze_run(client: Any, run: Any, config: AnalyticsConfig) -> dict[str, Any]:
    """loss_trend over the run's per-epoch history, with the run's identity, status and last metrics."""
    table = epoch_table(client, run.info.run_id, EPOCH_COLUMNS)
    history = [{"epoch": epoch, **values} for epoch, values in sorted(table.items()) if epoch >= 1]
    history = [row for row in history if "train_loss" in row and "val_loss" in row]
    status = client.get_run(run.info.run_id).info.status
    head = {**_identity(run), "status": status}
    if not history:
        return {**head, "trend": None, "message": "no metrics yet: no epoch with train_loss and val_loss"}
    last = history[-1]
    return {
        **head,
        **loss_trend(history, config),
        "last": {key: last[key] for key in EPOCH_COLUMNS if key in last},
    }


def _analysis_text(result: dict[str, Any]) -> str:
    head = f"{result['symbol']}/{result['model_type']} run {result['run_id']} ({result['status']})"
    if result["trend"] is None:
        return f"{head}: {result['message']}"
    change = "n/a" if result["change_pct"] is None else f"{result['change_pct']:+.1f}%"
    last = " ".join(f"{k}={v:.4f}" for k, v in result["last"].items())
    yes = {True: "yes", False: "no"}
    return "\n".join(
        [
            f"{head}, {result['epochs']} epochs (last {result['last_epoch']}: {last})",
            f"  trend: {result['trend']} (val loss {change} over the last {result['window']} epochs)",
            f"  best epoch: {result['best_epoch']}, epochs since improvement: {result['epochs_since_improvement']}",
            f"  overfitting: {yes[result['is_overfitting']]}, plateau: {yes[result['is_plateaued']]}",
            f"  recommendation: {result['recommendation']} - {result['reason']}",
        ]
    )


def _analytics_config(strategy: StrategyConfig | None, symbol: str | None) -> AnalyticsConfig:
    """The strategy's analytics rules (with the symbol's overrides), else the defaults."""
    if strategy is None:
        return AnalyticsConfig()
    return (strategy.for_symbol(symbol) if symbol else strategy).analytics


# --------------------------------------------------------------------------- command lines
def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run-id", help="an MLflow run id")
    which.add_argument("--dagster-run", help="a Dagster run id: its model training runs")
    parser.add_argument("--symbol", help="the latest training run of this symbol (tag)")
    parser.add_argument("--model-type", choices=list(model_types()), help="... of this model type (tag)")
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else under DAGSTER_HOME)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _selection(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Selection:
    if args.run_id and (args.symbol or args.model_type):
        parser.error("--run-id names one run: leave out --symbol/--model-type")
    if args.dagster_run and args.symbol:
        parser.error("--dagster-run selects by Dagster run: leave out --symbol (use --model-type to pick)")
    if not (args.run_id or args.dagster_run or args.symbol or args.model_type):
        parser.error("say which run: --run-id, --dagster-run, or --symbol/--model-type")
    return Selection(args.run_id, args.dagster_run, args.symbol, args.model_type)


def _tracking_uri(args: argparse.Namespace) -> str:
    if args.tracking_uri:
        return args.tracking_uri

    return default_tracking_uri()


def _printer(as_json: bool) -> Callable[[str, dict[str, Any]], None]:
    def emit(text: str, event: dict[str, Any]) -> None:
        print(dumps(event, indent=None) if as_json else text, flush=True)

    return emit


def monitor_main(argv: list[str] | None = None) -> int:
    """`ktrdr-monitor`: print each new epoch of the selected training runs until they end."""
    parser = _parser("ktrdr-monitor", "Print each new epoch of the selected training runs until they end.")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")
    parser.add_argument("--timeout", type=float, default=None, help="give up after N seconds (exit 124)")
    args = parser.parse_args(argv)
    selection = _selection(parser, args)
    if args.interval <= 0:
        parser.error(f"--interval must be > 0, got {args.interval}")
    uri = _tracking_uri(args)
    try:
        monitor = Monitor(open_store(uri), selection, _printer(args.json))
        return monitor.run(args.interval, args.timeout)
    except RunNotFound as err:
        print(f"error: {err} in {uri}", file=sys.stderr)
        return EXIT_NOT_FOUND


def analyze_main(argv: list[str] | None = None) -> int:
    """`ktrdr-analyze`: loss trend, best epoch and a recommendation for the selected training runs."""
    parser = _parser("ktrdr-analyze", "Loss trend, best epoch and a recommendation per selected training run.")
    parser.add_argument("--strategy", help="strategy YAML whose analytics: section sets the rules")
    args = parser.parse_args(argv)
    selection = _selection(parser, args)
    try:
        strategy = load_strategy(args.strategy) if args.strategy else None
    except StrategyError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NOT_FOUND
    uri = _tracking_uri(args)
    try:
        client = open_store(uri)
        runs = find_runs(client, selection)
        if not runs:
            raise RunNotFound(f"no {selection.describe()}")
    except RunNotFound as err:
        print(f"error: {err} in {uri}", file=sys.stderr)
        return EXIT_NOT_FOUND
    code = EXIT_OK
    for run in runs:
        result = analyze_run(client, run, _analytics_config(strategy, run.data.tags.get("symbol")))
        print(dumps(result, indent=None) if args.json else _analysis_text(result), flush=True)
        if result["trend"] is None:
            code = EXIT_FAILED
    return code
