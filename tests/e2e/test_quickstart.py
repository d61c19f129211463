"""The README's Kubernetes quick start, run verbatim (manifests/examples/quickstart.sh) with the machine's
kubectl against the emulated cluster: install, namespace, secret, audit, ``kubectl wait`` on Ready, the
report's link from the status.  The operator runs as its own process (its Deployment has no kubelet here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_operator_e2e import operator_env
from tests.support.helpers import audit_doc
from tests.support.kube.cluster import EmulatedCluster, OperatorProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "manifests" / "examples" / "quickstart.sh"


def script_commands() -> list[str]:
    return [
        line.split("    #")[0].rstrip()
        for line in SCRIPT.read_text().splitlines()
        if line.startswith(("kubectl", "NAME="))
    ]


def test_the_readme_shows_the_script_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Kubernetes", 1)[1].split("```", 2)[1]
    shown = [line.split("    #")[0].rstrip() for line in block.splitlines() if line.startswith(("kubectl", "NAME="))]
    assert shown == script_commands() and len(shown) == 7


def test_quickstart_script_runs_to_the_report_link(tiny_model, tmp_path: Path) -> None:
    doc = audit_doc(tiny_model)
    doc["metadata"] = {"name": "quick"}
    audit = tmp_path / "audit.yaml"
    audit.write_text(yaml.safe_dump(doc))
    with EmulatedCluster(tmp_path) as cluster:
        env = operator_env(cluster, tmp_path)
        with OperatorProcess(cluster, env) as operator:
            run = subprocess.run(
                ["bash", str(SCRIPT)],
                cwd=ROOT,
                env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "AUDIT": str(audit), "HF_TOKEN": "hf_test"},
                capture_output=True,
                text=True,
                timeout=600,
            )
            log = operator.logs()
        served = {(s.verb, s.resource) for s in cluster.api.served if s.agent.startswith("kubectl")}
        secrets = cluster.api.objects_of("/v1/secrets", "audits")
    assert run.returncode == 0, run.stdout + run.stderr + log[-3000:]
    url = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"file:///.+/audit/audits/quick-[0-9a-f]{8}/report\.html", url), run.stdout
    assert Path(url.removeprefix("file://")).is_file()
    assert "condition met" in run.stdout
    # what kubectl did: the install, the namespace, the secret (never printed), the audit, the wait
    assert {("create", "customresourcedefinitions"), ("create", "namespaces"), ("create", "secrets"),
            ("create", "fluxaudits"), ("watch", "fluxaudits")} <= served  # fmt: skip
    assert [s["metadata"]["name"] for s in secrets] == ["fluxaudit-hf-token"] and "hf_test" not in run.stdout
