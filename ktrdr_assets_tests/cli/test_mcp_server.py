"""`ktrdr-mcp` driven by the MCP SDK's own client, the server a subprocess over stdio (one over HTTP).

- every tool on a finished symbol run (the whole graph for the planted-edge symbol, fast
  models, the shipped gates, which one of its models passes),
  checked against what ktrdr-analyze, MLflow and the warehouse say;
- bad input and an unreadable store: one-line tool errors with their kind, never a traceback;
- the launch tool: absent without --allow-launch; with it, a queued `materialize_symbol` run in the instance;
- live trainings in subprocesses (`live_training`) followed with get_training_metrics(since_epoch=...): each
  training waits at its held epochs until the client has received them, so "epochs arrive before it ends" is
  an order of events; three at once, each followed without mixing.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mlflow.tracking import MlflowClient

import ktrdr_assets
from ktrdr_assets.cli.monitor import analyze_main
from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.util.names import SYMBOL_PATTERN
from ktrdr_assets.io import read_asset
from ktrdr_assets.paths import default_tracking_uri
from ktrdr_assets_tests.helpers import MODEL_TYPES, TORCH_TYPES, run_job, write_strategy
from ktrdr_assets_tests.live_training import LiveTraining, start_training
from ktrdr_assets_tests.synthetic_symbols import PLANTED

READ_TOOLS = {
    "list_trainings",
    "get_training_metrics",
    "analyze_training",
    "get_model_selection",
    "get_deployment_manifest",
    "get_backtest",
}
CODE_ROOT = str(Path(ktrdr_assets.__file__).resolve().parent.parent)


# --------------------------------------------------------------------------- the client
def _params(*args: str, **env: str) -> StdioServerParameters:
    """`python -m ktrdr_assets.cli.mcp_server ARGS` with this session's stores (and `env` over them)."""
    path = os.pathsep.join(p for p in (CODE_ROOT, os.environ.get("PYTHONPATH")) if p)
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "ktrdr_assets.cli.mcp_server", *args],
        env={**os.environ, "PYTHONPATH": path, **env},
        cwd=CODE_ROOT,
    )


def with_client(server: StdioServerParameters | str, work: Callable[[Client], Awaitable[Any]]) -> Any:
    """Run `work(client)` in one MCP session with the server."""

    async def session() -> Any:
        async with Client(server, read_timeout_seconds=60) as client:
            return await work(client)

    return anyio.run(session)


def data(result: Any) -> dict[str, Any]:
    """A successful tool answer: structured JSON, and the same JSON as its text."""
    assert not result.is_error, result.content[0].text
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


def error(result: Any) -> tuple[str, str]:
    """(kind, text) of a tool error, which is one line."""
    assert result.is_error, result.structured_content
    text = result.content[0].text
    assert "\n" not in text and "Traceback" not in text, text
    assert text == f"{result.structured_content['error']}: {result.structured_content['message']}"
    return result.structured_content["error"], text


# --------------------------------------------------------------------------- a finished symbol run
@pytest.fixture(scope="module")
def strategy(module_dir) -> Path:
    """Fast models and the shipped gates, which a model of the planted-edge symbol passes: a selection, a
    backtest and a deployable manifest."""
    return write_strategy(module_dir / "fast.yaml")


@pytest.fixture(scope="module")
def finished(module_dir, strategy) -> str:
    """The Dagster run id of the whole graph for PLANTED, then the manifest, in this module's warehouse."""
    result = run_job(strategy, PLANTED)
    assert result.success
    assert run_job(strategy, None, job="build_manifest").success
    return result.run_id


def test_the_read_tools_and_their_typed_schemas_and_no_launch_tool_without_the_flag():
    async def work(client: Client):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        return tools, await client.call_tool("materialize_symbol", {"symbol": "MSFT"})

    tools, launch = with_client(_params(), work)
    assert set(tools) == READ_TOOLS
    assert launch.is_error and "Unknown tool" in launch.content[0].text
    listing = tools["list_trainings"].input_schema["properties"]
    assert listing["model_type"]["anyOf"][0]["enum"] == [*MODEL_TYPES, *(f"pooled_{t}" for t in TORCH_TYPES)]
    assert listing["status"]["anyOf"][0]["enum"] == ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]
    assert (listing["limit"]["minimum"], listing["limit"]["maximum"]) == (1, 200)
    metrics = tools["get_training_metrics"].input_schema
    assert metrics["required"] == ["run_id"] and metrics["properties"]["since_epoch"]["minimum"] == 0
    published = re.compile(tools["get_backtest"].input_schema["properties"]["symbol"]["pattern"])
    for key in ("EURUSD", "brk.b-2_x", "A" * 64, "A" * 65, "../up", "A..B", "-A", "A/B", ""):
        assert bool(published.fullmatch(key)) == bool(SYMBOL_PATTERN.fullmatch(key)), key
    assert all(tool.annotations.read_only_hint for tool in tools.values())


def test_every_tool_on_a_finished_run(finished, strategy, capsys):
    timings: dict[str, list[float]] = {}

    async def call(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
        started = time.perf_counter()
        result = await client.call_tool(name, arguments)
        timings.setdefault(name, []).append(time.perf_counter() - started)
        return data(result)

    async def work(client: Client):
        out: dict[str, Any] = {"listing": await call(client, "list_trainings", dagster_run_id=finished)}
        pages, token = [], None
        while True:
            page = await call(client, "list_trainings", dagster_run_id=finished, limit=1, page_token=token)
            pages.append(page["trainings"])
            token = page["next_page_token"]
            if token is None:
                break
        out["pages"] = pages
        out["failed"] = await call(client, "list_trainings", dagster_run_id=finished, status="FAILED")
        nn = next(t for t in out["listing"]["trainings"] if t["model_type"] == "neural_network")
        out["nn"] = nn
        out["metrics"] = await call(client, "get_training_metrics", run_id=nn["run_id"])
        last = out["metrics"]["next_since_epoch"]
        out["tail"] = await call(client, "get_training_metrics", run_id=nn["run_id"], since_epoch=last - 1)
        out["analysis"] = await call(client, "analyze_training", run_id=nn["run_id"])
        out["run_analyses"] = await call(client, "analyze_training", dagster_run_id=finished)
        out["selection"] = await call(client, "get_model_selection", symbol=PLANTED)
        out["backtest"] = await call(client, "get_backtest", symbol=PLANTED)
        out["manifest"] = await call(client, "get_deployment_manifest")
        for name, arguments in [
            ("list_trainings", {"dagster_run_id": finished}),
            ("get_training_metrics", {"run_id": nn["run_id"]}),
            ("analyze_training", {"run_id": nn["run_id"]}),
            ("get_model_selection", {"symbol": PLANTED}),
            ("get_backtest", {"symbol": PLANTED}),
            ("get_deployment_manifest", {}),
        ]:  # again, warm
            await call(client, name, **arguments)
        return out

    out = with_client(_params("--strategy", str(strategy)), work)

    trainings = out["listing"]["trainings"]
    assert sorted(t["model_type"] for t in trainings) == sorted(MODEL_TYPES)
    assert {(t["symbol"], t["status"], t["dagster_run_id"]) for t in trainings} == {(PLANTED, "FINISHED", finished)}
    starts = [t["started_at"] for t in trainings]
    assert starts == sorted(starts, reverse=True)  # newest first
    assert [page[0]["run_id"] for page in out["pages"]] == [t["run_id"] for t in trainings]  # 4 pages of 1
    assert out["failed"] == {"trainings": [], "next_page_token": None}

    # every epoch of the run, as MLflow holds it, typed; then only the last one after since_epoch
    metrics, run_id = out["metrics"], out["nn"]["run_id"]
    history = MlflowClient(default_tracking_uri()).get_metric_history(run_id, "val_loss")
    assert [row["epoch"] for row in metrics["epochs"]] == sorted(m.step for m in history)
    assert [row["val_loss"] for row in metrics["epochs"]] == [m.value for m in sorted(history, key=lambda m: m.step)]
    assert (metrics["status"], metrics["finished"], metrics["symbol"]) == ("FINISHED", True, PLANTED)
    first = metrics["epochs"][0]
    assert isinstance(first["best_epoch"], int) and isinstance(first["is_overfitting"], bool) and first["logged_at"]
    assert [row["epoch"] for row in out["tail"]["epochs"]] == [metrics["next_since_epoch"]]

    # the same analysis as ktrdr-analyze (one implementation of the trend rules)
    capsys.readouterr()
    assert analyze_main(["--run-id", run_id, "--json", "--strategy", str(strategy)]) == 0
    assert out["analysis"] == {"analyses": [json.loads(capsys.readouterr().out)]}
    assert out["analysis"]["analyses"][0]["recommendation"] in {
        "continue",
        "stop_early",
        "lower_learning_rate",
        "add_regularization",
    }
    analyses = out["run_analyses"]["analyses"]
    assert sorted(a["model_type"] for a in analyses) == sorted(MODEL_TYPES)

    # the warehouse: selection with each model's gate values beside the selector's reasons; backtest; manifest
    stored = read_asset("model_selection", PLANTED)
    selection = out["selection"]
    assert selection["selection"] == stored and stored["selected_model"]
    assert selection["gates"] == load_strategy(strategy).for_symbol(PLANTED).gates.model_dump(mode="json")
    for model_type, model in selection["models"].items():
        if model_type.startswith("pooled_"):  # listed too; no pooled network was trained in this warehouse
            assert model == {"materialized": False}
            continue
        record = read_asset(f"{model_type}_model", PLANTED)
        assert model["mlflow_run_id"] == record["mlflow_run_id"]
        assert [g["name"] for g in model["gates"]] == ["overfitting_gap", "accuracy", "stability"]
        assert model["reasons"] == stored["rejected"].get(record["model_name"], [])
        failed = [g["description"] for g in model["gates"] if not g["passed"]]
        assert [reason.split(": ", 1)[1] for reason in model["reasons"]] == failed
    backtest, stored = out["backtest"], read_asset("backtest", PLANTED)
    assert {k: v for k, v in backtest.items() if k != "side_by_side"} == stored
    assert set(backtest["side_by_side"]) == set(stored["candidates"]) and stored["candidates"]
    hold = stored["buy_and_hold"]["holdout"]
    for name, candidate in stored["candidates"].items():
        pairs = backtest["side_by_side"][name]
        assert {"total_return", "sharpe"} <= set(pairs)
        for metric, pair in pairs.items():
            assert pair == {"strategy": candidate["holdout"]["metrics"].get(metric), "buy_and_hold": hold.get(metric)}
    assert out["manifest"] == read_asset("deployment_manifest", None)
    assert out["manifest"]["selections"][PLANTED]["selected_model"] == stored["selected_model"]
    print("\nktrdr-mcp latency per tool, first call / last call (ms): ", end="")
    print(", ".join(f"{name} {1000 * t[0]:.0f}/{1000 * t[-1]:.0f}" for name, t in timings.items()))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bad_input_is_a_one_line_error_and_an_unreadable_store_its_own_kind(finished, tmp_path):
    bad = [
        ("get_training_metrics", {"run_id": "0123456789abcdef0123456789abcdef"}, "not_found", "no MLflow run"),
        ("get_training_metrics", {"run_id": "x' or '1"}, "invalid_argument", "invalid MLflow run id"),
        ("get_training_metrics", {"run_id": finished, "since_epoch": -1}, "invalid_argument", "since_epoch"),
        ("get_training_metrics", {}, "invalid_argument", "run_id: Field required"),
        ("list_trainings", {"symbol": "../etc"}, "invalid_argument", "invalid partition key '../etc'"),
        ("list_trainings", {"model_type": "cnn"}, "invalid_argument", "model_type"),
        ("list_trainings", {"page_token": "nonsense"}, "invalid_argument", "invalid page_token"),
        ("analyze_training", {}, "invalid_argument", "say which training"),
        ("analyze_training", {"symbol": "NOPE"}, "not_found", "no training runs tagged symbol=NOPE"),
        ("get_model_selection", {"symbol": "NOPE"}, "not_found", "unknown symbol 'NOPE'"),
        ("get_backtest", {"symbol": "a/../../b"}, "invalid_argument", "invalid partition key"),
        ("get_backtest", {"symbol": "MSFT"}, "not_found", "no backtest for MSFT"),  # known, not materialized
    ]

    async def work(client: Client):
        return [error(await client.call_tool(name, arguments)) for name, arguments, _, _ in bad]

    answers = with_client(_params(), work)
    for (name, arguments, kind, words), (got_kind, text) in zip(bad, answers, strict=True):
        assert (got_kind, words in text) == (kind, True), (name, arguments, text)

    async def unreadable(client: Client):
        return [
            error(await client.call_tool("list_trainings", {})),
            error(await client.call_tool("get_training_metrics", {"run_id": "0123456789abcdef"})),
        ]

    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    for kind, text in with_client(_params("--tracking-uri", missing), unreadable):
        assert (kind, text) == ("store_unavailable", f"store_unavailable: no MLflow store at {tmp_path / 'nope.db'}")
    server = f"http://127.0.0.1:{_closed_port()}"
    for kind, text in with_client(_params("--tracking-uri", server, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"), unreadable):
        assert kind == "store_unavailable" and f"MLflow store {server} could not be read" in text


def test_the_launch_tool_queues_a_symbol_run_in_the_dagster_instance(tmp_path):
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()

    async def work(client: Client):
        names = {tool.name for tool in (await client.list_tools()).tools}
        launched = data(await client.call_tool("materialize_symbol", {"symbol": "MSFT"}))
        refused = [
            error(await client.call_tool("materialize_symbol", {"symbol": symbol})) for symbol in ("../x", "NOPE")
        ]
        return names, launched, refused

    names, launched, refused = with_client(_params("--allow-launch", DAGSTER_HOME=str(home)), work)
    assert names == READ_TOOLS | {"materialize_symbol"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(launched["run_id"])
    assert (run.job_name, run.status.value, run.tags["dagster/partition"]) == ("materialize_symbol", "QUEUED", "MSFT")
    assert run.tags["ktrdr/launched_by"] == "ktrdr-mcp"
    assert run.tags["dagster/code_location"] == "ktrdr_assets.definitions"  # as the UI and daemon name it
    assert (launched["status"], launched["symbol"], launched["dagster_home"]) == ("QUEUED", "MSFT", str(home))
    assert [kind for kind, _ in refused] == ["invalid_argument", "not_found"]
    assert "unknown symbol 'NOPE'" in refused[1][1]


def test_streamable_http_on_loopback(finished):
    port = _closed_port()
    params = _params("--transport", "streamable-http", "--port", str(port))
    process = subprocess.Popen(
        [params.command, *params.args], env=params.env, cwd=CODE_ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the HTTP server did not come up"
                time.sleep(0.2)

        async def work(client: Client):
            return data(await client.call_tool("list_trainings", {"dagster_run_id": finished}))

        listing = with_client(f"http://127.0.0.1:{port}/mcp", work)
        assert len(listing["trainings"]) == len(MODEL_TYPES)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_console_script_is_declared_and_a_bad_strategy_is_refused_at_start(tmp_path, capsys):
    import tomllib

    from ktrdr_assets.cli.mcp_server import main

    scripts = tomllib.loads((Path(CODE_ROOT) / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["ktrdr-mcp"] == "ktrdr_assets.cli.mcp_server:main"
    assert main(["--strategy", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.yaml'}: strategy file not found\n"


# --------------------------------------------------------------------------- live trainings
@pytest.fixture(scope="module")
def live_store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mcp-live') / 'mlflow.db'}"


def _live(folder: Path, store: str, epochs: int, symbol: str, seed: int, hold: tuple[int, ...]) -> LiveTraining:
    nn = {"epochs": epochs, "patience": 2 * epochs, "hidden_layers": [8]}
    strategy = write_strategy(folder / f"{symbol}.yaml", models={"neural_network": nn})
    return start_training(
        folder / symbol, store, strategy, str(uuid.uuid4()), symbol=symbol, seed=seed, sleep_s=0.05, hold=hold
    )


async def _poll(client: Client, training: LiveTraining, since: int) -> dict[str, Any]:
    return data(await client.call_tool("get_training_metrics", {"run_id": training.run_id, "since_epoch": since}))


def test_a_live_training_is_followed_with_since_epoch_and_epochs_arrive_before_it_ends(live_store, tmp_path):
    epochs, hold = 20, (1, 10)
    training = _live(tmp_path, live_store, epochs, "LIVE", 0, hold)

    async def work(client: Client):
        answers, since = [], 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = await _poll(client, training, since)
            answers.append(answer)
            for row in answer["epochs"]:
                if row["epoch"] in hold:
                    training.release(row["epoch"])
            since = answer["next_since_epoch"]
            if answer["finished"]:
                break
            await anyio.sleep(0.1)
        return answers

    try:
        answers = with_client(_params("--tracking-uri", live_store), work)
        holds = training.finish()
    finally:
        training.kill()
    assert holds == [f"epoch {epoch}: released" for epoch in hold], holds  # each waited for the client
    received = [row["epoch"] for answer in answers for row in answer["epochs"]]
    assert received == list(range(1, epochs + 1))  # each epoch once, in order
    for epoch in hold:  # received while the training was waiting at it: running, not finished
        answer = next(a for a in answers if epoch in [row["epoch"] for row in a["epochs"]])
        assert (answer["status"], answer["finished"]) == ("RUNNING", False)
    assert (answers[-1]["status"], answers[-1]["finished"]) == ("FINISHED", True)
    assert {a["run_id"] for a in answers} == {training.run_id} and {a["symbol"] for a in answers} == {"LIVE"}


def test_three_trainings_at_once_are_each_followed_without_mixing(live_store, tmp_path):
    plan = {"LIVEA": 6, "LIVEB": 8, "LIVEC": 10}  # symbol: epochs
    trainings: dict[str, LiveTraining] = {}
    try:
        for seed, (symbol, epochs) in enumerate(plan.items(), start=1):
            trainings[symbol] = _live(tmp_path, live_store, epochs, symbol, seed, hold=(1,))

        async def work(client: Client):
            answers: dict[str, list[dict[str, Any]]] = {symbol: [] for symbol in plan}
            since = dict.fromkeys(plan, 0)
            running_together = None
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not all(a and a[-1]["finished"] for a in answers.values()):
                for symbol, training in trainings.items():
                    if answers[symbol] and answers[symbol][-1]["finished"]:
                        continue
                    answer = await _poll(client, training, since[symbol])
                    answers[symbol].append(answer)
                    since[symbol] = answer["next_since_epoch"]
                if running_together is None and all(since[s] >= 1 for s in plan):
                    # every training is waiting at its epoch 1: three running at once
                    running_together = data(await client.call_tool("list_trainings", {"status": "RUNNING"}))
                    for training in trainings.values():
                        training.release(1)
                await anyio.sleep(0.1)
            return answers, running_together

        answers, running_together = with_client(_params("--tracking-uri", live_store), work)
        holds = {symbol: training.finish() for symbol, training in trainings.items()}
    finally:
        for training in trainings.values():
            training.kill()

    assert holds == dict.fromkeys(plan, ["epoch 1: released"])
    assert {t["run_id"] for t in running_together["trainings"]} >= {t.run_id for t in trainings.values()}
    client = MlflowClient(live_store)
    losses = {}
    for symbol, training in trainings.items():
        mine = answers[symbol]
        assert {(a["run_id"], a["symbol"]) for a in mine} == {(training.run_id, symbol)}
        rows = [row for answer in mine for row in answer["epochs"]]
        assert [row["epoch"] for row in rows] == list(range(1, plan[symbol] + 1))
        stored = sorted(client.get_metric_history(training.run_id, "val_loss"), key=lambda m: m.step)
        assert [row["val_loss"] for row in rows] == [m.value for m in stored]
        assert mine[-1]["finished"] and mine[-1]["status"] == "FINISHED"
        losses[symbol] = rows[0]["val_loss"]
    assert len(set(losses.values())) == len(plan)  # three different trainings, not one seen three times
