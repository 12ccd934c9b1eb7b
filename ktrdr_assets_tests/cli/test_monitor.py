"""`ktrdr-monitor` / `ktrdr-analyze` against a tmp MLflow store, and the live metrics of a real training.

The store is filled with MlflowClient (finished, failed, running, empty and partly written runs). The
end-to-end tests start a 100-epoch neural-network training in a subprocess (`live_training`: real
`train_model`, real MlflowTracker under `nested_training_run`, each epoch slowed by 20 ms), follow it with
the monitor from this process, then check its MLflow metrics: the live set with the loss trend, under 50 KB.
The training waits at epochs 1 and 50 until the monitor has printed them, so "shown while it runs" is an
order of events, never a wall-clock margin.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import socket
import threading
import time
import uuid
from importlib.metadata import entry_points
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from ktrdr_assets.cli.monitor import EPOCH_COLUMNS, analyze_main, monitor_main
from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.models.training_runs import train_model
from ktrdr_assets.core.training.tracking import NullTracker
from ktrdr_assets.core.training.trends import LIVE_METRICS, RECOMMENDATIONS, TrendTracker
from ktrdr_assets.paths import dagster_home
from ktrdr_assets.resources.tracking import EXPERIMENT_NAME
from ktrdr_assets_tests.helpers import write_strategy
from ktrdr_assets_tests.live_training import LiveTraining, start_training, synthetic_splits

EPOCHS = 100
SLEEP_PER_EPOCH = 0.02
HOLD = (1, EPOCHS // 2)  # the training waits there until the monitor has printed that epoch
FINAL_METRICS = {
    "final_train_accuracy",
    "final_val_accuracy",
    "final_test_accuracy",
    "train_val_gap",
    "test_macro_f1",
    "training_duration_seconds",
}
# overfitting from epoch 7 on: train falls, val rises again after its best at epoch 3 (see test_trends)
TRAIN = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
VAL = [1.0, 0.9, 0.85, 0.86, 0.87, 0.88, 0.89]
TRAIN_ACC = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8]
VAL_ACC = [0.4, 0.45, 0.5, 0.5, 0.5, 0.5, 0.5]


# --------------------------------------------------------------------------- a store filled by hand
def _epoch_metrics(train, val, train_acc, val_acc, timestamp: int = 0) -> list[Metric]:
    """What training_runs.on_epoch_end logs for a torch model, epoch by epoch."""
    tracker, out = TrendTracker(), []
    for epoch, row in enumerate(zip(train, val, train_acc, val_acc, strict=True), start=1):
        values = dict(zip(("train_loss", "val_loss", "train_acc", "val_acc"), row, strict=True))
        values.update(tracker.update(epoch, row[0], row[1]).metrics())
        out += [Metric(key, value, timestamp + epoch, epoch) for key, value in values.items()]
    return out


def _run(store, tags: dict, metrics: list[Metric], status="FINISHED", start_time=None, nested: bool = True) -> str:
    """A model-training run as nested_training_run makes it: a child of a parent run (unless not `nested`)."""
    tags = {"mlflow.parentRunId": store.parent, **tags} if nested else tags
    run_id = store.client.create_run(store.experiment, start_time=start_time, tags=tags).info.run_id
    if metrics:
        store.client.log_batch(run_id, metrics=metrics)
    if status != "RUNNING":
        store.client.set_terminated(run_id, status)
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment(EXPERIMENT_NAME, artifact_location=(folder / "artifacts").as_uri())
    parent = client.create_run(experiment, start_time=0).info.run_id  # a Dagster run's parent run
    return SimpleNamespace(uri=uri, client=client, experiment=experiment, parent=parent)


@pytest.fixture(scope="module")
def runs(store):
    d1 = str(uuid.uuid4())
    nn = {"symbol": "AAA", "model_type": "neural_network"}
    ids = SimpleNamespace(dagster_run=d1)
    ids.older = _run(store, nn, _epoch_metrics(TRAIN[:2], VAL[:2], TRAIN_ACC[:2], VAL_ACC[:2]), start_time=1000)
    ids.parent = _run(store, {"dagster_run_id": d1}, [Metric("x", 1.0, 0, 0)], start_time=1500, nested=False)
    # the latest AAA neural_network training, but an experiment/HPO one (a top-level run)
    ids.hpo = _run(
        store,
        nn,
        _epoch_metrics(TRAIN[:2], VAL[:2], TRAIN_ACC[:2], VAL_ACC[:2]),
        start_time=5000,
        nested=False,
    )
    ids.nn = _run(store, {**nn, "dagster_run_id": d1}, _epoch_metrics(TRAIN, VAL, TRAIN_ACC, VAL_ACC), start_time=2000)
    ids.lstm = _run(
        store,
        {"symbol": "AAA", "model_type": "lstm", "dagster_run_id": d1},
        _epoch_metrics(TRAIN[:2], VAL[:2], TRAIN_ACC[:2], VAL_ACC[:2]),
        status="FAILED",
        start_time=3000,
    )
    partial = _epoch_metrics(TRAIN[:4], VAL[:4], TRAIN_ACC[:4], VAL_ACC[:4])
    # epoch 4 half written: its losses and accuracies, not yet its trend
    partial = [m for m in partial if m.step < 4 or m.key in ("train_loss", "val_loss", "train_acc", "val_acc")]
    ids.running = _run(store, {"symbol": "BBB", "model_type": "neural_network"}, partial, status="RUNNING")
    ids.empty = _run(store, {"symbol": "CCC", "model_type": "neural_network"}, [], status="RUNNING")
    return ids


def _monitor(store, capsys, *args: str) -> tuple[int, list[str], str]:
    code = monitor_main([*args, "--tracking-uri", store.uri, "--interval", "0.05"])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def test_monitor_prints_each_epoch_of_a_finished_run_then_its_status(store, runs, capsys):
    code, lines, _ = _monitor(store, capsys, "--run-id", runs.nn)
    assert code == 0
    assert lines[0] == f"following AAA/neural_network run {runs.nn} (FINISHED)"
    assert lines[1] == (
        "AAA/neural_network epoch 1: train_loss=1.0000 val_loss=1.0000 train_acc=0.5000 val_acc=0.4000 "
        "best_epoch=1 (0 ago)"
    )
    assert lines[7] == (
        "AAA/neural_network epoch 7: train_loss=0.4000 val_loss=0.8900 train_acc=0.8000 val_acc=0.5000 "
        "best_epoch=3 (4 ago) [overfitting]"
    )
    assert [line.split(":")[0] for line in lines[1:8]] == [f"AAA/neural_network epoch {e}" for e in range(1, 8)]
    assert lines[8:] == [f"AAA/neural_network run {runs.nn}: FINISHED after 7 epochs"]


def test_monitor_json_lines_for_agents(store, runs, capsys):
    code, lines, _ = _monitor(store, capsys, "--run-id", runs.nn, "--json")
    events = [json.loads(line) for line in lines]
    assert code == 0 and [e["event"] for e in events] == ["run"] + ["epoch"] * 7 + ["end"]
    seventh = events[7]
    assert (seventh["epoch"], seventh["val_loss"], seventh["best_epoch"], seventh["is_overfitting"]) == (
        7,
        0.89,
        3.0,
        1.0,
    )
    assert (seventh["run_id"], seventh["symbol"], seventh["model_type"]) == (runs.nn, "AAA", "neural_network")
    assert events[-1] == {
        "event": "end",
        "run_id": runs.nn,
        "symbol": "AAA",
        "model_type": "neural_network",
        "status": "FINISHED",
        "epochs": 7,
    }


def test_symbol_and_model_type_pick_the_latest_training_run(store, runs, capsys):
    code, lines, _ = _monitor(store, capsys, "--symbol", "AAA", "--model-type", "neural_network", "--json")
    assert code == 0 and json.loads(lines[0])["run_id"] == runs.nn  # not runs.older (started earlier) nor runs.hpo
    code, lines, _ = _monitor(store, capsys, "--symbol", "AAA", "--json")
    assert code == 1 and json.loads(lines[0])["run_id"] == runs.lstm  # the latest of any model type: FAILED


def test_pooled_trainings_and_evaluations_are_found_by_their_pooled_type(store, capsys):
    """The pooled network's training (symbol tag `pooled`) and a symbol's evaluation of it carry the model
    type `pooled_<type>`, which --model-type accepts."""
    metrics = _epoch_metrics(TRAIN[:2], VAL[:2], TRAIN_ACC[:2], VAL_ACC[:2])
    training = _run(store, {"symbol": "pooled", "model_type": "pooled_lstm"}, metrics)
    code, lines, _ = _monitor(store, capsys, "--symbol", "pooled", "--model-type", "pooled_lstm", "--json")
    assert code == 0 and json.loads(lines[0])["run_id"] == training
    evaluation = _run(store, {"symbol": "PPP", "model_type": "pooled_neural_network"}, [])
    code, lines, _ = _monitor(store, capsys, "--model-type", "pooled_neural_network", "--json")
    assert code == 0 and json.loads(lines[0])["run_id"] == evaluation


def test_dagster_run_follows_each_training_run_but_not_the_parent(store, runs, capsys):
    code, lines, _ = _monitor(store, capsys, "--dagster-run", runs.dagster_run, "--json")
    events = [json.loads(line) for line in lines]
    ends = {e["run_id"]: (e["status"], e["epochs"]) for e in events if e["event"] == "end"}
    assert ends == {runs.nn: ("FINISHED", 7), runs.lstm: ("FAILED", 2)}
    assert runs.parent not in {e.get("run_id") for e in events}
    assert code == 1  # one of them failed
    code, lines, _ = _monitor(store, capsys, "--dagster-run", runs.dagster_run, "--model-type", "neural_network")
    assert code == 0 and lines[-1] == f"AAA/neural_network run {runs.nn}: FINISHED after 7 epochs"


def test_running_run_prints_complete_epochs_and_holds_back_a_half_written_one(store, runs, capsys):
    code, lines, _ = _monitor(store, capsys, "--run-id", runs.running, "--timeout", "0.3")
    assert code == 124
    assert [line.split(":")[0] for line in lines[1:-1]] == [f"BBB/neural_network epoch {e}" for e in (1, 2, 3)]
    assert lines[-1] == f"timeout: gave up after 0.3 s; still running: {runs.running}"


def test_monitor_prints_new_epochs_as_they_arrive_and_ends_with_the_run(store, capsys):
    metrics = _epoch_metrics(TRAIN[:5], VAL[:5], TRAIN_ACC[:5], VAL_ACC[:5])
    run_id = _run(store, {"symbol": "DDD", "model_type": "lstm"}, [m for m in metrics if m.step <= 2], "RUNNING")

    def finish_training():
        time.sleep(0.3)
        for epoch in (3, 4, 5):
            store.client.log_batch(run_id, metrics=[m for m in metrics if m.step == epoch])
            time.sleep(0.1)
        store.client.set_terminated(run_id, "FINISHED")

    writer = threading.Thread(target=finish_training)
    writer.start()
    code, lines, _ = _monitor(store, capsys, "--run-id", run_id, "--timeout", "20")
    writer.join()
    assert code == 0
    assert [line.split(":")[0] for line in lines[1:-1]] == [f"DDD/lstm epoch {e}" for e in range(1, 6)]
    assert lines[-1] == f"DDD/lstm run {run_id}: FINISHED after 5 epochs"


def test_run_without_metrics_says_waiting_once(store, runs, capsys):
    code, lines, _ = _monitor(store, capsys, "--run-id", runs.empty, "--timeout", "0.3")
    assert code == 124 and lines.count("CCC/neural_network waiting: no metrics yet") == 1
    assert len(lines) == 3  # following, waiting, timeout (several polls, one waiting line)


def test_missing_run_or_invalid_argument_is_exit_code_2_with_a_message(store, runs, capsys, tmp_path):
    code, lines, err = _monitor(store, capsys, "--run-id", "0123456789abcdef")
    assert (code, lines) == (2, [])
    assert err.strip() == f"error: no MLflow run 0123456789abcdef in {store.uri}"
    code, _, err = _monitor(store, capsys, "--symbol", "ZZZ", "--model-type", "lstm")
    assert code == 2 and "no training runs tagged symbol=ZZZ, model_type=lstm" in err
    code = analyze_main(["--symbol", "ZZZ", "--tracking-uri", store.uri])
    assert code == 2 and "no training runs tagged symbol=ZZZ" in capsys.readouterr().err
    code, _, err = _monitor(store, capsys, "--symbol", "../AAA")  # validated as partition keys are
    assert code == 2 and err.startswith("error: invalid partition key '../AAA'")
    assert analyze_main(["--run-id", "x' or '1", "--tracking-uri", store.uri]) == 2
    assert "invalid MLflow run id" in capsys.readouterr().err
    assert analyze_main(["--symbol", "AAA", "--tracking-uri", store.uri, "--strategy", str(tmp_path / "x.yaml")]) == 2
    assert f"{tmp_path / 'x.yaml'}: strategy file not found" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_store_that_cannot_be_read_is_exit_code_3_not_no_such_run(store, runs, capsys, tmp_path, monkeypatch):
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    assert monitor_main(["--symbol", "AAA", "--tracking-uri", missing]) == 3
    assert capsys.readouterr().err.strip() == f"error: no MLflow store at {tmp_path / 'nope.db'}"
    assert not (tmp_path / "nope.db").exists()  # never created
    (tmp_path / "broken.db").write_text("not a database " * 100)
    assert analyze_main(["--run-id", runs.nn, "--tracking-uri", f"sqlite:///{tmp_path / 'broken.db'}"]) == 3
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: MLflow store sqlite:///{tmp_path / 'broken.db'} could not be read")
        and "no MLflow run" not in err
    )
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = f"http://127.0.0.1:{_closed_port()}"  # nothing listens there
    assert monitor_main(["--run-id", runs.nn, "--tracking-uri", server]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: MLflow store {server} could not be read") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "say which run"),
        (["--run-id", "x", "--symbol", "AAA"], "--run-id names one run"),
        (["--dagster-run", "x", "--symbol", "AAA"], "--dagster-run selects by Dagster run"),
        (["--model-type", "cnn"], "invalid choice: 'cnn'"),
    ],
)
def test_bad_arguments_exit_2_with_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        monitor_main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def _dagster_run(status: dg.DagsterRunStatus) -> str:
    run_id = str(uuid.uuid4())
    with dg.DagsterInstance.from_config(str(dagster_home())) as instance:
        instance.add_run(dg.DagsterRun(job_name="materialize_symbol", run_id=run_id, status=status))
    return run_id


def test_dagster_run_still_going_keeps_waiting_for_its_next_training_run(store, capsys):
    going = _dagster_run(dg.DagsterRunStatus.STARTED)
    code, lines, _ = _monitor(store, capsys, "--dagster-run", going, "--timeout", "0.3")  # no training yet
    assert code == 124 and lines[0] == f"waiting: dagster run {going} is still going"
    metrics = _epoch_metrics(TRAIN[:1], VAL[:1], TRAIN_ACC[:1], VAL_ACC[:1])
    run_id = _run(store, {"symbol": "EEE", "model_type": "xgboost", "dagster_run_id": going}, metrics)
    code, lines, _ = _monitor(store, capsys, "--dagster-run", going, "--timeout", "0.3")
    assert code == 124 and f"EEE/xgboost run {run_id}: FINISHED after 1 epochs" in lines
    assert lines[-2:] == [
        f"waiting: dagster run {going} is still going",
        "timeout: gave up after 0.3 s; still running: (waiting for new runs)",
    ]
    done = _dagster_run(dg.DagsterRunStatus.SUCCESS)
    _run(store, {"symbol": "EEE", "model_type": "xgboost", "dagster_run_id": done}, metrics)
    assert _monitor(store, capsys, "--dagster-run", done, "--timeout", "5")[0] == 0


def test_analyze_reports_trend_best_epoch_and_recommendation(store, runs, capsys):
    assert analyze_main(["--run-id", runs.nn, "--tracking-uri", store.uri, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["trend"], result["recommendation"]) == ("overfitting", "add_regularization")
    assert (result["best_epoch"], result["epochs_since_improvement"], result["epochs"]) == (3, 4, 7)
    assert result["change_pct"] == pytest.approx(100 * 0.04 / 0.85)
    assert (result["status"], result["is_overfitting"], result["is_plateaued"]) == ("FINISHED", True, False)
    assert result["last"] == {"train_loss": 0.4, "val_loss": 0.89, "train_acc": 0.8, "val_acc": 0.5}

    assert analyze_main(["--run-id", runs.nn, "--tracking-uri", store.uri]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == (
        f"AAA/neural_network run {runs.nn} (FINISHED), 7 epochs "
        "(last 7: train_loss=0.4000 val_loss=0.8900 train_acc=0.8000 val_acc=0.5000)"
    )
    assert text[1:4] == [
        "  trend: overfitting (val loss +4.7% over the last 5 epochs)",
        "  best epoch: 3, epochs since improvement: 4",
        "  overfitting: yes, plateau: no",
    ]
    assert text[4].startswith("  recommendation: add_regularization - over the last 5 epochs train loss falls")


def test_analyze_uses_the_strategy_rules_and_covers_each_run_of_a_dagster_run(store, runs, capsys, tmp_path):
    # with plateau_epochs 3, epochs 4-7 without progress are a plateau ... but overfitting comes first;
    # with trend_window 7 the whole history's val slope is < 0, so no overfitting: plateau
    strategy = write_strategy(tmp_path / "s.yaml", analytics={"trend_window": 7, "plateau_epochs": 3})
    argv = ["--run-id", runs.nn, "--tracking-uri", store.uri, "--json", "--strategy", str(strategy)]
    assert analyze_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["trend"], result["recommendation"], result["window"]) == ("plateau", "stop_early", 7)

    assert analyze_main(["--dagster-run", runs.dagster_run, "--tracking-uri", store.uri, "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["run_id"], r["status"], r["epochs"]) for r in results] == [
        (runs.nn, "FINISHED", 7),
        (runs.lstm, "FAILED", 2),
    ]


def test_analyze_a_running_run_and_one_without_epochs(store, runs, capsys):
    assert analyze_main(["--run-id", runs.running, "--tracking-uri", store.uri, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)  # epochs 1-4 (epoch 4 has its losses)
    assert (result["status"], result["epochs"], result["best_epoch"], result["trend"]) == (
        "RUNNING",
        4,
        3,
        "improving",
    )
    assert analyze_main(["--run-id", runs.empty, "--tracking-uri", store.uri]) == 1
    assert capsys.readouterr().out.strip() == (
        f"CCC/neural_network run {runs.empty} (RUNNING): no metrics yet: no epoch with train_loss and val_loss"
    )


class _RecordingTracker(NullTracker):
    def __init__(self) -> None:
        self.epochs: list[tuple[int, dict]] = []

    def log_epoch(self, step, metrics):
        self.epochs.append((step, dict(metrics)))


def test_tree_models_log_their_losses_per_round_without_the_torch_trend(tmp_path):
    strategy = load_strategy(write_strategy(tmp_path / "s.yaml"))
    splits, tracker = synthetic_splits(), _RecordingTracker()
    run_dir = tmp_path / "run"
    train_model("xgboost", splits, splits.train, strategy, symbol="X", run_dir=run_dir, run_info={}, tracker=tracker)
    rounds = pd.read_csv(run_dir / "metrics.csv")  # one row per boosting round
    assert [step for step, _ in tracker.epochs] == rounds["epoch"].tolist()
    assert all(set(metrics) == set(EPOCH_COLUMNS) for _, metrics in tracker.epochs), tracker.epochs[0]
    np.testing.assert_allclose([m["val_loss"] for _, m in tracker.epochs], rounds["val_loss"], rtol=1e-5)


# --------------------------------------------------------------------------- end to end: a live training
class _Recorder(io.TextIOBase):
    """stdout that notes, for each line, whether the training was still alive when it was printed, and lets
    the training go on past a held epoch once its line is out."""

    def __init__(self, training: LiveTraining) -> None:
        self.training = training
        self.lines: list[tuple[str, bool]] = []
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *done, self._pending = self._pending.split("\n")
        for line in done:
            self.lines.append((line, self.training.process.poll() is None))
            event = json.loads(line)
            if event["event"] == "epoch" and event["epoch"] in HOLD:
                self.training.release(event["epoch"])
        return len(text)


@pytest.fixture(scope="module")
def live(store, tmp_path_factory):
    """A 100-epoch NN training in a subprocess, followed by `ktrdr-monitor --dagster-run ... --json` here."""
    folder = tmp_path_factory.mktemp("live")
    nn = {"epochs": EPOCHS, "patience": 2 * EPOCHS, "hidden_layers": [8]}
    strategy = write_strategy(folder / "strategy.yaml", models={"neural_network": nn})
    dagster_run = str(uuid.uuid4())
    training = start_training(folder, store.uri, strategy, dagster_run, sleep_s=SLEEP_PER_EPOCH, hold=HOLD)
    try:
        recorder = _Recorder(training)
        with contextlib.redirect_stdout(recorder):
            argv = ["--dagster-run", dagster_run, "--tracking-uri", store.uri, "--interval", "0.25", "--json"]
            code = monitor_main([*argv, "--timeout", "120"])
        holds = training.finish()
    finally:
        training.kill()
    events = [(json.loads(line), alive) for line, alive in recorder.lines]
    run = store.client.get_run(training.run_id)
    return SimpleNamespace(run_id=training.run_id, code=code, events=events, run=run, holds=holds)


def test_monitor_shows_epochs_of_a_live_training_before_it_ends_then_exits(live):
    kinds = [event["event"] for event, _ in live.events]
    waiting = ["waiting"] if kinds[1] == "waiting" else []  # the run may have no epoch yet at the start
    assert kinds == ["run", *waiting] + ["epoch"] * EPOCHS + ["end"], kinds
    epochs = [(event, alive) for event, alive in live.events if event["event"] == "epoch"]
    assert [event["epoch"] for event, _ in epochs] == list(range(1, EPOCHS + 1))
    # the training waited at epochs 1 and 50 until the monitor had printed them: streamed, not dumped at the end
    assert live.holds == [f"epoch {epoch}: released" for epoch in HOLD], live.holds
    assert all(alive for event, alive in epochs if event["epoch"] <= HOLD[-1])
    assert live.events[-1][0] == {
        "event": "end",
        "run_id": live.run_id,
        "symbol": "LIVE",
        "model_type": "neural_network",
        "status": "FINISHED",
        "epochs": EPOCHS,
    }
    assert live.code == 0


def test_live_training_logs_the_live_metrics_and_the_trend_each_epoch(store, live):
    assert set(live.run.data.metrics) == set(LIVE_METRICS) | FINAL_METRICS
    history = {
        key: [m.value for m in sorted(store.client.get_metric_history(live.run_id, key), key=lambda m: m.step)]
        for key in LIVE_METRICS
    }
    assert all(len(values) == EPOCHS for values in history.values())
    # recomputed independently: running best with min_delta 1e-4, np.polyfit slopes over 5-epoch windows
    best, best_epoch, expected_best = math.inf, 0, []
    for epoch, value in enumerate(history["val_loss"], start=1):
        if value < best - 1e-4:
            best, best_epoch = value, epoch
        expected_best.append(best_epoch)
    assert history["best_epoch"] == expected_best
    assert history["epochs_since_improvement"] == [e - b for e, b in enumerate(expected_best, start=1)]
    train, val = np.array(history["train_loss"]), np.array(history["val_loss"])
    overfitting = [0.0] * 4 + [
        float(np.polyfit(range(5), train[e - 5 : e], 1)[0] < 0 < np.polyfit(range(5), val[e - 5 : e], 1)[0])
        for e in range(5, EPOCHS + 1)
    ]
    assert history["is_overfitting"] == overfitting
    assert set(history["is_plateaued"]) <= {0.0, 1.0}


def test_mlflow_metrics_of_a_100_epoch_run_stay_under_50_kb(store, live):
    rows = [
        f"{m.key},{m.value!r},{m.timestamp},{m.step}\n"
        for key in live.run.data.metrics
        for m in store.client.get_metric_history(live.run_id, key)
    ]
    size = sum(len(row.encode()) for row in rows)
    print(f"\nMLflow metrics of a {EPOCHS}-epoch run: {len(rows)} rows, {size} bytes as CSV")
    assert len(rows) == EPOCHS * len(LIVE_METRICS) + len(FINAL_METRICS)
    assert size < 50_000


def test_console_scripts_are_installed():
    scripts = entry_points(group="console_scripts")
    assert scripts["ktrdr-monitor"].load() is monitor_main
    assert scripts["ktrdr-analyze"].load() is analyze_main


def test_analyze_the_live_run(store, live, capsys):
    assert analyze_main(["--run-id", live.run_id, "--tracking-uri", store.uri, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["epochs"], result["status"], result["symbol"]) == (EPOCHS, "FINISHED", "LIVE")
    assert result["best_epoch"] == live.run.data.metrics["best_epoch"]  # the last epoch's live trend
    assert result["epochs_since_improvement"] == live.run.data.metrics["epochs_since_improvement"]
    assert result["recommendation"] == RECOMMENDATIONS[result["trend"]]
