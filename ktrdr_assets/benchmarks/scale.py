"""How the platform scales with the number of symbols: N synthetic raw files, one temporary instance each.

Run from the repository root:  .venv/bin/python -m ktrdr_assets.benchmarks.scale [--symbols 50,200,500]

For each N, in a temporary DAGSTER_HOME (the project's SQLite dagster.yaml), raw folder and warehouse:

- `load first` / `load`: a fresh interpreter importing `ktrdr_assets.definitions` (what the code server and
  every run process pay), the first one registering the N symbols as partitions, the next one steady;
- `sensor first` / `sensor`: one `raw_data_sensor` tick with nothing recorded (N files hashed, N partitions
  requested), then a steady tick with one file changed (N files stat'ed, one re-hashed, one run requested);
- `schedule`: one `weekly_retraining` tick (N run requests);
- `manifest`: one `build_manifest` run in-process (N selections read under the lock, merged, written, the
  per-symbol table and the blocking check), and `rebuild` the read-merge-write alone;
- `asset page`: the UI's asset page query for `lstm_model` (definition, partition keys, partition statuses
  of its N partitions all materialized, latest materialization, checks) through Dagster's GraphQL client
  against a `dagster-webserver` started for it on 127.0.0.1 (the median of 5 after one warm-up);
- `run overhead`: a `materialize_symbol` run of one symbol's first two assets in-process: its wall time minus
  its steps' compute time (what orchestration adds per run, with N partitions registered).

Goals at 500 symbols: load <= 3 s, each tick <= 2 s, manifest <= 2 s. The last lines give each figure's growth
from the smallest to the largest N beside the growth of N (linear growth has the same factor).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from ktrdr_assets.paths import PROJECT_ROOT

GOALS = {"load": 3.0, "sensor": 2.0, "schedule": 2.0, "manifest": 2.0}
COLUMNS = (
    "load first",
    "load",
    "sensor first",
    "sensor",
    "schedule",
    "manifest",
    "rebuild",
    "asset page",
    "run overhead",
)
MODEL_ASSET = "lstm_model"
LOAD_SCRIPT = "import time; t = time.perf_counter(); import ktrdr_assets.definitions; print(time.perf_counter() - t)"
ASSET_PAGE_QUERY = """
query AssetPage($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      id
      description
      groupName
      isPartitioned
      partitionDefinition { description type }
      partitionKeysByDimension { name partitionKeys }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses {
          materializedPartitions failedPartitions unmaterializedPartitions materializingPartitions
        }
      }
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
      assetMaterializations(limit: 1) { runId timestamp partition }
      assetChecksOrError { __typename ... on AssetChecks { checks { name description blocking } } }
      dependencyKeys { path }
      dependedByKeys { path }
    }
  }
}
"""


# --------------------------------------------------------------------------- synthetic data
def symbol_names(n: int) -> list[str]:
    return [f"SYM{i:04d}" for i in range(n)]


def write_raw_files(folder: Path, n: int, bars: int) -> None:
    """N daily bar files (seeded random walks, one seed per symbol) in the loader's format."""
    import pandas as pd

    from ktrdr_assets.benchmarks.feature_stage import synthetic_bars

    folder.mkdir(parents=True, exist_ok=True)
    dates = pd.bdate_range("2000-01-03", periods=bars).strftime("%Y-%m-%d")
    for i, symbol in enumerate(symbol_names(n)):
        frame = synthetic_bars(bars, seed=1000 + i).reset_index(drop=True)
        frame.insert(0, "Date", dates)
        frame.to_csv(folder / f"{symbol}_1d.csv", index=False, float_format="%.4f")


def selection_document(symbol: str, selected: bool) -> dict:
    """A stored model_selection of the usual size (four models, their rejection reasons)."""
    rejected = {
        name: [f"accuracy: test accuracy 0.41{i} < min 0.550", "stability: |val - test| accuracy 0.08 > max 0.05"]
        for i, name in enumerate(("LSTM", "NeuralNetwork", "RandomForest", "XGBoost"))
    }
    if not selected:
        return {
            "selected_model": None,
            "reason": "No models met quality criteria",
            "action": "MANUAL_REVIEW_REQUIRED",
            "alternatives": [],
            "rejected": rejected,
        }
    return {
        "selected_model": "XGBoost",
        "test_accuracy": 0.61,
        "train_val_gap": 0.04,
        "score": 0.59,
        "reason": "Best score (0.590) with gap 4.0%",
        "alternatives": ["RandomForest"],
        "rejected": {k: v for k, v in rejected.items() if k in ("LSTM", "NeuralNetwork")},
        "model_type": "xgboost",
        "symbol": symbol,
        "run_dir": f"/data/warehouse/model_runs/{symbol}/xgboost/x",
        "decision_threshold": {"threshold": 0.05},
    }


def write_selections(warehouse: Path, symbols: list[str]) -> None:
    folder = warehouse / "model_selection"
    folder.mkdir(parents=True, exist_ok=True)
    for i, symbol in enumerate(symbols):
        (folder / f"{symbol}.json").write_text(json.dumps(selection_document(symbol, selected=i % 3 != 0)))


# --------------------------------------------------------------------------- environment
@contextmanager
def isolated(n: int, bars: int) -> Iterator[dict[str, str]]:
    """A temporary DAGSTER_HOME (the project's dagster.yaml), raw folder with N files, warehouse and MLflow
    store, set in this process's environment for the block."""
    with tempfile.TemporaryDirectory(prefix=f"ktrdr-scale-{n}-") as name:
        root = Path(name)
        home = root / "dagster_home"
        home.mkdir()
        shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
        write_raw_files(root / "raw", n, bars)
        env = {
            "DAGSTER_HOME": str(home),
            "KTRDR_RAW_DIR": str(root / "raw"),
            "KTRDR_WAREHOUSE_DIR": str(root / "warehouse"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "PYTHONWARNINGS": "ignore",
        }
        with mock.patch.dict(os.environ, env):
            yield env


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def load_seconds() -> float:
    """A fresh interpreter importing the definitions (its own figure, without interpreter start-up)."""
    done = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the measurements
def measure_ticks(instance, row: dict[str, float]) -> None:
    import dagster as dg

    from ktrdr_assets.jobs.retraining import raw_data_sensor, weekly_retraining
    from ktrdr_assets.paths import raw_dir

    def tick(cursor):
        context = dg.build_sensor_context(instance=instance, cursor=cursor)
        seconds, result = timed(raw_data_sensor, context)
        for request in result.dynamic_partitions_requests or []:  # as the daemon applies them
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return seconds, result

    for key in instance.get_dynamic_partitions("symbol"):  # the first tick of a sensor on a fresh instance
        instance.delete_dynamic_partition("symbol", key)
    row["sensor first"], first = tick(None)
    changed = sorted(raw_dir().glob("*.csv"))[0]
    lines = changed.read_text().splitlines(keepends=True)
    changed.write_text("".join(lines[:-1]))  # new content: one run requested
    row["sensor"], steady = tick(first.cursor)
    assert len(steady.run_requests) == 1, steady.run_requests
    when = dg.build_schedule_context(instance=instance, scheduled_execution_time=_monday())
    row["schedule"], requests = timed(lambda: list(weekly_retraining(when)))
    assert len(requests) == len(instance.get_dynamic_partitions("symbol"))


def _monday():
    from datetime import UTC, datetime

    return datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def measure_manifest(instance, symbols: list[str], row: dict[str, float], strategy: Path) -> None:
    from ktrdr_assets.assets.manifest_inputs import rebuild_deployment_manifest
    from ktrdr_assets.core.config.loader import load_strategy
    from ktrdr_assets.definitions import defs
    from ktrdr_assets.paths import warehouse_dir

    write_selections(warehouse_dir(), symbols)
    row["rebuild"], manifest = timed(rebuild_deployment_manifest, load_strategy(strategy))
    assert manifest["summary"]["total_symbols"] == len(symbols)
    job = defs.resolve_job_def("build_manifest")
    config = {"resources": {"strategy": {"config": {"path": str(strategy)}}}}
    row["manifest"], result = timed(job.execute_in_process, run_config=config, instance=instance, raise_on_error=False)
    assert result.get_asset_materialization_events(), "the manifest was not written"


def measure_run_overhead(instance, symbol: str, row: dict[str, float], strategy: Path) -> None:
    import dagster as dg

    from ktrdr_assets.benchmarks.dagster_overhead import timed_run

    selection = [dg.AssetKey("ohlcv"), dg.AssetKey("indicators")]
    timed_run("in_process", symbol, strategy, instance, selection)  # warm: imports, first queries
    result = timed_run("in_process", symbol, strategy, instance, selection)
    row["run overhead"] = result["wall_s"] - result["steps_s"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure_asset_page(instance, symbols: list[str], row: dict[str, float]) -> None:
    """The UI's asset page query through DagsterGraphQLClient, against a webserver on this instance."""
    import dagster as dg
    from dagster_graphql import DagsterGraphQLClient

    for symbol in symbols:  # every partition of the model asset materialized
        instance.report_runless_asset_event(dg.AssetMaterialization(MODEL_ASSET, partition=symbol))
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "ktrdr_assets.definitions",
        ],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=120)
        variables = {"assetKey": {"path": [MODEL_ASSET]}}
        deadline = time.monotonic() + 300
        while True:
            try:
                answer = client._execute(ASSET_PAGE_QUERY, variables)
                if answer["assetNodeOrError"]["__typename"] == "AssetNode":
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the webserver did not answer the asset page query within 300 s")
            time.sleep(1.0)
        partitions = answer["assetNodeOrError"]["partitionStats"]
        assert partitions["numMaterialized"] == len(symbols), partitions
        samples = [timed(client._execute, ASSET_PAGE_QUERY, variables)[0] for _ in range(5)]
        row["asset page"] = statistics.median(samples)
    finally:
        server.terminate()
        server.wait(30)


def measure(n: int, bars: int, ui: bool, loads: bool) -> dict[str, float]:
    import dagster as dg

    from ktrdr_assets.benchmarks.dagster_overhead import write_fast_strategy

    row: dict[str, float] = {}
    with isolated(n, bars) as env:
        strategy = write_fast_strategy(Path(env["DAGSTER_HOME"]) / "fast_strategy.yaml")
        if loads:
            row["load first"] = load_seconds()  # registers the N symbols
            row["load"] = min(load_seconds() for _ in range(2))
        with dg.DagsterInstance.get() as instance:
            measure_ticks(instance, row)
            symbols = sorted(instance.get_dynamic_partitions("symbol"))
            measure_manifest(instance, symbols, row, strategy)
            measure_run_overhead(instance, symbols[0], row, strategy)
            if ui:
                measure_asset_page(instance, symbols, row)
    return row


# --------------------------------------------------------------------------- report
def report(results: dict[int, dict[str, float]]) -> list[str]:
    shown = [c for c in COLUMNS if any(c in row for row in results.values())]
    lines = ["symbols " + "".join(f"{c:>14}" for c in shown)]
    for n, row in results.items():
        lines.append(f"{n:>7} " + "".join(f"{row[c]:>14.3f}" if c in row else f"{'-':>14}" for c in shown))
    sizes = sorted(results)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        growth = {c: results[large][c] / results[small][c] for c in shown if results[small].get(c)}
        lines.append(
            f"growth {small} -> {large} (N x{large / small:g}): "
            + ", ".join(f"{c} x{g:.2f}" for c, g in growth.items())
        )
    largest = results[max(results)]
    verdicts = []
    for name, goal in GOALS.items():
        keys = [c for c in shown if c == name or c.startswith(name)]
        worst = max((largest[c] for c in keys if c in largest), default=None)
        if worst is not None:
            verdicts.append(f"{name} {worst:.2f} s {'<=' if worst <= goal else '>'} {goal:g} s")
    lines.append(f"goals at {max(results)}: " + "; ".join(verdicts))
    return lines


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", default="50,200,500", help="comma-separated numbers of symbols")
    parser.add_argument("--bars", type=int, default=2500, help="daily bars per synthetic file (2500: ten years)")
    parser.add_argument("--no-ui", action="store_true", help="skip the webserver's asset page query")
    parser.add_argument("--no-load", action="store_true", help="skip the fresh-interpreter load times")
    args = parser.parse_args(argv)
    results = {}
    load_before = os.getloadavg()[0]
    for n in (int(part) for part in args.symbols.split(",")):
        results[n] = measure(n, args.bars, ui=not args.no_ui, loads=not args.no_load)
        print(f"measured N={n}", file=sys.stderr, flush=True)
    print(f"{os.cpu_count()} CPUs, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    for line in report(results):
        print(line)
    return results


if __name__ == "__main__":
    main()
