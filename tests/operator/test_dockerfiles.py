"""The images cannot be built here (no Docker engine); what can be checked statically is:
pinned bases, a non-root user, the operator without torch, the runner on the pinned torch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "operator" / "Dockerfile", ROOT / "runner" / "Dockerfile"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_pinned_base_and_non_root(path: Path) -> None:
    text = path.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert bases and all(":" in b and not b.endswith(":latest") for b in bases), bases
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    # Every file the image installs from is in the build context (.dockerignore keeps them).
    ignored = (ROOT / ".dockerignore").read_text().split()
    for src in re.findall(r"^COPY\s+(\S+)", text, flags=re.M):
        assert src not in ignored and (ROOT / src).exists(), src


def test_operator_image_has_no_torch_and_runner_pins_it() -> None:
    operator = (ROOT / "operator" / "Dockerfile").read_text()
    runner = (ROOT / "runner" / "Dockerfile").read_text()
    assert "torch" not in operator.replace("no torch", "") and '".[operator]"' in operator
    pinned = re.search(r'"torch==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f"torch=={pinned}" in runner and "download.pytorch.org/whl/cu" in runner
