"""`ktrdr-monitor` and `ktrdr-analyze`: follow and judge model trainings from the MLflow tracking store.

Each model training of a Dagster run is one MLflow run nested under that run's parent run and tagged
symbol, model_type, dagster_run_id, partition and strategy, whose per-epoch metrics (losses, accuracies,
learning rate and loss trend) reach the store moments after each epoch ends. Both commands pick runs the
same way, through `training_queries` (which `ktrdr-mcp` shares):

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
2 no such run, an invalid argument (symbol, run id) or a missing strategy file; 3 the MLflow store cannot
be read (no store at that path, a server that does not answer); 124 `--timeout` reached (monitor).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ktrdr_assets.cli.query_errors import InvalidQuery, NotFound, QueryError, StoreUnavailable
from ktrdr_assets.cli.training_queries import (
    EPOCH_COLUMNS,
    TERMINAL,
    Selection,
    TrainingStore,
    analytics_config,
    analyze_run,
    epoch_record,
    identity,
    label,
    ready_epochs,
)
from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.models.registry import candidate_types
from ktrdr_assets.core.training.trends import LIVE_METRICS
from ktrdr_assets.core.util.jsonsafe import dumps
from ktrdr_assets.paths import dagster_home, default_tracking_uri

__all__ = ["EPOCH_COLUMNS", "Monitor", "analyze_main", "monitor_main"]

EXIT_OK, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_STORE, EXIT_TIMEOUT = 0, 1, 2, 3, 124


def exit_code(err: QueryError) -> int:
    """2 for a question that cannot be answered (no such run, invalid argument), 3 for an unreadable store."""
    return EXIT_STORE if isinstance(err, StoreUnavailable) else EXIT_NOT_FOUND


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

    store: TrainingStore
    selection: Selection
    emit: Callable[[str, dict[str, Any]], None]
    followed: dict[str, _Followed] = field(default_factory=dict)

    def discover(self) -> None:
        for run in self.store.find(self.selection):
            if run.info.run_id not in self.followed:
                self.followed[run.info.run_id] = _Followed(run)
                self.emit(
                    f"following {label(run)} run {run.info.run_id} ({run.info.status})",
                    {"event": "run", **identity(run), "status": run.info.status},
                )

    def poll(self, followed: _Followed) -> None:
        """Print the run's new epochs; its end once it is terminal (status read before the metrics, so
        every epoch logged before the end is seen)."""
        run_id = followed.run.info.run_id
        status = self.store.status(run_id)
        table = self.store.epoch_table(run_id, LIVE_METRICS)
        terminal = status in TERMINAL
        for epoch in ready_epochs(table, followed.last_epoch, terminal):
            self._emit_epoch(followed.run, epoch_record(epoch, table[epoch]))
            followed.last_epoch = epoch
            followed.epochs += 1
        if not table and not followed.said_waiting and not terminal:
            followed.said_waiting = True
            event = {"event": "waiting", **identity(followed.run), "message": "no metrics yet"}
            self.emit(f"{label(followed.run)} waiting: no metrics yet", event)
        if terminal:
            followed.status = status
            self.emit(
                f"{label(followed.run)} run {run_id}: {status} after {followed.epochs} epochs",
                {"event": "end", **identity(followed.run), "status": status, "epochs": followed.epochs},
            )

    def _emit_epoch(self, run: Any, record: dict[str, Any]) -> None:
        text = f"{label(run)} epoch {record['epoch']}: " + " ".join(
            f"{key}={record[key]:.4f}" for key in EPOCH_COLUMNS if key in record
        )
        if "best_epoch" in record and "epochs_since_improvement" in record:
            text += f" best_epoch={record['best_epoch']} ({record['epochs_since_improvement']} ago)"
        text += "".join(f" [{flag}]" for flag in ("overfitting", "plateaued") if record.get(f"is_{flag}"))
        self.emit(text, {"event": "epoch", **identity(run), **record})

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
            raise NotFound(f"no {self.selection.describe()} in {self.store.uri}")
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


# --------------------------------------------------------------------------- command lines
def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run-id", help="an MLflow run id")
    which.add_argument("--dagster-run", help="a Dagster run id: its model training runs")
    parser.add_argument("--symbol", help="the latest training run of this symbol (tag)")
    parser.add_argument("--model-type", choices=list(candidate_types()), help="... of this model type (tag)")
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


def _printer(as_json: bool) -> Callable[[str, dict[str, Any]], None]:
    def emit(text: str, event: dict[str, Any]) -> None:
        print(dumps(event, indent=None) if as_json else text, flush=True)

    return emit


def _fail(err: QueryError) -> int:
    print(f"error: {err}", file=sys.stderr)
    return exit_code(err)


def monitor_main(argv: list[str] | None = None) -> int:
    """`ktrdr-monitor`: print each new epoch of the selected training runs until they end."""
    parser = _parser("ktrdr-monitor", "Print each new epoch of the selected training runs until they end.")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")
    parser.add_argument("--timeout", type=float, default=None, help="give up after N seconds (exit 124)")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error(f"--interval must be > 0, got {args.interval}")
    try:
        selection = _selection(parser, args)
        monitor = Monitor(TrainingStore(args.tracking_uri or default_tracking_uri()), selection, _printer(args.json))
        return monitor.run(args.interval, args.timeout)
    except QueryError as err:
        return _fail(err)


def analyze_main(argv: list[str] | None = None) -> int:
    """`ktrdr-analyze`: loss trend, best epoch and a recommendation for the selected training runs."""
    parser = _parser("ktrdr-analyze", "Loss trend, best epoch and a recommendation per selected training run.")
    parser.add_argument("--strategy", help="strategy YAML whose analytics: section sets the rules")
    args = parser.parse_args(argv)
    try:
        selection = _selection(parser, args)
        strategy = load_strategy(args.strategy) if args.strategy else None
    except StrategyError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except InvalidQuery as err:
        return _fail(err)
    try:
        store = TrainingStore(args.tracking_uri or default_tracking_uri())
        runs = store.find(selection)
        if not runs:
            raise NotFound(f"no {selection.describe()} in {store.uri}")
        code = EXIT_OK
        for run in runs:
            result = analyze_run(store, run, analytics_config(strategy, run.data.tags.get("symbol")))
            print(dumps(result, indent=None) if args.json else _analysis_text(result), flush=True)
            if result["trend"] is None:
                code = EXIT_FAILED
        return code
    except QueryError as err:
        return _fail(err)
