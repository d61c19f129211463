"""Why a group's Job has not produced results yet, read from its pods and its Kueue Workload (pure).

A Job's own status says only "active"; the cause of a wait lives elsewhere: Kueue holds the Job
suspended until its Workload gets quota, the scheduler marks the pod ``Unschedulable`` with its
reason (insufficient ``nvidia.com/gpu``, a taint, a quota), the kubelet reports image pull and crash
loop states per container.  ``explain`` turns those objects into one (reason, message) pair in the
group's status, so ``kubectl get fluxaudit -o yaml`` says what a platform engineer would dig for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluxaudit.contract import LABEL_KUEUE_QUEUE

IMAGE_PULL = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


@dataclass(frozen=True)
class Waiting:
    """CamelCase ``reason`` (stable, for alerts and ``kubectl wait``) and a human ``message``."""

    reason: str
    message: str
    #: True while the group has not started computing (the group stays Pending).
    blocked: bool = True


def owned_by(obj: dict[str, Any], uid: str | None) -> bool:
    """Whether ``obj`` names ``uid`` among its owners (labels can be copied; owner uids cannot)."""
    return uid is not None and any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def _newest(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    ranked = sorted(live or pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    return ranked[-1] if ranked else None


def _queued(job: dict[str, Any], workload: dict[str, Any] | None, readable: bool) -> Waiting:
    queue = (job["metadata"].get("labels") or {}).get(LABEL_KUEUE_QUEUE)
    if queue is None:
        return Waiting("Suspended", "the Job is suspended (spec.suspend) and names no Kueue queue")
    where = f"Kueue LocalQueue {queue}"
    if not readable:
        return Waiting("QueuedByKueue", f"waiting for admission by {where} (its Workload is not readable here)")
    if workload is None:
        return Waiting("QueuedByKueue", f"waiting for {where} to create the Job's Workload")
    quota = _condition(workload, "QuotaReserved")
    if quota is not None and quota.get("status") == "False" and quota.get("message"):
        return Waiting("QueuedByKueue", f"waiting for admission by {where}: {quota['message']}")
    return Waiting("QueuedByKueue", f"waiting for admission by {where}")


def _container_wait(pod: dict[str, Any]) -> Waiting | None:
    statuses = [*(pod["status"].get("initContainerStatuses") or []), *(pod["status"].get("containerStatuses") or [])]
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason"), waiting.get("message") or ""
        if reason in IMAGE_PULL:
            return Waiting("ImagePullError", f"{reason} for {cs.get('image', '?')}: {message}".rstrip(": "))
        if reason == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated") or {}
            how = f"exit code {last.get('exitCode', '?')}" + (f" ({last['reason']})" if last.get("reason") else "")
            return Waiting("CrashLoopBackOff", f"container {cs.get('name')} keeps failing: {how}", blocked=False)
        if reason in CONFIG_ERRORS:
            return Waiting("ContainerConfigError", f"{reason}: {message}".rstrip(": "))
    return None


def _pod_wait(pod: dict[str, Any]) -> Waiting | None:
    status = pod.get("status") or {}
    if found := _container_wait(pod):
        return found
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        reason = scheduled.get("reason") or "Unschedulable"
        return Waiting(reason, scheduled.get("message") or "the scheduler has not placed the pod")
    if status.get("phase") == "Pending":
        node = (pod.get("spec") or {}).get("nodeName")
        return Waiting("Starting", f"pod {pod['metadata']['name']} is starting" + (f" on {node}" if node else ""))
    return None


def explain(
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]] | None,
    workload: dict[str, Any] | None = None,
    *,
    workloads_readable: bool = True,
) -> Waiting | None:
    """What holds the group up, or None when nothing does (running, finished, or not observable:
    ``pods`` None means the operator could not read pods)."""
    if job is None:
        return None
    if (job.get("spec") or {}).get("suspend"):
        return _queued(job, workload, workloads_readable)
    if pods is None:
        return None
    ours = [p for p in pods if owned_by(p, job["metadata"].get("uid"))]
    pod = _newest(ours)
    if pod is None:
        return None
    return _pod_wait(pod)
