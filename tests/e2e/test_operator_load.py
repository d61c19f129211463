"""Load: 50 FluxAudits created at once on the emulated cluster.  Every Job is created exactly
once, every status settles, and the operator's memory stays bounded (figures in BENCHMARKS.md §5)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client

from benchmarks.operator_load import GROUP, NS, PLURAL, VERSION, audit, memory_kib, settled
from tests.support.kube.cluster import EmulatedCluster, OperatorProcess, wait_for

AUDITS = 50
MEMORY_LIMIT_KIB = 400 * 1024  # the Deployment's limit is 1 GiB; measured peak ~130 MiB


def test_fifty_audits_at_once(tmp_path: Path) -> None:
    with EmulatedCluster(tmp_path, run_pods=False) as cluster:
        api = cluster.client()
        custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
        env = {"FLUXAUDIT_RECONCILE_SECONDS": "60", "FLUXAUDIT_STORAGE_ROOT": str(tmp_path / "results")}
        with OperatorProcess(cluster, env) as operator:
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i: custom.create_namespaced_custom_object(
                            GROUP, VERSION, NS, PLURAL, audit(f"load-{i:03d}")
                        ),
                        range(AUDITS),
                    )
                )
            wait_for("every status to settle", lambda: settled(custom, AUDITS), 120, interval=0.1)
            memory = memory_kib(operator.process.pid)
            assert operator.process.poll() is None
        jobs = batch.list_namespaced_job(NS).items
        creates = [s for s in cluster.api.served if s.verb == "create" and s.resource == "jobs"]
    names = [j.metadata.name for j in jobs]
    # The default spec: three quants and the bf16 reference, four Jobs an audit.
    assert len(names) == len(set(names)) == 4 * AUDITS
    assert len(creates) == 4 * AUDITS  # not one create more: no duplicate, no conflict retried
    assert {j.metadata.owner_references[0].name for j in jobs} == {f"load-{i:03d}" for i in range(AUDITS)}
    assert memory["VmHWM"] < MEMORY_LIMIT_KIB, memory
