"""On Kubernetes (`KTRDR_EXECUTOR=k8s`) every step of `materialize_symbol` is its own Job under dagster-k8s's
`k8s_job_executor`; the torch model steps request one NVIDIA GPU on a GPU node. The step's Job is built here
with dagster-k8s's own code, from the step tags of the real execution plan, as `K8sStepHandler.launch_step`
builds it (container context merged with the step's `dagster-k8s/config` tag, then `construct_dagster_k8s_job`)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from ktrdr_assets import deployment
from ktrdr_assets.paths import PROJECT_ROOT

dagster_k8s = pytest.importorskip("dagster_k8s", reason="the [k8s] extra (dagster-k8s) is not installed")
from dagster_k8s.container_context import K8sContainerContext  # noqa: E402
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config  # noqa: E402

HELM_VALUES = PROJECT_ROOT / "deploy" / "helm" / "values.yaml"


def _step_job(step_key: str):
    """The Kubernetes Job k8s_job_executor would create for `step_key` of materialize_symbol."""
    from dagster._core.execution.api import create_execution_plan

    from ktrdr_assets.definitions import defs

    job = defs.resolve_job_def("materialize_symbol")
    plan = create_execution_plan(job, run_config={}, instance_ref=None, tags={"dagster/partition": "MSFT"})
    tags = plan.get_step_by_key(step_key).tags
    context = K8sContainerContext(namespace="ktrdr").merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags))
    )
    job_config = DagsterK8sJobConfig(
        job_image="registry.example/ktrdr-assets:1",
        dagster_home="/opt/dagster/dagster_home",
        instance_config_map="dagster-instance",
    )
    return construct_dagster_k8s_job(
        job_config=job_config,
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{step_key.replace('_', '-')}",
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
    )


@pytest.mark.parametrize("step", ["neural_network_model", "lstm_model"])
def test_torch_steps_request_one_gpu_on_a_gpu_node(step: str) -> None:
    job = _step_job(step)
    pod = job.spec.template.spec
    (container,) = pod.containers
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    assert pod.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert container.image == "registry.example/ktrdr-assets:1"


@pytest.mark.parametrize("step", ["ohlcv", "xgboost_model", "model_selection"])
def test_other_steps_request_no_gpu(step: str) -> None:
    pod = _step_job(step).spec.template.spec
    assert not (pod.containers[0].resources and pod.containers[0].resources.limits)
    assert not pod.node_selector and not pod.tolerations


def test_gpu_node_labels_and_taint_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(deployment.GPU_NODE_SELECTOR_ENV, "cloud.google.com/gke-accelerator=nvidia-l4, pool=gpu")
    monkeypatch.setenv(deployment.GPU_TOLERATION_ENV, "none")
    config = deployment.gpu_step_k8s_config()
    selector = {"cloud.google.com/gke-accelerator": "nvidia-l4", "pool": "gpu"}
    assert config["pod_spec_config"] == {"node_selector": selector}  # no toleration
    monkeypatch.setenv(deployment.GPU_NODE_SELECTOR_ENV, "no-equals-sign")
    with pytest.raises(ValueError, match="KTRDR_GPU_NODE_SELECTOR: expected key=value"):
        deployment.gpu_step_k8s_config()


def test_the_executor_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(deployment.EXECUTOR_ENV, raising=False)
    assert deployment.symbol_job_executor() is None  # the definitions' in-process executor
    monkeypatch.setenv(deployment.EXECUTOR_ENV, "k8s")
    assert deployment.symbol_job_executor() is dagster_k8s.k8s_job_executor
    monkeypatch.setenv(deployment.EXECUTOR_ENV, "multiprocess")
    assert deployment.symbol_job_executor() is dg.multiprocess_executor
    monkeypatch.setenv(deployment.EXECUTOR_ENV, "celery")
    with pytest.raises(ValueError, match="KTRDR_EXECUTOR='celery'"):
        deployment.symbol_job_executor()


def test_the_helm_values_deploy_this_project_with_the_k8s_executor_and_pools() -> None:
    values = yaml.safe_load(HELM_VALUES.read_text())
    (code,) = values["dagster-user-deployments"]["deployments"]
    assert code["dagsterApiGrpcArgs"] == ["-m", "ktrdr_assets.definitions"]
    env = {item["name"]: item.get("value") for item in code["env"]}
    assert env["KTRDR_EXECUTOR"] == "k8s" and "MLFLOW_TRACKING_URI" not in env  # from a secret, never in the file
    assert {"name": "ktrdr-mlflow"} in code["envSecrets"]
    assert code["includeConfigInLaunchedRuns"]["enabled"] is True
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["concurrency"]["pools"] == {"granularity": "op", "defaultLimit": 1}
    assert values["concurrency"]["runs"]["maxConcurrentRuns"] >= 1
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert "postgresqlPassword" not in values["postgresql"]  # the password lives in a Secret


def test_the_dockerfile_installs_the_deploy_extras_and_serves_the_code_location() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "'.[postgres,k8s]'" in text and "-c constraints.txt" in text
    assert "ktrdr_assets.definitions" in text
    assert Path(PROJECT_ROOT / ".dockerignore").is_file()
