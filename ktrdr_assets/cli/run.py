"""`ktrdr-run`: materialize the whole graph for one symbol in this process, then the deployment manifest,
and end with a one-paragraph verdict.

The run is recorded in the Dagster instance under DAGSTER_HOME (default: the project's dagster_home/, or
dagster_home/postgres/ with KTRDR_PROFILE=postgres), so it shows in `dagster dev` like a run launched from the
UI, with its full event log. The symbol is registered as a partition first: a raw file dropped a second ago
runs. The terminal gets one line per step (with its time), per epoch and per walk-forward fold (the `progress`
logger).

Exit codes:
  0  every step did its job, whether or not a model qualified for deployment (a symbol without a
     deployable model is a red `every_symbol_deployable` check, an outcome of a healthy run)
  1  a step failed (it is named, with its error, above the verdict); the other models are still selected
  2  bad arguments: an invalid symbol, or no raw bar file for it
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
import warnings
from typing import Any

from ktrdr_assets.paths import dagster_home, warehouse_dir

EXIT_OK, EXIT_STEP_FAILED, EXIT_USAGE = 0, 1, 2


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ktrdr-run",
        description=__doc__.splitlines()[0],
        epilog="exit codes: 0 every step did its job (deployed or not), 1 a step failed, 2 bad arguments",
    )
    parser.add_argument("--symbol", default="EURUSD", help="partition key (a file in data/raw/)")
    parser.add_argument("--strategy", default=None, help="strategy YAML (default: the shipped one)")
    parser.add_argument("--verbose", action="store_true", help="Dagster's full DEBUG console instead of progress")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    os.environ.setdefault("DAGSTER_HOME", str(dagster_home()))  # the KTRDR_PROFILE's folder by default
    if not args.verbose:  # a person reads this terminal: no library notices between the progress lines
        warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview).*")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        logging.getLogger("mlflow").setLevel(logging.WARNING)

    import dagster as dg

    from ktrdr_assets.definitions import defs
    from ktrdr_assets.jobs.retraining import MANIFEST_JOB, SELECT_JOB, SYMBOL_JOB
    from ktrdr_assets.partitions import PartitionKeyError, scan_raw_folder, validate_symbol
    from ktrdr_assets.symbol_registry import register_symbols

    try:
        validate_symbol(args.symbol)
    except PartitionKeyError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    scan = scan_raw_folder()
    if args.symbol not in scan.sources:
        why = "".join(f"; not used: {line}" for line in scan.reasons_for(args.symbol))
        print(f"error: no raw bar file for {args.symbol!r}{why}; known: {sorted(scan.sources)}", file=sys.stderr)
        return EXIT_USAGE
    run_config: dict[str, Any] = {} if args.verbose else {"loggers": {"progress": {}}}
    if args.strategy:
        run_config["resources"] = {"strategy": {"config": {"path": args.strategy}}}
    failures: list[str] = []
    with dg.DagsterInstance.get() as instance:
        register_symbols(instance, [args.symbol])  # a file dropped a second ago is a partition now
        result = _execute(defs, SYMBOL_JOB, instance, run_config, args.symbol, failures)
        done = {e.asset_key.to_user_string() for e in _materializations(result)}
        if not result.success and "temporal_splits" in done and "model_selection" not in done:
            print("\na model failed: selecting among the models that trained")
            _execute(defs, SELECT_JOB, instance, run_config, args.symbol, failures)
        _execute(defs, MANIFEST_JOB, instance, run_config, None, failures)
    print()
    print(verdict(args.symbol, failures))
    return EXIT_OK if not failures else EXIT_STEP_FAILED


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _model_line(name: str, entry: dict[str, Any], rejected: list[str] | None) -> str:
    """One model: its evidence figures and verdict (the failed gates; their reasons are in model_selection)."""
    figures = (
        f"out-of-fold {_fmt(entry.get('oof_accuracy'))} vs baseline {_fmt(entry.get('baseline'))} "
        f"(p {_fmt(entry.get('p_value'), '.2g')}), gap {_fmt(entry.get('train_val_gap'), '+.3f')}, "
        f"holdout {_fmt(entry.get('test_accuracy'))}"
    )
    if entry.get("deployed"):
        status = "DEPLOYED"
    elif rejected and all(":" in reason for reason in rejected) and entry:
        status = "rejected by " + ", ".join(dict.fromkeys(reason.split(":")[0] for reason in rejected))
    else:
        status = "; ".join(rejected or ["passed, not selected"])
    return f"  {name:<14} {figures}: {status}" if entry else f"  {name:<14} {status}"


def verdict(symbol: str, failures: list[str]) -> str:
    """Per-model lines, then one paragraph: what was deployed for `symbol` and why, the manifest's counts,
    and what the exit code will say."""
    from ktrdr_assets.io import read_asset_if_present

    selection = read_asset_if_present("model_selection", symbol)
    manifest = read_asset_if_present("deployment_manifest", None)
    lines = []
    if selection is None:
        text = f"{symbol}: no selection was made (the run stopped before model_selection)."
    else:
        candidates = selection.get("candidates") or {}
        rejected = selection.get("rejected") or {}
        for name in sorted(set(candidates) | set(rejected)):
            lines.append(_model_line(name, candidates.get(name, {}), rejected.get(name)))
        chosen = selection.get("selected_model")
        if chosen:
            sharpe = selection.get("sharpe") or {}
            registry = selection.get("registry") or {}
            alias = f", MLflow champion v{registry['version']}" if registry.get("registered") else ""
            get = selection.get
            trials = (get("trials") or {}).get("total", "?")
            text = (
                f"{symbol}: {chosen} deployed{alias}. Its walk-forward evidence: out-of-fold accuracy "
                f"{_fmt(get('oof_accuracy'))} against a best naive baseline of {_fmt(get('baseline'))} "
                f"(p = {_fmt(get('p_value'), '.2g')}), mean fold gap {_fmt(get('train_val_gap'), '+.3f')}; "
                f"untouched holdout accuracy {_fmt(get('test_accuracy'))}; out-of-fold deflated Sharpe "
                f"probability {_fmt(sharpe.get('dsr'))} over {trials} trials."
            )
        else:
            text = (
                f"{symbol}: no model deployed. None of the {len(candidates)} trained models showed an edge its "
                "walk-forward evidence could tell from luck or from a naive baseline (the failed gates are above, "
                f"their reasons in model_selection/{symbol}.json and on the checks in the UI); that is an honest "
                "outcome, not a failure."
            )
    if manifest is not None:
        summary = manifest["summary"]
        missing = sorted(s for s, e in manifest["selections"].items() if not e.get("selected_model"))
        text += (
            f" Deployment manifest: {summary['models_selected']} of {summary['total_symbols']} symbols deployable"
            + (f"; check every_symbol_deployable is red for {', '.join(missing)}." if missing else ".")
        )
        lost = (manifest.get("alerts") or {}).get("newly_lost") or {}
        if lost:
            text += f" Newly lost a current deployable model: {', '.join(sorted(lost))}."
    if failures:
        text += f" The run FAILED in {', '.join(failures)} (exit code 1)."
    else:
        text += " Every step did its job (exit code 0)."
    text += f" Results under {warehouse_dir()}; the full event log in DAGSTER_HOME={os.environ.get('DAGSTER_HOME')}."
    paragraph = textwrap.fill(text, width=110, break_on_hyphens=False, break_long_words=False)
    return "\n".join([*lines, "", paragraph]) if lines else paragraph


def _execute(defs, job_name: str, instance, run_config: dict, partition: str | None, failures: list[str]):
    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(
        partition_key=partition, instance=instance, run_config=run_config, raise_on_error=False
    )
    _report(job_name, result)
    for event in result.all_events:
        if event.is_step_failure:
            failures.append(f"{job_name}.{event.step_key}")
    if not result.success and not any(f.startswith(f"{job_name}.") for f in failures):
        failures.append(job_name)
    return result


def _materializations(result):
    return [e.step_materialization_data.materialization for e in result.get_asset_materialization_events()]


def _failure_message(data) -> str:
    """A `dagster.Failure`'s description (a user's bad file, one line), else the error's message."""
    user = data.user_failure_data
    return user.description if user is not None and user.description else data.error.message.strip()


def _report(job_name: str, result) -> None:
    print(f"\n{job_name} run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}")
    for mat in _materializations(result):
        path = mat.metadata.get("path")
        print(f"  materialized {mat.asset_key.to_user_string():<24} {path.value if path else ''}")
    checks = result.get_asset_check_evaluations()
    red = [f"{e.asset_key.to_user_string()}.{e.check_name}" for e in checks if not e.passed]
    if checks:
        print(f"  checks: {len(checks) - len(red)} passed, {len(red)} red" + (f": {', '.join(red)}" if red else ""))
    from ktrdr_assets.progress import error_line

    for event in result.all_events:
        if event.is_step_failure:
            print(f"  step failed: {event.step_key}: {error_line(event)}")


if __name__ == "__main__":
    raise SystemExit(main())
