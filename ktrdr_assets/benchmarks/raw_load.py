"""Raw-file loading: the ohlcv loader (`load_bars`) vs plain `pandas.read_csv`, side by side on one big CSV.

Run from the repository root:
  .venv/bin/python -m ktrdr_assets.benchmarks.raw_load [--bars 3300000] [--layout iso|dayfirst|gzip|all] [--repeats 3]

Data (written to a temporary folder, deleted at the end; never part of the test suite at this size): a
seeded random walk of `--bars` one-minute bars, `Time,Open,High,Low,Close,Volume`, prices with 5 decimals,
as an FX export writes them: `iso` stamps `2010-01-01 00:00:00` (about 190 MB for 3.3 M bars), `dayfirst`
stamps `01.01.2010 00:00:00.000` (the EURUSD layout, about 200 MB) and `gzip`, the iso file as `.csv.gz`.

Each run is a fresh Python process that imports pandas, pyarrow and the loader (the same imports for both
contenders), records its resident memory (VmRSS) as the baseline, times one call and reads its peak
resident memory (VmHWM of /proc/self/status: the high-water mark of this process image; `ru_maxrss` would
not do, Linux carries it over from the parent through fork and exec). The table shows, per layout and contender,
the best and median wall time of `--repeats` runs, the median peak memory over the baseline and as a
multiple of the CSV text's size (for gzip: of the text before compression), the whole process's peak as
such a multiple, and the loader's median time over pandas'. The loader does all of its work (stamps
parsed to UTC, checks, float64 OHLCV); pandas only splits the text into columns (stamps stay strings).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

SEED = 7
LAYOUTS = ("iso", "dayfirst", "gzip")
CONTENDERS = ("load_bars", "pandas.read_csv")
_STAMP_FORMATS = {"iso": "%Y-%m-%d %H:%M:%S", "dayfirst": "%d.%m.%Y %H:%M:%S.000", "gzip": "%Y-%m-%d %H:%M:%S"}
MB = 2**20


def write_bars_csv(path: Path, n_bars: int, layout: str, seed: int = SEED) -> tuple[Path, float]:
    """`n_bars` one-minute random-walk bars as a CSV in `layout` (gzip: the iso text, compressed), and the
    size of the CSV text in MB (before compression)."""
    rng = np.random.default_rng(seed)
    close = np.round(1.1 * np.exp(np.cumsum(rng.normal(0.0, 3e-4, n_bars))), 5)
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.round(np.abs(rng.normal(0.0, 2e-4, (2, n_bars))), 5)
    stamps = pd.date_range("2010-01-01", periods=n_bars, freq="min").strftime(_STAMP_FORMATS[layout])
    table = pa.table(
        {
            "Time": pa.array(stamps.to_numpy(dtype=object), pa.string()),
            "Open": open_,
            "High": np.round(np.maximum(open_, close) + spread[0], 5),
            "Low": np.round(np.minimum(open_, close) - spread[1], 5),
            "Close": close,
            "Volume": np.round(rng.lognormal(4.0, 1.0, n_bars), 2),
        }
    )
    options = pcsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as out:
        out.write(b"Time,Open,High,Low,Close,Volume\n")
        pcsv.write_csv(table, out, write_options=options)
    text_mb = path.stat().st_size / MB
    if layout != "gzip":
        return path, text_mb
    packed = path.with_name(path.name + ".gz")
    with open(path, "rb") as src, gzip.open(packed, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    path.unlink()
    return packed, text_mb


def measure(contender: str, path: Path) -> dict:
    """One timed call in this process: wall seconds, baseline and peak resident memory (MB), rows."""
    import gc

    from ktrdr_assets.core.data.bars import load_bars  # imported by both contenders: equal baselines

    gc.collect()
    baseline = _status_mb("VmRSS")
    start = time.perf_counter()
    rows = len(load_bars(path, required_bars=1) if contender == "load_bars" else pd.read_csv(path))
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    return {"seconds": seconds, "baseline_mb": baseline, "peak_mb": peak, "rows": rows}


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: resident at most), in MB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:")) / 1024


def _run_fresh(contender: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "ktrdr_assets.benchmarks.raw_load", "--measure", contender, str(path)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"{contender} on {path.name} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict], text_mb: float) -> dict:
    over = statistics.median(r["peak_mb"] - r["baseline_mb"] for r in runs)
    peak = statistics.median(r["peak_mb"] for r in runs)
    return {
        "best_s": min(r["seconds"] for r in runs),
        "median_s": statistics.median(r["seconds"] for r in runs),
        "over_baseline_mb": over,
        "x_file": over / text_mb,
        "peak_x_file": peak / text_mb,
        "rows": runs[0]["rows"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=3_300_000)
    parser.add_argument("--layout", choices=[*LAYOUTS, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", nargs=2, metavar=("CONTENDER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return {}
    layouts = LAYOUTS if args.layout == "all" else (args.layout,)
    results: dict = {}
    print(
        f"{'layout':<9} {'file MB':>8} {'contender':<16} {'best s':>7} {'median s':>9} "
        f"{'MB over base':>12} {'x file':>7} {'peak x file':>11} {'time / pandas':>13}"
    )
    with tempfile.TemporaryDirectory(prefix="ktrdr-raw-load-") as folder:
        for layout in layouts:
            path, text_mb = write_bars_csv(Path(folder) / "BENCH_1m.csv", args.bars, layout)
            file_mb = path.stat().st_size / MB
            runs: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
            for _ in range(args.repeats):  # interleaved, so both see the same load on the machine
                for name in CONTENDERS:
                    runs[name].append(_run_fresh(name, path))
            rows = {name: _summary(r, text_mb) for name, r in runs.items()}
            results[layout] = {"file_mb": file_mb, "text_mb": text_mb, **rows}
            for name, row in rows.items():
                ratio = row["median_s"] / rows["pandas.read_csv"]["median_s"]
                print(
                    f"{layout:<9} {file_mb:>8.1f} {name:<16} {row['best_s']:>7.2f} {row['median_s']:>9.2f} "
                    f"{row['over_baseline_mb']:>12.0f} {row['x_file']:>7.2f} {row['peak_x_file']:>11.2f} {ratio:>13.2f}"
                )
            path.unlink()
    return results


if __name__ == "__main__":
    main()
