"""Launch the `materialize_symbol` job for one symbol through the Dagster instance under DAGSTER_HOME, as the UI's
Launch button does: the run is created from the code location (named as in workspace.yaml, so the UI and the
daemon know it) and submitted to the instance's run coordinator. With the default queued coordinator the run
waits in the queue until the Dagster daemon (`make ui`) starts it, within the instance's concurrency limits.
No shell, no subprocess: the definitions are loaded in this process.

Dagster has no public Python call for "submit a run of this job to the instance"; this is the sequence its
`dagster job launch` command and the UI's launch mutation run (workspace -> remote job -> execution plan ->
`instance.create_run` -> `instance.submit_run`), on the pinned dagster 1.13.27 and covered by the launch test.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ktrdr_assets.cli.query_errors import NotFound, StoreUnavailable, one_line
from ktrdr_assets.cli.training_queries import validate_symbol_key
from ktrdr_assets.paths import PROJECT_ROOT, dagster_home

JOB = "materialize_symbol"
LAUNCHED_BY_TAG = "ktrdr/launched_by"


def _location_name() -> str:
    """The code location's name as `dagster dev -w workspace.yaml` (the UI and daemon) knows it."""
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    return location_origins_from_yaml_paths([str(PROJECT_ROOT / "workspace.yaml")])[0].location_name


@contextmanager
def _quiet_dagster():
    """No "no dagster.yaml found, defaulting to ..." on stderr for every launch."""
    log = logging.getLogger("dagster")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def launch_symbol_run(symbol: str, strategy_path: Path | None = None, launched_by: str = "ktrdr-mcp") -> dict[str, Any]:
    """Submit one `materialize_symbol` run for `symbol`; its run id, status and where it is recorded."""
    symbol = validate_symbol_key(symbol)
    import dagster as dg
    from dagster._core.errors import DagsterError
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

    from ktrdr_assets.partitions import discover_sources
    from ktrdr_assets.symbol_registry import register_symbols

    known = sorted(discover_sources())  # the raw files; the symbol is registered as a partition below
    if symbol not in known:
        raise NotFound(f"unknown symbol {symbol!r}: known partitions are {', '.join(known) or 'none'}")
    run_config = {"resources": {"strategy": {"config": {"path": str(strategy_path)}}}} if strategy_path else {}
    location = _location_name()
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="ktrdr_assets.definitions", working_directory=str(PROJECT_ROOT)),
        location_name=location,
    )
    home = dagster_home()
    try:
        with (
            _quiet_dagster(),
            dg.DagsterInstance.from_config(str(home)) as instance,
            WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process,
        ):
            register_symbols(instance, [symbol])  # a raw file dropped a moment ago is a partition now
            workspace = process.create_request_context()
            code_location = workspace.get_code_location(location)
            repository = next(iter(code_location.get_repositories().values()))
            job = repository.get_full_job(JOB)
            plan = code_location.get_execution_plan(
                job, run_config, step_keys_to_execute=None, known_state=None, instance=instance
            )
            run = instance.create_run(
                job_name=job.name,
                run_id=None,
                run_config=run_config,
                resolved_op_selection=None,
                step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
                op_selection=None,
                status=None,
                root_run_id=None,
                parent_run_id=None,
                tags={**job.tags, "dagster/partition": symbol, LAUNCHED_BY_TAG: launched_by},
                job_snapshot=job.job_snapshot,
                execution_plan_snapshot=plan.execution_plan_snapshot,
                parent_job_snapshot=job.parent_job_snapshot,
                remote_job_origin=job.get_remote_origin(),
                job_code_origin=job.get_python_origin(),
                asset_selection=None,
                asset_check_selection=None,
                asset_graph=repository.asset_graph,
            )
            run = instance.submit_run(run.run_id, workspace)
    except DagsterError as err:
        raise StoreUnavailable(f"the Dagster instance under {home} could not launch {JOB}: {one_line(err)}") from None
    queued = run.status == dg.DagsterRunStatus.QUEUED
    return {
        "run_id": run.run_id,
        "job": JOB,
        "symbol": symbol,
        "status": run.status.value,
        "dagster_home": str(home),
        "note": "queued: the Dagster daemon (make ui) starts it" if queued else "launched",
    }
