"""Operator control-plane benchmark on the emulated API server (tests/support/kube).

Measures the real ``fluxaudit operator`` process against kmock's completed emulator:

1. latency: one FluxAudit created → all of its Jobs exist (median of ``--repeats``);
2. load: ``--audits`` FluxAudits created at once → every Job created exactly once,
   seconds until every status has settled (3 groups recorded, observedGeneration
   current), the operator's peak and final resident memory.

Jobs are created but not run (the executor is off): this measures the operator, not the
tiny model.  Results go to ``benchmarks/results/operator_emulator.json``.

    python -m benchmarks.operator_load --audits 50 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client  # noqa: E402

from tests.support.kube.cluster import EmulatedCluster, OperatorProcess, wait_for  # noqa: E402

NS = "audits"
GROUP, VERSION, PLURAL = "fluxaudit.dev", "v1alpha1", "fluxaudits"


def audit(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FluxAudit",
        "metadata": {"name": name},
        "spec": {"input": {"userId": "bench", "sessionId": name}},
    }


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields


def settled(custom: client.CustomObjectsApi, n: int) -> bool:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"]
    done = [
        o
        for o in items
        if len((o.get("status") or {}).get("groups") or []) == 4  # three quants and the bf16 reference
        and (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
    ]
    return len(done) == n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--audits", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="operator-load-")
    with EmulatedCluster(Path(tmp), run_pods=False) as cluster:
        api = cluster.client()
        custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
        # Results on a shared volume (no bucket, no credentials): the operator reads partials from disk.
        env = {"FLUXAUDIT_RECONCILE_SECONDS": "60", "FLUXAUDIT_STORAGE_ROOT": str(Path(tmp) / "results")}
        with OperatorProcess(cluster, env) as operator:
            # The operator is up once it has answered its first audit.
            custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, audit("warmup"))
            wait_for("the operator to start", lambda: len(batch.list_namespaced_job(NS).items) == 3, 60)
            latencies = []
            for i in range(args.repeats):
                name = f"latency-{i}"
                t0 = time.perf_counter()
                custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, audit(name))
                wait_for(
                    "3 Jobs",
                    lambda name=name: (
                        len(batch.list_namespaced_job(NS, label_selector=f"fluxaudit.dev/audit={name}").items) == 3
                    ),
                    30,
                    interval=0.005,
                )
                latencies.append(time.perf_counter() - t0)
            before = len(cluster.api.served)
            idle_memory = memory_kib(operator.process.pid)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i: custom.create_namespaced_custom_object(
                            GROUP, VERSION, NS, PLURAL, audit(f"load-{i:03d}")
                        ),
                        range(args.audits),
                    )
                )
            created = time.perf_counter() - t0
            total = 1 + args.repeats + args.audits
            wait_for("all Jobs", lambda: len(batch.list_namespaced_job(NS).items) == 3 * total, 300, interval=0.02)
            all_jobs = time.perf_counter() - t0
            wait_for("all statuses to settle", lambda: settled(custom, total), 300, interval=0.05)
            settle = time.perf_counter() - t0
            memory = memory_kib(operator.process.pid)
            load_requests = cluster.api.served[before:]
            job_posts = [s for s in load_requests if s.verb == "create" and s.resource == "jobs"]
            jobs = [j for j in batch.list_namespaced_job(NS).items if j.metadata.name.startswith("load-")]
    result = {
        "benchmark": "operator_load",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.node()} ({platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs)",
        "python": platform.python_version(),
        "command": "python -m benchmarks.operator_load " + " ".join(sys.argv[1:]),
        "createToJobsSeconds": {"median": statistics.median(latencies), "all": latencies},
        "load": {
            "audits": args.audits,
            "createSeconds": created,
            "allJobsSeconds": all_jobs,
            "settledSeconds": settle,
            "jobCreateRequests": len(job_posts),
            "jobsExpected": 3 * args.audits,
            "jobsInCluster": len(jobs),
            "eachJobCreatedOnce": len(job_posts) == len(jobs) == 3 * args.audits,
            "operatorRequests": sum(1 for s in load_requests if s.agent.startswith(("kopf/", "fluxaudit-operator/"))),
            "operatorMemoryKiB": {
                "idleRss": idle_memory["VmRSS"],
                "peakRss": memory["VmHWM"],
                "finalRss": memory["VmRSS"],
            },
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "operator_emulator.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
