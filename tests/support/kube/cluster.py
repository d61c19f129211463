"""An emulated cluster for tests: API server + Job executor in a background event loop,
and the real operator as a separate process (``fluxaudit operator``), as it runs in a pod.

Tests talk to it with the official kubernetes client, as kubectl would, and wait on
conditions with timeouts (``wait_for``) — never on sleeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml
from kubernetes import client

from fluxaudit.contract import API_GROUP
from tests.support.gcs import free_port

from .apiserver import ApiServer
from .executor import JobExecutor

T = TypeVar("T")


#: ``timeout`` is what a quiet machine needs; CI shares two cores with whatever else runs, so the
#: deadline is this many times longer.  A wait ends as soon as its condition holds: a generous
#: deadline costs time only when a test is failing anyway.
SLOW_MACHINE_FACTOR = 4.0


def wait_for(what: str, check: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after the deadline
    (``timeout`` × ``SLOW_MACHINE_FACTOR``)."""
    timeout *= SLOW_MACHINE_FACTOR
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}")


class EmulatedCluster:
    def __init__(self, workdir: Path, run_pods: bool = True) -> None:
        self.workdir = workdir
        self.api = ApiServer()
        from fluxaudit_operator.crd import build_crd

        schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        names = build_crd()["spec"]["names"]
        self.api.declare(API_GROUP, "v1alpha1", "fluxaudits", "FluxAudit", schema=schema,
                         shortnames=tuple(names.get("shortNames", ())), categories=tuple(names.get("categories", ())))  # fmt: skip
        (workdir / "pods").mkdir(parents=True, exist_ok=True)
        self.executor = JobExecutor(self.api, workdir / "pods")
        self.run_pods = run_pods
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="apiserver", daemon=True)
        self._server: Any = None
        self._executor_task: asyncio.Task[None] | None = None
        self.url = ""
        self.kubeconfig = workdir / "kubeconfig.yaml"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> EmulatedCluster:
        self._thread.start()

        async def start() -> None:
            await self.api.__aenter__()
            self._server = kmock.Server(self.api)
            await self._server.__aenter__()
            if self.run_pods:
                self._executor_task = asyncio.create_task(self.executor.run())

        self.call(start())
        self.url = f"http://127.0.0.1:{self._server.port}"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {"token": "emulated-token"}}],
                    "contexts": [
                        {
                            "name": "emulated",
                            "context": {"cluster": "emulated", "user": "tester", "namespace": "default"},
                        }
                    ],
                    "current-context": "emulated",
                }
            )
        )
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._executor_task is not None:
                self._executor_task.cancel()
            await self.executor.shutdown()
            await self.api.close_watches()
            await self._server.__aexit__(None, None, None)
            await self.api.__aexit__(None, None, None)

        try:
            # aiohttp's runner waits up to 60 s for request handlers still open at shutdown: outlast it
            self.call(stop(), timeout=90)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def bind_claim(self, claim: str, folder: Path) -> None:
        """Make a PersistentVolumeClaim name resolve to a local folder for the Job executor."""
        folder.mkdir(parents=True, exist_ok=True)
        self.executor.claims[claim] = folder

    def client(self) -> client.ApiClient:
        """The official client, configured as kubectl would be from the kubeconfig."""
        config = client.Configuration(host=self.url)
        config.api_key = {"authorization": "Bearer emulated-token"}
        return client.ApiClient(config)

    def add_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        import base64

        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        self.call(self.api.put_object("/v1/secrets", body))


class OperatorProcess:
    """``fluxaudit operator`` in its own process, with its logs captured to a file."""

    def __init__(self, cluster: EmulatedCluster, env: dict[str, str], name: str = "operator") -> None:
        self.cluster = cluster
        self.log_path = cluster.workdir / f"{name}.log"
        self.liveness_port = free_port()
        self.metrics_port = free_port()
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "FLUXAUDIT_RECONCILE_SECONDS": "1",
            "FLUXAUDIT_METRICS_PORT": str(self.metrics_port),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fluxaudit_cli",
                "operator",
                "--liveness",
                f"http://127.0.0.1:{self.liveness_port}/healthz",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as when a node dies under the operator."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
