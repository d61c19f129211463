"""The operator's Prometheus metrics: what a platform team alerts on (audits stuck waiting, reconcile errors)
and what it plots (Jobs created, reconcile and report-build time).

Audits and groups are gauges recomputed from the statuses the operator writes, one entry per audit,
so a restarted operator reports the same numbers once it has reconciled each audit again; a deleted
audit drops out.  Served by ``prometheus_client``'s own HTTP server on ``FLUXAUDIT_METRICS_PORT``.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from fluxaudit.contract import AGGREGATING, FAILED, PENDING, RUNNING, SUCCEEDED

PHASES = (PENDING, RUNNING, AGGREGATING, SUCCEEDED, FAILED)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.audits = Gauge("fluxaudit_audits", "FluxAudits by phase.", ["phase"], registry=r)
        self.groups = Gauge(
            "fluxaudit_groups", "Groups (one Job each) by phase and waiting reason.", ["phase", "reason"], registry=r
        )
        self.jobs_created = Counter("fluxaudit_jobs_created", "Runner Jobs the operator created.", registry=r)
        self.reconcile_errors = Counter(
            "fluxaudit_reconcile_errors", "Reconcile passes that ended waiting on a problem.", ["reason"], registry=r
        )
        self.reconcile_seconds = Histogram(
            "fluxaudit_reconcile_seconds",
            "Seconds per reconcile pass (API reads, storage reads, report building).",
            ["trigger"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.report_build_seconds = Histogram(
            "fluxaudit_report_build_seconds",
            "Seconds to build one report from the partials.",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.audit_seconds = Histogram(
            "fluxaudit_audit_seconds",
            "Seconds from an audit's creation to its report written: what a team waits for an answer.",
            buckets=(60, 120, 300, 600, 900, 1800, 3600, 7200, 14400),
            registry=r,
        )
        self._statuses: dict[tuple[str, str], dict[str, Any]] = {}
        for phase in PHASES:
            self.audits.labels(phase).set(0)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)

    def observe_status(self, namespace: str, name: str, status: dict[str, Any] | None) -> None:
        """The audit's latest status (None: deleted), then the gauges over every audit."""
        if status is None:
            self._statuses.pop((namespace, name), None)
        else:
            self._statuses[(namespace, name)] = status
        audits = Tally(s.get("phase") or PENDING for s in self._statuses.values())
        for phase in PHASES:
            self.audits.labels(phase).set(audits.get(phase, 0))
        groups = Tally(
            (g.get("phase") or PENDING, g.get("reason") or "")
            for s in self._statuses.values()
            for g in s.get("groups") or []
        )
        self.groups.clear()
        for (phase, reason), n in groups.items():
            self.groups.labels(phase, reason).set(n)
