"""A local stand-in for the Job controller and kubelet: each Job's pod is a subprocess.

It follows the batch/v1 Job semantics the operator depends on: ``suspend`` holds a Job,
each pod runs the container's command with its env (``secretKeyRef`` resolved from the
API server's Secrets, ``fieldRef`` to a fake node), ``podFailurePolicy`` rules are
applied in order (``Ignore`` on DisruptionTarget does not count a retry, ``FailJob`` on
an exit code ends the Job), ``backoffLimit`` bounds the rest, and the status carries
the same counts and conditions (``Complete``/``Failed`` with their reasons) a real
controller writes.  Deleting a Job kills its pod; ``ttlSecondsAfterFinished`` deletes a finished
Job, as the TTL-after-finished controller does.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .apiserver import ApiServer

JOBS = "batch/v1/jobs"
SECRETS = "/v1/secrets"
NODE = "emulated-node-1"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Pod:
    process: asyncio.subprocess.Process
    disrupted: bool = False


@dataclass
class JobExecutor:
    api: ApiServer
    logs: Path
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    #: how many pods of each Job (namespace/name) were started, for assertions.
    pods_started: dict[str, int] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    #: PersistentVolumeClaim name → the local folder that plays the volume.
    claims: dict[str, Path] = field(default_factory=dict)
    #: what went wrong inside the executor itself (not in a pod), for the test to fail on.
    errors: list[str] = field(default_factory=list)
    #: Jobs the TTL controller deleted after they finished.
    ttl_deleted: list[str] = field(default_factory=list)
    #: files projected from Secrets into pods (what the runner may read, and nothing else may).
    secret_files: list[str] = field(default_factory=list)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def run(self) -> None:
        """Follow the Jobs' event log, as the Job controller watches Jobs."""
        position = 0
        cond = self.api._cond()
        while True:
            async with cond:
                await cond.wait_for(lambda p=position: self.api.revision > p)
                batch = [e for rv, r, e in self.api.events if rv > position and r == JOBS]
                position = self.api.revision
            for event in batch:
                job = event["object"]
                key = f"{job['metadata']['namespace']}/{job['metadata']['name']}"
                if event["type"] == "DELETED":
                    self.kill(key, signal.SIGKILL)
                    continue
                suspended = job["spec"].get("suspend", False)
                finished = any(
                    c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                    for c in (job.get("status") or {}).get("conditions") or []
                )
                if not suspended and not finished and key not in self._tasks:
                    self._tasks[key] = asyncio.create_task(self._run_job(key, job))

    def kill(self, key: str, sig: int = signal.SIGKILL, *, disruption: bool = False) -> bool:
        """Kill the Job's current pod; ``disruption`` marks it as evicted (DisruptionTarget)."""
        pod = self.pods.get(key)
        if pod is None or pod.process.returncode is not None:
            return False
        pod.disrupted = disruption
        pod.process.send_signal(sig)
        return True

    def _volumes(self, key: str, attempt: int, pod_spec: dict[str, Any]) -> dict[str, Path]:
        """mountPath → local folder: emptyDirs are fresh per pod, claims are shared folders, secrets are
        projected as files (the items asked for, with their mode), as the kubelet does."""
        by_name: dict[str, Path] = {}
        namespace = key.split("/")[0]
        for vol in pod_spec.get("volumes") or []:
            if "secret" in vol:
                by_name[vol["name"]] = self._project_secret(key, attempt, namespace, vol)
            elif "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]["claimName"]
                if claim not in self.claims:
                    raise LookupError(f"PersistentVolumeClaim {claim} is not bound to a folder")
                by_name[vol["name"]] = self.claims[claim]
            else:
                folder = self.logs / "volumes" / key.replace("/", "_") / str(attempt) / vol["name"]
                folder.mkdir(parents=True, exist_ok=True)
                by_name[vol["name"]] = folder
        container = pod_spec["containers"][0]
        return {m["mountPath"]: by_name[m["name"]] for m in container.get("volumeMounts") or []}

    def _project_secret(self, key: str, attempt: int, namespace: str, vol: dict[str, Any]) -> Path:
        src = vol["secret"]
        folder = self.logs / "volumes" / key.replace("/", "_") / str(attempt) / vol["name"]
        folder.mkdir(parents=True, exist_ok=True)
        secret = self.api.store.get((SECRETS, namespace, src["secretName"]))
        if secret is None:
            if src.get("optional"):
                return folder
            raise LookupError(f"secret {namespace}/{src['secretName']} not found")
        data = secret.get("data") or {}
        for item in src.get("items") or [{"key": k, "path": k} for k in data]:
            if item["key"] not in data:
                if src.get("optional"):
                    continue
                raise LookupError(f"secret {namespace}/{src['secretName']} key {item['key']} not found")
            path = folder / item["path"]
            path.write_bytes(base64.b64decode(data[item["key"]]))
            path.chmod(item.get("mode", src.get("defaultMode", 0o644)))
        self.secret_files.extend(str(p) for p in folder.iterdir())
        return folder

    @staticmethod
    def _on_node(value: str, mounts: dict[str, Path]) -> str:
        """A container path as the node sees it (the pod's filesystem is the node's, plus mounts)."""
        for mount, local in sorted(mounts.items(), key=lambda m: -len(m[0])):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return str(local) + value[len(mount.rstrip("/")) :]
        return value

    def _env(self, namespace: str, container: dict[str, Any], mounts: dict[str, Path]) -> dict[str, str]:
        env = dict(self.base_env)
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = self._on_node(var["value"], mounts)
                continue
            ref = var.get("valueFrom") or {}
            if "fieldRef" in ref:
                env[var["name"]] = NODE if ref["fieldRef"]["fieldPath"] == "spec.nodeName" else ""
            elif "secretKeyRef" in ref:
                sel = ref["secretKeyRef"]
                secret = self.api.store.get((SECRETS, namespace, sel["name"]))
                data = (secret or {}).get("data") or {}
                if sel["key"] in data:
                    env[var["name"]] = base64.b64decode(data[sel["key"]]).decode()
                elif not sel.get("optional"):
                    raise LookupError(f"secret {namespace}/{sel['name']} key {sel['key']} not found")
        return env

    @staticmethod
    def _rule(job: dict[str, Any], exit_code: int, disrupted: bool) -> str | None:
        """The action of the first podFailurePolicy rule that matches, as the Job controller picks it."""
        for rule in (job["spec"].get("podFailurePolicy") or {}).get("rules") or []:
            for cond in rule.get("onPodConditions") or []:
                if disrupted and cond.get("type") == "DisruptionTarget":
                    return rule["action"]
            codes = rule.get("onExitCodes")
            if codes and not disrupted:
                hit = exit_code in codes["values"]
                if hit == (codes["operator"] == "In"):
                    return rule["action"]
        return None

    async def _run_job(self, key: str, job: dict[str, Any]) -> None:
        try:
            await self._run_pods(key, job)
            ttl = job["spec"].get("ttlSecondsAfterFinished")
            if ttl is not None:  # the TTL controller: a finished Job is deleted after its TTL
                await asyncio.sleep(float(ttl))
                namespace, name = key.split("/")
                await self.api.remove((JOBS, namespace, name))
                self.ttl_deleted.append(key)
        except Exception as exc:
            import traceback

            self.errors.append(f"{key}: {exc!r}\n{traceback.format_exc()}")
            raise

    async def _run_pods(self, key: str, job: dict[str, Any]) -> None:
        namespace, name = key.split("/")
        container = job["spec"]["template"]["spec"]["containers"][0]
        backoff_limit = int(job["spec"].get("backoffLimit", 6))
        failed = 0
        await self.api.update_status(JOBS, namespace, name, {"startTime": _now()})
        while True:
            if (JOBS, namespace, name) not in self.api.store:
                return
            self.pods_started[key] = self.pods_started.get(key, 0) + 1
            mounts = self._volumes(key, self.pods_started[key], job["spec"]["template"]["spec"])
            env = self._env(namespace, container, mounts)
            command = [sys.executable, "-m", "fluxaudit_cli", *container["command"][1:]]
            log = (self.logs / f"{namespace}_{name}_{self.pods_started[key]}.log").open("wb")
            process = await asyncio.create_subprocess_exec(
                *command, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=str(self.logs)
            )
            self.pods[key] = Pod(process)
            await self.api.update_status(JOBS, namespace, name, {"active": 1, "ready": 1})
            code = await process.wait()
            if code < 0:
                code = 128 - code  # killed by a signal: the container runtime reports 128 + signal (137 for SIGKILL)
            log.close()
            pod = self.pods.pop(key)
            if code == 0:
                await self.api.update_status(
                    JOBS,
                    namespace,
                    name,
                    {
                        "active": None,
                        "ready": 0,
                        "succeeded": 1,
                        "completionTime": _now(),
                        "conditions": [
                            {
                                "type": "SuccessCriteriaMet",
                                "status": "True",
                                "reason": "CompletionsReached",
                                "lastTransitionTime": _now(),
                            },
                            {
                                "type": "Complete",
                                "status": "True",
                                "reason": "CompletionsReached",
                                "lastTransitionTime": _now(),
                            },
                        ],
                    },
                )
                return
            action = self._rule(job, code, pod.disrupted)
            if action == "Ignore":
                continue  # not counted: the pod's failure was the cluster's doing
            failed += 1
            if action == "FailJob":
                reason = "PodFailurePolicy"
                message = f"Container {container['name']} for pod {key}-{failed} failed with exit code {code} matching FailJob rule"
            elif failed > backoff_limit:
                reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            else:
                await self.api.update_status(JOBS, namespace, name, {"failed": failed, "active": None, "ready": 0})
                continue
            await self.api.update_status(
                JOBS,
                namespace,
                name,
                {
                    "failed": failed,
                    "active": None,
                    "ready": 0,
                    "conditions": [
                        {
                            "type": "FailureTarget",
                            "status": "True",
                            "reason": reason,
                            "message": message,
                            "lastTransitionTime": _now(),
                        },
                        {
                            "type": "Failed",
                            "status": "True",
                            "reason": reason,
                            "message": message,
                            "lastTransitionTime": _now(),
                        },
                    ],
                },
            )
            return

    async def shutdown(self) -> None:
        for key in list(self.pods):
            self.kill(key)
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
