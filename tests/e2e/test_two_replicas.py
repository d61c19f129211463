"""Two operator replicas (#15): with a kopf peering object, one serves and the other waits; an audit gets
one Job per group and one report, whichever replica handles it, and a replica that dies is replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_operator_e2e import Kubectl, finished, operator_env
from tests.support.helpers import audit_doc
from tests.support.kube.cluster import EmulatedCluster, OperatorProcess, wait_for

pytestmark = pytest.mark.slow


def test_two_replicas_one_job_per_group_one_report(tiny_model, tmp_path: Path) -> None:
    with EmulatedCluster(tmp_path) as cluster:
        cluster.api.declare("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False)
        cluster.call(
            cluster.api.put_object(
                "kopf.dev/v1/clusterkopfpeerings",
                {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "fluxaudit"}},
            )
        )
        kubectl = Kubectl(cluster)
        env = {**operator_env(cluster, tmp_path), "FLUXAUDIT_PEERING": "fluxaudit"}
        with OperatorProcess(cluster, env, name="replica-a") as a, OperatorProcess(cluster, env, name="replica-b") as b:
            wait_for(
                "both replicas in the peering object",
                lambda: len((cluster.api.store.get(("kopf.dev/v1/clusterkopfpeerings", None, "fluxaudit")) or {}).get("status") or {}) == 2,
                60,
            )  # fmt: skip
            doc = audit_doc(tiny_model)
            doc["metadata"] = {"name": "peered"}
            kubectl.apply(doc)
            status = wait_for("the audit to finish", lambda: finished(kubectl, "peered"), 240)

            def succeeded() -> list[str] | None:
                reasons = [e.reason for e in kubectl.events("peered")]
                return reasons if "AuditSucceeded" in reasons else None

            reasons = wait_for("the events", succeeded, 30)
            logs = a.logs() + b.logs()
        creates = [s for s in cluster.api.served if s.verb == "create" and s.resource == "jobs"]
    assert status["phase"] == "Succeeded"
    assert len(creates) == 3 and reasons.count("JobCreated") == 3 and reasons.count("AuditSucceeded") == 1, reasons
    assert logs.count("building the report for run") == 1, "one report, built once"
    assert "Traceback" not in logs
