"""Write manifests/rbac.yaml and manifests/deployment.yaml from the chart's default render.

The plain manifests are the chart with its default values, so `kubectl apply -k manifests/`
and `helm install` install the same operator; tests/operator/test_chart.py keeps them equal.

    python tools/render_manifests.py
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from fetch_helm import fetch

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "# Rendered from charts/fluxaudit with its default values by tools/render_manifests.py:\n"
    "# edit the chart, then re-run the tool (tests/operator/test_chart.py checks they agree).\n"
)


def render_chart(*args: str) -> list[dict]:
    out = subprocess.run(
        [str(fetch()), "template", "fluxaudit", str(ROOT / "charts" / "fluxaudit"), "-n", "fluxaudit-system", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def main() -> None:
    objects = render_chart()
    files = {
        "rbac.yaml": [o for o in objects if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")],
        "deployment.yaml": [o for o in objects if o["kind"] == "Deployment"],
    }
    for name, docs in files.items():
        body = "---\n".join(yaml.safe_dump(d, sort_keys=False, width=120) for d in docs)
        (ROOT / "manifests" / name).write_text(HEADER + body)


if __name__ == "__main__":
    main()
