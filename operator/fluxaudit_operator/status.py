"""Observed Jobs and partials → FluxAudit status (pure).

Conditions follow the Kubernetes API conventions that kstatus, Argo CD and Flux read:
``Reconciling`` while work is in flight, ``Stalled`` when it cannot progress,
``Ready``/``Succeeded`` at the end, each with ``observedGeneration``, a reason in
CamelCase and a human message.  Per-group counts in the spirit of JobSet's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fluxaudit.contract import (
    AGGREGATING,
    COND_READY,
    COND_RECONCILING,
    COND_STALLED,
    COND_SUCCEEDED,
    FAILED,
    FINISHED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    AuditPhase,
    GroupPhase,
)

from .waiting import Waiting

#: batch/v1 Job condition types.
JOB_COMPLETE, JOB_FAILED = "Complete", "Failed"


@dataclass(frozen=True)
class GroupObservation:
    label: str
    job_name: str
    job: dict[str, Any] | None  # the Job as read from the API, None if not (yet) there
    partial: dict[str, Any] | None  # the group's partial JSON, None if not written yet
    planned_cells: int = 0  # what the spec asks for: the total before the runner reports its own
    waiting: Waiting | None = None  # what holds the Job up, read from its pods and Kueue Workload


def _job_condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def job_finished(job: dict[str, Any]) -> bool:
    return _job_condition(job, JOB_COMPLETE) is not None or _job_condition(job, JOB_FAILED) is not None


def group_status(obs: GroupObservation) -> dict[str, Any]:
    """The group's phase, counts and, while it is not finished, why: a blocked pod keeps it Pending
    (an active Job whose pod cannot be scheduled has not started), a crash loop shows as Running."""
    job_status = (obs.job or {}).get("status") or {}
    partial = obs.partial or {}
    phase: GroupPhase = PENDING
    reason, message = "", ""
    cells_total = partial.get("cellsTotal") or obs.planned_cells
    cells_done = len(partial.get("cells") or [])
    if obs.job is not None:
        failed = _job_condition(obs.job, JOB_FAILED)
        if _job_condition(obs.job, JOB_COMPLETE):
            phase = SUCCEEDED
        elif failed:
            phase = FAILED
            reason = failed.get("reason") or "Failed"
            message = f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".strip(": ")
            if partial.get("error"):
                message = f"{message}; runner: {partial['error']}" if message else partial["error"]
        elif obs.waiting is not None:
            phase = PENDING if obs.waiting.blocked else RUNNING
            reason, message = obs.waiting.reason, obs.waiting.message
        elif job_status.get("active") or job_status.get("startTime"):
            phase = RUNNING
            reason, message = "Running", f"{cells_done}/{cells_total} cells done"
        else:
            reason, message = "JobCreated", "waiting for the Job controller to start a pod"
    out: dict[str, Any] = {
        "quant": obs.label,
        "job": obs.job_name,
        "phase": phase,
        "cellsDone": cells_done,
        "cellsTotal": cells_total,
        "attempts": int(job_status.get("failed", 0))
        + int(job_status.get("succeeded", 0))
        + int(job_status.get("active", 0)),
    }
    for src, dst in (("startTime", "startedAt"), ("completionTime", "finishedAt")):
        if job_status.get(src):
            out[dst] = job_status[src]
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message[:1000]
    return out


#: group reasons that mean "held up", summarized in the audit's Reconciling condition.
WAITING_REASONS = {"Suspended", "QueuedByKueue", "Unschedulable", "SchedulingGated", "ImagePullError",
                   "CrashLoopBackOff", "ContainerConfigError"}  # fmt: skip


def _condition(kind: str, status: bool, reason: str, message: str, generation: int, now: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now,
    }


def merge_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep ``lastTransitionTime`` where a condition's status did not change."""
    before = {c["type"]: c for c in old or []}
    out = []
    for c in new:
        prev = before.get(c["type"])
        if prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c = {**c, "lastTransitionTime": prev["lastTransitionTime"]}
        out.append(c)
    return out


def audit_status(
    generation: int,
    groups: list[dict[str, Any]],
    now: str,
    *,
    report_ready: bool = False,
    spec_error: str | None = None,
    previous_conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole status block (minus report fields, which the aggregation step adds)."""
    done = sum(g["cellsDone"] for g in groups)
    total = sum(g["cellsTotal"] for g in groups)
    failed = [g["quant"] for g in groups if g["phase"] == FAILED]
    finished = [g for g in groups if g["phase"] in FINISHED]
    if spec_error is not None:
        phase: AuditPhase = FAILED
        conds = [
            _condition(COND_STALLED, True, "InvalidSpec", spec_error, generation, now),
            _condition(
                "Reconciling", False, "InvalidSpec", "fix the spec and re-create the FluxAudit", generation, now
            ),
            _condition(COND_READY, False, "InvalidSpec", spec_error, generation, now),
            _condition(COND_SUCCEEDED, False, "InvalidSpec", spec_error, generation, now),
        ]
    elif groups and len(finished) == len(groups) and report_ready:
        ok = not failed
        phase = SUCCEEDED if ok else FAILED
        msg = (
            f"{len(groups)} groups done, report ready"
            if ok
            else f"groups failed: {', '.join(failed)}; partial report ready"
        )
        reason = "AuditSucceeded" if ok else "GroupsFailed"
        conds = [
            _condition(COND_READY, ok, reason, msg, generation, now),
            _condition(COND_SUCCEEDED, ok, reason, msg, generation, now),
            _condition(COND_RECONCILING, False, reason, msg, generation, now),
            _condition(COND_STALLED, not ok, reason, msg, generation, now),
        ]
    elif groups and len(finished) == len(groups):
        phase = AGGREGATING
        msg = "all groups ended; building the report"
        conds = [
            _condition(COND_RECONCILING, True, "Aggregating", msg, generation, now),
            _condition(COND_READY, False, "Aggregating", msg, generation, now),
            _condition(COND_STALLED, False, "Aggregating", msg, generation, now),
        ]
    else:
        running = any(g["phase"] == RUNNING for g in groups)
        started = any(g["phase"] != PENDING for g in groups)
        phase = RUNNING if started or done else PENDING
        held = [g for g in groups if g.get("reason") in WAITING_REASONS]
        msg = (
            f"{done}/{total} cells, {len(finished)}/{len(groups)} groups ended"
            + (f"; failed: {', '.join(failed)}" if failed else "")
            + "".join(f"; {g['quant']} {g['reason']}: {g.get('message', '')}" for g in held)
        )
        reason = "GroupsWaiting" if held else "GroupsRunning" if running else "GroupsPending"
        conds = [
            _condition(COND_RECONCILING, True, reason, msg[:2000], generation, now),
            _condition(COND_READY, False, "GroupsWaiting" if held else "InProgress", msg[:2000], generation, now),
            _condition(COND_STALLED, False, "InProgress", msg[:2000], generation, now),
        ]
    return {
        "observedGeneration": generation,
        "phase": phase,
        "progress": f"{done}/{total}",
        "groups": groups,
        "conditions": merge_conditions(previous_conditions or [], conds),
    }


def with_storage_problem(old: dict[str, Any], generation: int, now: str, reason: str, message: str) -> dict[str, Any]:
    """Storage (or its credentials) failed: keep what the status knew, say why nothing moves.

    ``Stalled`` so kstatus and Argo CD show it as degraded; the operator keeps retrying,
    and the next successful pass replaces these conditions.
    """
    conds = [
        _condition(COND_STALLED, True, reason, message, generation, now),
        _condition(COND_READY, False, reason, message, generation, now),
        _condition(COND_RECONCILING, True, reason, message, generation, now),
    ]
    return {**old, "observedGeneration": generation, "conditions": merge_conditions(old.get("conditions") or [], conds)}


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the FluxAudit: never carries a URL or a credential."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def transitions(old: dict[str, Any], new: dict[str, Any]) -> list[Event]:
    """Events for what changed between two statuses: group phases, then the audit's phase."""
    events: list[Event] = []
    before = {g["quant"]: g for g in old.get("groups") or []}
    for g in new.get("groups") or []:
        prev = before.get(g["quant"], {}).get("phase", PENDING)
        if g["phase"] == prev:
            continue
        if g["phase"] == FAILED:
            events.append(Event("Warning", "GroupFailed", f"group {g['quant']} failed: {g.get('message', '')}"[:1000]))
        elif g["phase"] == SUCCEEDED:
            events.append(Event("Normal", "GroupSucceeded", f"group {g['quant']}: {g['cellsDone']} cells done"))
        elif g["phase"] == RUNNING:
            events.append(Event("Normal", "GroupRunning", f"group {g['quant']} is running (Job {g['job']})"))
    phase, prev_phase = new.get("phase"), old.get("phase")
    if phase != prev_phase:
        stalled = next((c for c in new.get("conditions") or [] if c["type"] == COND_STALLED), None)
        if phase == SUCCEEDED:
            events.append(Event("Normal", "AuditSucceeded", f"report ready at {new.get('reportPath', '?')}"))
        elif phase == FAILED:
            reason = stalled["reason"] if stalled else "AuditFailed"
            events.append(Event("Warning", reason, (stalled or {}).get("message", "audit failed")[:1000]))
        elif phase == AGGREGATING:
            events.append(Event("Normal", "Aggregating", "all groups ended; building the report"))
    return events
