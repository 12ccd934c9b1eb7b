"""Where runs and steps execute, chosen by the environment, never by editing code.

- `KTRDR_EXECUTOR`: `in_process` (default: one symbol's steps in one process, no per-step start-up),
  `multiprocess`, or `k8s` (dagster-k8s's `k8s_job_executor` for `materialize_symbol`: every step its own
  Kubernetes Job; the torch model steps request a GPU through their `dagster-k8s/config` op tags).
- `KTRDR_GPU_NODE_SELECTOR`: the node labels of GPU nodes, `key=value[,key=value]` (default
  `nvidia.com/gpu.present=true`, the label NVIDIA's GPU operator sets); `KTRDR_GPU_TOLERATION`: the taint
  GPU nodes carry (default `nvidia.com/gpu`, effect NoSchedule; `none` for no toleration).

The op tags are plain data: they do nothing outside Kubernetes, and nothing here imports dagster-k8s
unless the k8s executor is chosen.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

EXECUTOR_ENV = "KTRDR_EXECUTOR"
GPU_NODE_SELECTOR_ENV = "KTRDR_GPU_NODE_SELECTOR"
GPU_TOLERATION_ENV = "KTRDR_GPU_TOLERATION"
DEFAULT_GPU_NODE_SELECTOR = "nvidia.com/gpu.present=true"
GPU_RESOURCE = "nvidia.com/gpu"
K8S_CONFIG_TAG = "dagster-k8s/config"
EXECUTORS = ("in_process", "multiprocess", "k8s")


def executor_name() -> str:
    name = os.environ.get(EXECUTOR_ENV, "in_process").strip() or "in_process"
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={name!r}: use one of {', '.join(EXECUTORS)}")
    return name


def symbol_job_executor() -> dg.ExecutorDefinition | None:
    """The executor of `materialize_symbol` (None: the definitions' default, in-process)."""
    name = executor_name()
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "k8s":
        from dagster_k8s import k8s_job_executor  # the [k8s] extra; only the image needs it

        return k8s_job_executor
    return None


def _labels(text: str, what: str) -> dict[str, str]:
    labels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what}: expected key=value[,key=value], got {text!r}")
        labels[key.strip()] = value.strip()
    return labels


def gpu_step_k8s_config(gpus: int = 1) -> dict[str, Any]:
    """The `dagster-k8s/config` of a GPU-bound step: `gpus` NVIDIA GPUs, on a GPU node."""
    selector = _labels(os.environ.get(GPU_NODE_SELECTOR_ENV, DEFAULT_GPU_NODE_SELECTOR), GPU_NODE_SELECTOR_ENV)
    taint = os.environ.get(GPU_TOLERATION_ENV, GPU_RESOURCE).strip()
    pod_spec: dict[str, Any] = {"node_selector": selector}
    if taint and taint.lower() != "none":
        pod_spec["tolerations"] = [{"key": taint, "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "container_config": {"resources": {"limits": {GPU_RESOURCE: str(gpus)}}},
        "pod_spec_config": pod_spec,
    }


def gpu_op_tags() -> dict[str, Any]:
    """Op tags of the torch model assets: run as their own pod with one GPU under `k8s_job_executor`."""
    return {K8S_CONFIG_TAG: gpu_step_k8s_config(1)}
