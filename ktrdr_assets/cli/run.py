"""`ktrdr-run`: materialize the whole graph for one symbol in this process and say where results are.

The run is recorded in the Dagster instance under DAGSTER_HOME (default: the project's dagster_home/),
so it shows in `dagster dev` like a run launched from the UI.
"""

from __future__ import annotations

import argparse
import os
import sys

from ktrdr_assets.paths import PROJECT_ROOT, warehouse_dir


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ktrdr-run", description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default="EURUSD", help="partition key (a file in data/raw/)")
    parser.add_argument("--strategy", default=None, help="strategy YAML (default: the shipped one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "dagster_home"))

    import dagster as dg

    from ktrdr_assets.definitions import defs
    from ktrdr_assets.jobs.retraining import MANIFEST_JOB, SELECT_JOB, SYMBOL_JOB
    from ktrdr_assets.partitions import PartitionKeyError, scan_raw_folder, validate_symbol

    try:
        validate_symbol(args.symbol)
    except PartitionKeyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    scan = scan_raw_folder()
    if args.symbol not in scan.sources:
        why = "".join(f"; not used: {line}" for line in scan.reasons_for(args.symbol))
        print(f"error: no raw bar file for {args.symbol!r}{why}; known: {sorted(scan.sources)}", file=sys.stderr)
        return 2
    run_config = {}
    if args.strategy:
        run_config = {"resources": {"strategy": {"config": {"path": args.strategy}}}}
    with dg.DagsterInstance.get() as instance:
        result = _execute(defs, SYMBOL_JOB, instance, run_config, args.symbol)
        done = {e.asset_key.to_user_string() for e in _materializations(result)}
        if not result.success and "temporal_splits" in done and "model_selection" not in done:
            print("\na model failed: selecting among the models that trained")
            _execute(defs, SELECT_JOB, instance, run_config, args.symbol)
        _execute(defs, MANIFEST_JOB, instance, run_config, None)
    _summarize(args.symbol)
    return 0 if result.success else 1


def _summarize(symbol: str) -> None:
    """One readable verdict at the end: what was selected for the symbol, and the manifest's counts."""
    from ktrdr_assets.io import read_asset

    try:
        selection = read_asset("model_selection", symbol)
        manifest = read_asset("deployment_manifest", None)
    except FileNotFoundError:
        return
    chosen = selection.get("selected_model")
    verdict = f"selected {chosen}" if chosen else f"no model selected ({selection.get('action')})"
    print(f"\n{symbol}: {verdict}: {selection.get('reason')}")
    for name, reasons in sorted(selection.get("rejected", {}).items()):
        print(f"  {name}: {'; '.join(reasons)}")
    summary = manifest["summary"]
    print(
        f"deployment manifest: {summary['models_selected']} of {summary['total_symbols']} symbols deployable, "
        f"{summary['manual_review_needed']} need manual review"
    )


def _execute(defs, job_name: str, instance, run_config: dict, partition: str | None):
    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(
        partition_key=partition, instance=instance, run_config=run_config, raise_on_error=False
    )
    _report(job_name, result)
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
    for event in result.get_asset_check_evaluations():
        status = "passed" if event.passed else f"FAILED ({event.severity.value})"
        print(f"  check {event.asset_key.to_user_string()}.{event.check_name:<32} {status}")
    for event in result.all_events:
        if event.is_step_failure:
            print(f"  step failed: {event.step_key}: {_failure_message(event.event_specific_data)}")
    print(f"results under {warehouse_dir()}; runs in DAGSTER_HOME={os.environ['DAGSTER_HOME']}")


if __name__ == "__main__":
    raise SystemExit(main())
