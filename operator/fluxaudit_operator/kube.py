"""The operator's only door to the Kubernetes API: the official client, raw JSON in and out.

Raw dicts (``_preload_content=False``) instead of the client's models: the pure
planning code reads and writes plain manifests, and nothing is lost or renamed in a
round trip through generated classes.  Calls are blocking; handlers run them in a
thread so the kopf event loop keeps serving watches.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from fluxaudit.contract import API_GROUP, LABEL_AUDIT, PLURAL, VERSION
from fluxaudit.errors import TransientError

from .waiting import owned_by

KUEUE_GROUP, KUEUE_VERSION = "kueue.x-k8s.io", "v1beta1"


class ForeignJob(TransientError):
    """A Job with our deterministic name exists but belongs to another (older) FluxAudit."""


def load_configuration() -> client.Configuration:
    """In a pod: its service account; elsewhere: the kubeconfig (``$KUBECONFIG``), as kubectl does."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return configuration


class Kube:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api = api_client or client.ApiClient(load_configuration())
        self.api.user_agent = f"fluxaudit-operator/{version('fluxaudit')}"  # names us in audit logs
        self.batch = client.BatchV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    @staticmethod
    def _json(response: Any) -> Any:
        return json.loads(response.data)

    def get_audit(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json(
                self.custom.get_namespaced_custom_object(
                    API_GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list_jobs(self, namespace: str, audit_name: str, uid: str) -> list[dict[str, Any]]:
        """This audit's Jobs: by label on the server, by owner uid here (a Job left by a deleted
        FluxAudit of the same name is not ours, even while the garbage collector is behind)."""
        items = self._json(
            self.batch.list_namespaced_job(
                namespace, label_selector=f"{LABEL_AUDIT}={audit_name}", _preload_content=False
            )
        )["items"]
        return [j for j in items if owned_by(j, uid)]

    def list_pods(self, namespace: str, audit_name: str) -> list[dict[str, Any]] | None:
        """The pods of this audit's Jobs (they carry the Job template's labels); None when the
        installation did not grant reading pods (status then says less, nothing breaks)."""
        try:
            return self._json(
                self.core.list_namespaced_pod(
                    namespace, label_selector=f"{LABEL_AUDIT}={audit_name}", _preload_content=False
                )
            )["items"]
        except ApiException as exc:
            if exc.status in (401, 403):
                return None
            raise

    def list_workloads(self, namespace: str) -> list[dict[str, Any]] | None:
        """Kueue Workloads in the namespace; None where Kueue is not installed or not readable."""
        try:
            return self._json(
                self.custom.list_namespaced_custom_object(
                    KUEUE_GROUP, KUEUE_VERSION, namespace, "workloads", _preload_content=False
                )
            )["items"]
        except ApiException as exc:
            if exc.status in (401, 403, 404):
                return None
            raise

    def create_job(self, manifest: dict[str, Any]) -> bool:
        """Create, or adopt the Job that already has this name: True when newly created."""
        meta = manifest["metadata"]
        try:
            self.batch.create_namespaced_job(meta["namespace"], manifest, _preload_content=False)
            return True
        except ApiException as exc:
            if exc.status != 409:
                raise
        # Read it back with ``list`` (a verb the operator holds anyway), not ``get``: least privilege.
        (existing,) = self._json(
            self.batch.list_namespaced_job(
                meta["namespace"], field_selector=f"metadata.name={meta['name']}", _preload_content=False
            )
        )["items"]
        owner = manifest["metadata"]["ownerReferences"][0]["uid"]
        if not owned_by(existing, owner):
            raise ForeignJob(
                f"Job {meta['namespace']}/{meta['name']} belongs to an earlier FluxAudit of the same name; "
                "waiting for the garbage collector to delete it"
            )
        return False

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """Write the status; False when the audit was deleted meanwhile (nothing left to report on)."""
        try:
            self.custom.patch_namespaced_custom_object_status(
                API_GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
