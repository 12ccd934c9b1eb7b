"""Runs launched the way the UI, the schedule and the sensors launch them: through the instance's run queue.

`QueuedDeployment` holds a Dagster instance (its DAGSTER_HOME's dagster.yaml: the queued run coordinator and
its limits, the pools) and the project's code location served by a gRPC server process, as `dagster dev` and
the daemon serve it. `launch` submits a run with the UI's own GraphQL mutation (`launchPipelineExecution`);
`drain` does what the daemon's run-queue loop does (Dagster's `QueuedRunCoordinatorDaemon`, one iteration at
a time) until every submitted run has finished. Each run executes in its own process, started by the code
server with the instance's run launcher: concurrent runs are real concurrent processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ktrdr_assets.paths import PROJECT_ROOT

LOCATION = "ktrdr_assets"
REPOSITORY = "__repository__"
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
STEP_END = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


@dataclass
class QueuedDeployment:
    instance: dg.DagsterInstance
    process_context: Any
    daemon: Any
    launched: list[str] = field(default_factory=list)

    def launch(self, job: str, *, partition: str | None = None, run_config: Mapping | None = None) -> str:
        """Submit a run as the UI's launchpad does; returns its id (the run is QUEUED)."""
        from dagster_graphql.client.client_queries import CLIENT_SUBMIT_PIPELINE_RUN_MUTATION
        from dagster_graphql.test.utils import execute_dagster_graphql

        tags = [{"key": "dagster/partition", "value": partition}] if partition else []
        params = {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "pipelineName": job},
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {"tags": tags},
        }
        context = self.process_context.create_request_context()
        result = execute_dagster_graphql(context, CLIENT_SUBMIT_PIPELINE_RUN_MUTATION, {"executionParams": params})
        launched = result.data["launchPipelineExecution"]
        if launched["__typename"] != "LaunchRunSuccess" and "run" not in launched:
            raise AssertionError(f"launching {job} {partition or ''} failed: {launched}")
        run_id = launched["run"]["runId"]
        self.launched.append(run_id)
        return run_id

    def launch_request(self, request: dg.RunRequest, default_job: str, run_config: Mapping | None = None) -> str:
        """Submit the run a sensor or schedule requested (with `run_config` instead of its own, when given)."""
        config = request.run_config if run_config is None else run_config
        return self.launch(request.job_name or default_job, partition=request.partition_key, run_config=config)

    def drain(
        self,
        on_finished: Callable[[dg.DagsterRun], None] | None = None,
        timeout_s: float = 600.0,
        poll_s: float = 0.5,
    ) -> dict[str, dg.DagsterRun]:
        """Dequeue (within the instance's limits) and wait until every launched run has finished;
        `on_finished(run)` is called once per run as it finishes (it may launch more, as a run status sensor
        does)."""
        deadline = time.monotonic() + timeout_s
        reported: set[str] = set()
        while True:
            list(self.daemon.run_iteration(self.process_context))
            runs = {run_id: self.instance.get_run_by_id(run_id) for run_id in list(self.launched)}
            for run_id, run in runs.items():
                if run.status in TERMINAL and run_id not in reported:
                    reported.add(run_id)
                    if on_finished is not None:
                        on_finished(run)
            if len(reported) == len(self.launched):
                return {run_id: self.instance.get_run_by_id(run_id) for run_id in self.launched}
            if time.monotonic() > deadline:
                states = {run_id: run.status.value for run_id, run in runs.items()}
                raise TimeoutError(f"runs still not finished after {timeout_s:g} s: {states}")
            time.sleep(poll_s)


@contextmanager
def queued_deployment(instance: dg.DagsterInstance) -> Iterator[QueuedDeployment]:
    """The project's code location in a gRPC server process (its environment: this process's), and a
    run-queue daemon, on `instance`."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    target = ModuleTarget(
        module_name="ktrdr_assets.definitions",
        attribute=None,
        working_directory=str(PROJECT_ROOT),
        location_name=LOCATION,
    )
    with ExitStack() as stack:
        context = stack.enter_context(WorkspaceProcessContext(instance, target))
        entry = context.create_request_context().get_code_location_entries()[LOCATION]
        if entry.load_error is not None:
            raise AssertionError(f"the code location did not load: {entry.load_error.to_string()}")
        daemon = stack.enter_context(QueuedRunCoordinatorDaemon(interval_seconds=1))
        yield QueuedDeployment(instance, context, daemon)


def step_intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """step key -> (STEP_START, STEP_SUCCESS/FAILURE) timestamps of one run."""
    starts: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_START, *STEP_END}):
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            starts[entry.step_key] = entry.timestamp
        else:
            out[entry.step_key] = (starts[entry.step_key], entry.timestamp)
    return out


def overlapping(intervals: Mapping[str, tuple[float, float]]) -> list[tuple[str, str]]:
    """Pairs of named intervals that overlap in time."""
    items = sorted(intervals.items(), key=lambda item: item[1][0])
    return [(a, b) for i, (a, (_, a_end)) in enumerate(items) for b, (b_start, _) in items[i + 1 :] if b_start < a_end]
