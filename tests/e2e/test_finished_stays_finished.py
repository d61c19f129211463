"""A finished audit stays finished (#15): its Jobs' TTL deletions create nothing again, post nothing
again and flip nothing; deleting an audit while it is reconciled ends quietly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.test_operator_e2e import NS, Kubectl, finished, operator_env
from tests.support.helpers import audit_doc
from tests.support.kube.cluster import EmulatedCluster, OperatorProcess, wait_for

pytestmark = pytest.mark.slow


def test_ttl_deleted_jobs_are_not_created_again(tiny_model, tmp_path: Path) -> None:
    with EmulatedCluster(tmp_path) as cluster:
        kubectl = Kubectl(cluster)
        doc = audit_doc(tiny_model, runner={"ttlSecondsAfterFinished": 1})
        doc["metadata"] = {"name": "ttl"}
        env = {**operator_env(cluster, tmp_path), "FLUXAUDIT_RECONCILE_SECONDS": "0.5"}
        with OperatorProcess(cluster, env) as operator:
            kubectl.apply(doc)
            status = wait_for("the audit to finish", lambda: finished(kubectl, "ttl"), 240)
            wait_for("the TTL controller to delete every Job", lambda: len(cluster.executor.ttl_deleted) == 3, 60)
            wait_for("no Job left", lambda: not kubectl.jobs("ttl"), 30)
            # Ten timer passes and the deletions' own events: nothing may start again.
            time.sleep(5)
            later = kubectl.status("ttl")
            log = operator.logs()
        creates = [s for s in cluster.api.served if s.verb == "create" and s.resource == "jobs"]
        reasons = [e.reason for e in kubectl.events("ttl")]
        jobs_left = kubectl.jobs("ttl")
    assert status["phase"] == later["phase"] == "Succeeded"
    assert later["groups"] == status["groups"] and later["conditions"] == status["conditions"]
    assert len(creates) == 3, [s.name for s in creates]
    assert reasons.count("AuditSucceeded") == 1 and reasons.count("JobCreated") == 3, reasons
    assert not jobs_left and "Traceback" not in log


def test_an_audit_deleted_while_reconciled_ends_quietly(tiny_model, tmp_path: Path) -> None:
    with EmulatedCluster(tmp_path) as cluster:
        kubectl = Kubectl(cluster)
        doc = audit_doc(tiny_model)
        doc["metadata"] = {"name": "gone"}
        env = {**operator_env(cluster, tmp_path), "FLUXAUDIT_RECONCILE_SECONDS": "0.2"}
        with OperatorProcess(cluster, env) as operator:
            kubectl.apply(doc)
            wait_for("its Jobs", lambda: len(kubectl.jobs("gone")) == 3, 60)
            kubectl.delete("gone")
            wait_for("Jobs to be collected", lambda: not kubectl.jobs("gone"), 30)
            time.sleep(2)  # timer passes and Job deletion events of an audit that is gone
            log = operator.logs()
    assert "Traceback" not in log and '"severity": "error"' not in log, log[-3000:]
    assert not [o for o in cluster.api.store if o[0].endswith("fluxaudits") and o[1] == NS and o[2] == "gone"]
