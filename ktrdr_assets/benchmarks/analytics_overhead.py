"""Training-analytics overhead: the NN and the LSTM trained with analytics on vs off, same data and seed.

Run from the repository root:  .venv/bin/python -m ktrdr_assets.benchmarks.analytics_overhead [--repeats 5]

Data: a 5,000-bar random walk with mildly autocorrelated returns, 30 derived features (lagged
returns, rolling means/stds, distances to moving averages and to rolling highs/lows, z-scores),
labels from the 5-bar forward return (SELL / HOLD / BUY), a chronological 70/15/15 split, features
standardised with the train split's statistics. Every run trains a fixed number of epochs (early
stopping is out of reach), so on and off do identical training work; 'on' also writes the three
files. Runs are interleaved (off/on, then on/off) after one untimed warm-up of each; the table
shows medians of the wall time of `train_torch_model`, their ratio, the ratio of the fastest runs
(the least disturbed by other load) and the spread of the 'off' runs (the noise floor). Wall-time
ratios are only as steady as the machine; the last column ('inside') is immune to other load: the
time spent inside the analytics calls of further 'on' runs over the rest of those runs. Last, the
size of a 100-epoch metrics.csv.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.models.lstm import LSTMClassifier, LSTMConfig
from ktrdr_assets.core.models.neural_network import MLPClassifier, NeuralNetworkConfig
from ktrdr_assets.core.training import trainer as trainer_module
from ktrdr_assets.core.training.analytics import EpochAnalytics
from ktrdr_assets.core.training.analytics_export import LiveMetricsCsv
from ktrdr_assets.core.training.trainer import train_torch_model
from ktrdr_assets.core.training.windows import WindowDataset

SEED = 42


def random_walk_features(n_bars: int = 5_000, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, 30) float32, labels (n,)) of a synthetic price path; warm-up and tail rows dropped."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, 0.01, n_bars)
    returns = pd.Series(shocks).ewm(alpha=0.9).mean()  # slight autocorrelation: something to learn
    price = np.exp(returns.cumsum())
    columns = {f"ret_lag{k}": returns.shift(k) for k in range(10)}
    for window in (5, 10, 20, 50):
        columns[f"ret_mean{window}"] = returns.rolling(window).mean()
        columns[f"ret_std{window}"] = returns.rolling(window).std()
        columns[f"dist_ma{window}"] = price / price.rolling(window).mean() - 1.0
    for window in (20, 50):
        columns[f"zscore{window}"] = (price - price.rolling(window).mean()) / price.rolling(window).std()
        columns[f"dist_high{window}"] = price / price.rolling(window).max() - 1.0
        columns[f"dist_low{window}"] = price / price.rolling(window).min() - 1.0
    gains, losses = returns.clip(lower=0).rolling(14).mean(), (-returns.clip(upper=0)).rolling(14).mean()
    columns["rsi14"] = gains / (gains + losses)
    columns["momentum20"] = price / price.shift(20) - 1.0
    frame = pd.DataFrame(columns)
    forward = price.shift(-5) / price - 1.0
    band = 0.5 * forward.std()
    labels = np.where(forward > band, 2, np.where(forward < -band, 0, 1))
    valid = frame.notna().all(axis=1) & forward.notna()
    return frame[valid].to_numpy(np.float32), labels[valid.to_numpy()]


def splits(X: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Chronological 70/15/15 train/validation/test, standardised with the train statistics."""
    a, b = int(len(X) * 0.70), int(len(X) * 0.85)
    mean, std = X[:a].mean(axis=0), X[:a].std(axis=0) + 1e-8
    scaled = (X - mean) / std
    return [(scaled[:a], y[:a]), (scaled[a:b], y[a:b]), (scaled[b:], y[b:])]


WIDTHS = (7, 10, 10, 9, 16, 13, 10)

# Everything the trainer does only when analytics is on (the softmax of the validation logits aside).
ANALYTICS_CALLS = (
    (EpochAnalytics, "__init__"),
    (EpochAnalytics, "start_epoch"),
    (EpochAnalytics, "record_gradients"),
    (EpochAnalytics, "collect"),
    (LiveMetricsCsv, "__init__"),
    (LiveMetricsCsv, "append"),
    (trainer_module, "_export_analytics"),  # alerts, detailed_metrics.json and the other files
)


@contextmanager
def timed_analytics() -> Iterator[list[float]]:
    """Wrap the analytics calls with timers; yields a one-item list holding their total seconds."""
    total = [0.0]
    originals = [(owner, name, getattr(owner, name)) for owner, name in ANALYTICS_CALLS]

    def timed(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - start

        return wrapper

    for owner, name, function in originals:
        setattr(owner, name, timed(function))
    try:
        yield total
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)


def _run(kind: str, data, epochs: int, analytics_on: bool, out_dir: Path | None) -> float:
    (X_train, y_train), (X_val, y_val) = data
    if kind == "nn":
        config = NeuralNetworkConfig(epochs=epochs, patience=10_000)
        model = MLPClassifier.from_config(config, X_train.shape[1])
        train, validation = (X_train, y_train), (X_val, y_val)
    else:
        config = LSTMConfig(epochs=epochs, patience=10_000)
        model = LSTMClassifier.from_config(config, X_train.shape[1])
        train = WindowDataset(X_train, y_train, config.lookback)
        validation = WindowDataset(X_val, y_val, config.lookback)
    analytics = AnalyticsConfig(enabled=analytics_on)
    start = time.perf_counter()
    result = train_torch_model(
        model,
        train,
        validation,
        config,
        analytics,
        seed=SEED,
        run_info={"run_id": f"bench/{kind}"},
        analytics_dir=out_dir if analytics_on else None,
    )
    elapsed = time.perf_counter() - start
    assert result.status == "success" and len(result.history) == epochs, result.error
    return elapsed


def overhead(kind: str, data, epochs: int, repeats: int, out_dir: Path) -> dict[str, float]:
    _run(kind, data, 1, False, None)  # warm-up: first-call costs of torch and sklearn
    _run(kind, data, 1, True, out_dir)
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(repeats):
        for analytics_on in (False, True) if r % 2 == 0 else (True, False):
            times[analytics_on].append(_run(kind, data, epochs, analytics_on, out_dir))
    with timed_analytics() as analytics_seconds:
        on_total = sum(_run(kind, data, epochs, True, out_dir) for _ in range(repeats))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    return {
        "inside": analytics_seconds[0] / (on_total - analytics_seconds[0]),
        "off_s": off,
        "on_s": on,
        "ratio": on / off,
        "min_ratio": min(times[True]) / min(times[False]),
        "spread_off": max(times[False]) / min(times[False]),
    }


def csv_size_100_epochs(data, out_dir: Path) -> int:
    (X_train, y_train), (X_val, y_val) = data
    config = NeuralNetworkConfig(epochs=100, patience=10_000, hidden_layers=(32, 16))
    small = ((X_train[:800], y_train[:800]), (X_val[:200], y_val[:200]))
    train_torch_model(
        MLPClassifier.from_config(config, X_train.shape[1]),
        *small,
        config,
        AnalyticsConfig(),
        seed=SEED,
        run_info={"run_id": "bench/csv-size"},
        analytics_dir=out_dir,
    )
    return (out_dir / "metrics.csv").stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nn-epochs", type=int, default=10)
    parser.add_argument("--lstm-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y = random_walk_features()
    train, validation, _ = splits(X, y)
    print(
        f"data: {len(X)} rows x {X.shape[1]} features "
        f"(train {len(train[1])}, validation {len(validation[1])}); "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"device {'cuda' if torch.cuda.is_available() else 'cpu'}; {args.repeats} interleaved repeats"
    )
    header = ("model", "epochs", "off (s)", "on (s)", "on/off", "min on/min off", "off max/min", "inside")
    print(f"{header[0]:<6}" + "".join(f"{h:>{w}}" for h, w in zip(header[1:], WIDTHS, strict=True)))
    with tempfile.TemporaryDirectory() as tmp:
        for kind, epochs in (("nn", args.nn_epochs), ("lstm", args.lstm_epochs)):
            row = overhead(kind, (train, validation), epochs, args.repeats, Path(tmp) / kind)
            print(
                f"{kind:<6}{epochs:>7}{row['off_s']:>10.2f}{row['on_s']:>10.2f}{row['ratio']:>9.3f}"
                f"{row['min_ratio']:>16.3f}{row['spread_off']:>13.3f}{row['inside']:>10.2%}"
            )
        size = csv_size_100_epochs((train, validation), Path(tmp) / "csv")
    print(f"metrics.csv after 100 epochs: {size / 1024:.1f} KB ({size} bytes)")


if __name__ == "__main__":
    main()
