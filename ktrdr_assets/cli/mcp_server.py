"""`ktrdr-mcp`: the platform's trainings, selections and manifest as Model Context Protocol tools for agents.

Serves over stdio (what an MCP client launches), or with `--transport streamable-http` on
http://127.0.0.1:PORT/mcp (loopback only). Reads the stores the platform writes: the MLflow tracking store
(`--tracking-uri`, else MLFLOW_TRACKING_URI, else the embedded store under DAGSTER_HOME), the warehouse
and the Dagster instance under DAGSTER_HOME. Every tool has a typed input schema and answers JSON; the
training tools share `training_queries` with ktrdr-monitor and ktrdr-analyze (one run lookup, one set of
trend rules).

Read-only tools: list_trainings, get_training_metrics, analyze_training, get_model_selection,
get_deployment_manifest, get_backtest. `materialize_symbol` exists only with `--allow-launch`: it submits
a run to the Dagster instance as the UI does and returns its run id.

A question that cannot be answered is a tool error of one line, `KIND: message`, with
`{"error": KIND, "message": ...}` as structured content: KIND is invalid_argument (a malformed symbol, run
id, model type, ...), not_found (unknown run or symbol, nothing materialized yet) or store_unavailable
(the MLflow store, warehouse or Dagster instance cannot be read). Never a traceback.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from ktrdr_assets.cli.query_errors import InvalidQuery, NotFound, QueryError, one_line
from ktrdr_assets.cli.training_queries import (
    MAX_PAGE,
    STATUSES,
    Selection,
    TrainingStore,
    analytics_config,
    analyze_run,
    list_trainings,
    training_metrics,
)
from ktrdr_assets.core.models.registry import candidate_types
from ktrdr_assets.core.util.jsonsafe import to_jsonable
from ktrdr_assets.core.util.names import SYMBOL_JSON_PATTERN
from ktrdr_assets.paths import default_tracking_uri

SERVER_NAME = "ktrdr"
DEFAULT_PORT = 8765
#: An unreachable MLflow server answers in seconds, not after MLflow's default of ~4 minutes of retries.
STORE_ENV_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}

ModelType = Literal[candidate_types()]  # the registered model types and their pooled types
RunStatus = Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]
assert get_args(RunStatus) == STATUSES

# The symbol pattern is published in the schema but checked by partitions.validate_symbol, whose message is clearer.
Symbol = Annotated[
    str, Field(description="a symbol (partition key), e.g. EURUSD", json_schema_extra={"pattern": SYMBOL_JSON_PATTERN})
]
RunId = Annotated[str, Field(description="an MLflow run id of a training (list_trainings gives them)")]
DagsterRunId = Annotated[str, Field(description="a Dagster run id (a UUID): the trainings of that run")]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
LAUNCH = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)


class Tools:
    """The tools, bound to the stores this server reads (`tracking_uri`) and the strategy it speaks for."""

    def __init__(self, tracking_uri: str | None = None, strategy: Path | None = None):
        self.tracking_uri = tracking_uri
        self.strategy_path = strategy
        self.strategy = None
        if strategy is not None:
            from ktrdr_assets.core.config.loader import load_strategy

            self.strategy = load_strategy(strategy)  # StrategyError: refused at start-up

    def _store(self) -> TrainingStore:
        return TrainingStore(self.tracking_uri or default_tracking_uri())

    def list_trainings(
        self,
        symbol: Symbol | None = None,
        model_type: ModelType | None = None,
        dagster_run_id: DagsterRunId | None = None,
        status: RunStatus | None = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE, description="trainings per page")] = 20,
        page_token: Annotated[str | None, Field(description="next_page_token of the previous page")] = None,
    ) -> dict[str, Any]:
        """Model trainings (one MLflow run per model of a Dagster run), newest first, filtered by symbol, model
        type, Dagster run and status; one page at a time (pass next_page_token back for the next; null: the
        last page). Each: run_id, symbol, model_type, dagster_run_id, strategy, status, started_at, ended_at
        and its latest epoch metrics."""
        selection = Selection(dagster_run=dagster_run_id, symbol=symbol, model_type=model_type)
        return to_jsonable(list_trainings(self._store(), selection, status, limit, page_token))

    def get_training_metrics(
        self,
        run_id: RunId,
        since_epoch: Annotated[int, Field(ge=0, description="only epochs after this one (0: all)")] = 0,
    ) -> dict[str, Any]:
        """Per-epoch metrics of a training, running or done: train/val loss and accuracy, learning rate and the
        trend fields (best_epoch, epochs_since_improvement, is_overfitting, is_plateaued), each with logged_at.
        To follow a live training, call again with since_epoch=next_since_epoch until finished is true (an
        answer with finished true holds every epoch)."""
        return to_jsonable(training_metrics(self._store(), run_id, since_epoch))

    def analyze_training(
        self,
        run_id: RunId | None = None,
        symbol: Symbol | None = None,
        model_type: ModelType | None = None,
        dagster_run_id: DagsterRunId | None = None,
    ) -> dict[str, Any]:
        """Loss-trend analysis of trainings, as ktrdr-analyze gives it: trend (improving, plateau, overfitting,
        diverging), change_pct of the val loss over the window, best_epoch, epochs_since_improvement, the flags
        and a recommendation (continue, stop_early, add_regularization, lower_learning_rate) with its reason.
        Pick a run_id, or the latest training of a symbol and/or model type, or every training of a Dagster
        run."""
        if run_id and (symbol or model_type or dagster_run_id):
            raise InvalidQuery("run_id names one training: leave out symbol, model_type and dagster_run_id")
        if dagster_run_id and symbol:
            raise InvalidQuery("dagster_run_id selects by Dagster run: leave out symbol (model_type may pick)")
        if not (run_id or symbol or model_type or dagster_run_id):
            raise InvalidQuery("say which training: run_id, dagster_run_id, or symbol and/or model_type")
        selection = Selection(run_id, dagster_run_id, symbol, model_type)
        store = self._store()
        runs = store.find(selection)
        if not runs:
            raise NotFound(f"no {selection.describe()} in {store.uri}")
        analyses = [
            analyze_run(store, run, analytics_config(self.strategy, run.data.tags.get("symbol"))) for run in runs
        ]
        return to_jsonable({"analyses": analyses})

    def get_model_selection(self, symbol: Symbol) -> dict[str, Any]:
        """A symbol's model selection (selected model, score, reason, alternatives, rejections) and, per model
        type, its quality-gate values (measured value, threshold, baseline, passed), the selector's reasons
        and the MLflow run id of the training behind it."""
        from ktrdr_assets.cli.warehouse_queries import model_selection

        return model_selection(symbol, self.strategy_path)

    def get_deployment_manifest(self) -> dict[str, Any]:
        """The deployment manifest across all symbols: each symbol's deployable model (or why none), stale
        entries kept from the last good selection, the selection criteria and the summary counts."""
        from ktrdr_assets.cli.warehouse_queries import deployment_manifest

        return deployment_manifest()

    def get_backtest(self, symbol: Symbol) -> dict[str, Any]:
        """A symbol's backtest of every candidate model over the untouched holdout (period, signal counts,
        decision rule, whether it is deployed) and its out-of-fold figures (returns, probabilistic and deflated
        Sharpe), and side_by_side: per candidate, each holdout metric (total return, Sharpe, drawdown, ...) for
        the model and for buy-and-hold."""
        from ktrdr_assets.cli.warehouse_queries import backtest

        return backtest(symbol)

    def materialize_symbol(self, symbol: Symbol) -> dict[str, Any]:
        """Launch the materialize_symbol job (data, four models, selection, backtest) for one symbol through the
        Dagster instance, as the UI's Launch button does; returns the Dagster run id (follow its trainings with
        list_trainings(dagster_run_id=...)). The run is queued until the Dagster daemon starts it."""
        from ktrdr_assets.cli.launch import launch_symbol_run

        return launch_symbol_run(symbol, self.strategy_path)


def _error(kind: str, message: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=f"{kind}: {message}")],
        structured_content={"error": kind, "message": message},
        is_error=True,
    )


def _validation_line(err: ValidationError) -> str:
    """Pydantic's multi-line report as one line: `argument: problem; ...`."""
    parts = []
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        parts.append(f"{where}: {item['msg']}")
    return "invalid arguments: " + "; ".join(parts)


class KtrdrServer(MCPServer):
    """MCPServer whose expected failures come back as one-line tool errors with a kind (see the module doc)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, QueryError):
                return _error(cause.kind, str(cause))
            if isinstance(cause, ValidationError):
                return _error("invalid_argument", _validation_line(cause))
            raise  # unknown tool, or a crash: the SDK answers one line and logs the traceback on stderr


def build_server(tools: Tools, allow_launch: bool = False) -> KtrdrServer:
    server = KtrdrServer(
        SERVER_NAME,
        instructions="Trading-signal model trainings (MLflow), selections, backtests and the deployment manifest "
        "of the ktrdr platform. Follow a live training with get_training_metrics(since_epoch=...).",
        log_level="WARNING",
    )
    for tool in (
        tools.list_trainings,
        tools.get_training_metrics,
        tools.analyze_training,
        tools.get_model_selection,
        tools.get_deployment_manifest,
        tools.get_backtest,
    ):
        server.add_tool(tool, annotations=READ_ONLY)
    if allow_launch:
        server.add_tool(tools.materialize_symbol, annotations=LAUNCH)
    return server


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ktrdr-mcp", description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else under DAGSTER_HOME)")
    parser.add_argument("--strategy", type=Path, help="strategy YAML for the analytics rules, gates and launches")
    parser.add_argument("--allow-launch", action="store_true", help="add the materialize_symbol tool")
    parser.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port on 127.0.0.1 ({DEFAULT_PORT})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from ktrdr_assets.core.config.errors import StrategyError

    try:
        tools = Tools(args.tracking_uri, args.strategy)
    except StrategyError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    for key, value in STORE_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    server = build_server(tools, allow_launch=args.allow_launch)
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host="127.0.0.1", port=args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
