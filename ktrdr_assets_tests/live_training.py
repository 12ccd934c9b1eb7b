"""A real model training in a subprocess, for the tests that follow one while it runs (ktrdr-monitor, ktrdr-mcp).

`start_training` runs `train_model` on synthetic splits under `nested_training_run` (a real MlflowTracker, tagged
like a Dagster run's training) with each epoch slowed by `sleep_s`. At each epoch of `hold` the training waits
(up to HOLD_TIMEOUT_S) until the test calls `release()`, which it does once its follower has shown that epoch: an
epoch followed before the training could go on is an order of events, not a wall-clock margin. The training
prints `epoch N: released` or `epoch N: not released` for each hold; `finish()` returns those lines.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HOLD_TIMEOUT_S = 120  # only a failing follower waits this long


def synthetic_splits(seed: int = 0, rows: int = 400):
    """Hourly bars with 4 features; the label (all three classes) a noisy function of the first."""
    import numpy as np
    import pandas as pd

    from ktrdr_assets.core.config.schema import SplitConfig
    from ktrdr_assets.core.data.splits import LABEL, temporal_split

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4))
    index = pd.date_range("2024-01-01", periods=rows, freq="h")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(4)], index=index)
    frame[LABEL] = np.digitize(X[:, 0] + 0.7 * rng.normal(size=rows), [-0.5, 0.5]).astype(np.int64)
    return temporal_split(frame, list(frame.columns[:4]), SplitConfig(), lookahead=2)


TRAINING_SCRIPT = (
    inspect.getsource(synthetic_splits)
    + f"""
import select, sys, time, types
from pathlib import Path

import mlflow

from ktrdr_assets.core.models.training_runs import train_model
from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.resources.tracking import EXPERIMENT_NAME, ensure_experiment, nested_training_run

uri, strategy_path, run_dir, dagster_run, sleep_s, symbol, seed, hold = sys.argv[1:]
hold = {{int(epoch) for epoch in hold.split(",") if epoch}}
mlflow.set_tracking_uri(uri)
experiment = ensure_experiment(EXPERIMENT_NAME, uri)
mlflow.set_experiment(experiment_id=experiment)
# the Dagster run's parent run, as dagster-mlflow tags it
parent = mlflow.tracking.MlflowClient(uri).create_run(experiment, tags={{"dagster_run_id": dagster_run}})
tags = {{"symbol": symbol, "model_type": "neural_network", "dagster_run_id": dagster_run, "partition": symbol}}
splits = synthetic_splits(int(seed))
with nested_training_run(parent.info.run_id, f"{{symbol}}-nn", tags) as tracker:
    log_epoch = tracker.log_epoch

    def slow_log_epoch(step, metrics):  # a slower epoch, so that the run lasts a few seconds
        time.sleep(float(sleep_s))
        log_epoch(step, metrics)
        if step in hold:  # wait until the follower has shown this epoch
            ready = select.select([sys.stdin], [], [], {HOLD_TIMEOUT_S})[0]
            said = sys.stdin.readline().strip() if ready else ""
            print(f"epoch {{step}}: " + ("released" if said == "go" else "not released"), flush=True)

    tracker.log_epoch = slow_log_epoch
    print(tracker.run_id, flush=True)
    train_model(
        "neural_network", splits, splits.train, load_strategy(strategy_path), symbol=symbol,
        run_dir=Path(run_dir), run_info={{"run_id": dagster_run}}, tracker=tracker,
    )
"""
)


@dataclass
class LiveTraining:
    process: subprocess.Popen
    run_id: str
    stderr: Path
    released: list[int] = field(default_factory=list)

    def release(self, epoch: int) -> None:
        """Let the training go on past `epoch` (a hold epoch it is waiting at, or about to)."""
        self.released.append(epoch)
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 300) -> list[str]:
        """Wait for the training to end; its hold lines. Fails with its stderr if it did not succeed."""
        out, _ = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, self.stderr.read_text()[-3000:]
        return out.splitlines()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_training(
    folder: Path,
    uri: str,
    strategy: Path,
    dagster_run: str,
    *,
    symbol: str = "LIVE",
    seed: int = 0,
    sleep_s: float = 0.02,
    hold: tuple[int, ...] = (),
) -> LiveTraining:
    """Start a neural-network training in a subprocess; returns once its MLflow run exists."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "train.py"
    script.write_text(TRAINING_SCRIPT)
    argv = [str(script), uri, str(strategy), str(folder / "run"), dagster_run, str(sleep_s), symbol, str(seed)]
    argv.append(",".join(str(epoch) for epoch in hold))
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    stderr = folder / "stderr.txt"
    with open(stderr, "w") as err:
        process = subprocess.Popen(
            [sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env
        )
    run_id = process.stdout.readline().strip()
    if not run_id:
        process.wait(timeout=60)
        raise AssertionError(f"the training did not start:\n{stderr.read_text()[-3000:]}")
    return LiveTraining(process, run_id, stderr)
