"""Where an audit runs and writes: the runner Jobs' pod settings and the results storage.

The operator's installation fills what an author leaves unset (``FLUXAUDIT_SPEC_DEFAULTS``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .base import StrictInt, _Model


class Toleration(_Model):
    """A pod toleration, as in core/v1 (lets runner pods onto tainted GPU nodes)."""

    key: Annotated[str | None, Field(description="Taint key to tolerate, e.g. nvidia.com/gpu.")] = None
    operator: Annotated[Literal["Exists", "Equal"] | None, Field(description="Exists or Equal.")] = None
    value: Annotated[str | None, Field(description="Taint value (with operator Equal).")] = None
    effect: Annotated[
        Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None, Field(description="Taint effect to tolerate.")
    ] = None
    toleration_seconds: Annotated[StrictInt | None, Field(description="With NoExecute: how long the pod stays.")] = None


class ResourceSpec(_Model):
    """Requests and limits of the runner container, as in core/v1."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    requests: dict[str, str | int] = Field(
        default_factory=lambda: {"cpu": "4", "memory": "28Gi"}, description="Resource requests, e.g. cpu: 4."
    )
    limits: dict[str, str | int] = Field(
        default_factory=lambda: {"memory": "30Gi", "nvidia.com/gpu": 1},
        description="Resource limits; nvidia.com/gpu: 1 claims the GPU.",
    )


class RunnerSpec(_Model):
    """How the Kubernetes Job of each quant group runs (ignored in local mode)."""

    image: Annotated[
        str,
        Field(
            min_length=1,
            description="Runner container image (CUDA build of torch inside). Unset: the operator installation's default (Helm value runner.image).",
        ),
    ] = "ghcr.io/fluxaudit/runner:0.1.0"
    node_selector: dict[str, str] = Field(
        default_factory=lambda: {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        description="Node labels the runner pods need. Unset: the installation's default, else the GKE L4 pool.",
    )
    tolerations: tuple[Toleration, ...] = Field(
        default=(Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),),
        description="Tolerations for the GPU nodes' taints.",
    )
    resources: ResourceSpec = Field(default_factory=ResourceSpec, description="Container resources.")
    backoff_limit: Annotated[
        StrictInt, Field(ge=0, le=20, description="Retries of a failed runner pod (preemptions do not count).")
    ] = 3
    active_deadline_seconds: Annotated[
        StrictInt, Field(ge=60, le=7 * 24 * 3600, description="Hard time limit of each group's Job.")
    ] = 4 * 3600
    ttl_seconds_after_finished: Annotated[
        StrictInt, Field(ge=0, description="Seconds a finished Job is kept before the cluster deletes it.")
    ] = 24 * 3600
    priority_class_name: Annotated[str | None, Field(description="PriorityClass of the runner pods.")] = None
    queue_name: Annotated[
        str | None, Field(description="Kueue LocalQueue: Jobs start suspended and Kueue admits them.")
    ] = None


class StorageSpec(_Model):
    """Where results go: a Firebase/GCS bucket in the cluster, a folder locally."""

    bucket: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$",
            description="GCS bucket name. Unset: the operator installation's default bucket; locally, a folder.",
        ),
    ] = None
    prefix: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$",
            description="Folder the audit writes under.",
        ),
    ] = "audit"
    signed_url_hours: Annotated[
        StrictInt, Field(ge=1, le=168, description="Lifetime of signed URLs; V4 URLs last at most 7 days (168 h).")
    ] = 72
