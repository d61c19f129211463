"""The layering of DESIGN.md, checked: the contract imports no layer above it, the operator side
never loads torch, and the habits the restructuring removed cannot come back."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "fluxaudit", ROOT / "runner" / "fluxaudit_runner", ROOT / "operator" / "fluxaudit_operator",
           ROOT / "cli" / "fluxaudit_cli"]  # fmt: skip
MAX_MODULE_LINES = 400


def _modules(package: Path, prefix: str) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        out.append(".".join((prefix, *parts[:-1])) if parts[-1] == "__init__" else ".".join((prefix, *parts)))
    return out


def _loaded_after_import(modules: list[str], watched: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({watched!r})))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return eval(res.stdout.strip().splitlines()[-1])  # a printed list of names


def test_the_contract_imports_no_layer_above_it() -> None:
    """fluxaudit is what runner and operator share: it must load without either, without torch or kopf."""
    contract = _modules(ROOT / "fluxaudit", "fluxaudit")
    assert "fluxaudit.report.markdown" in contract and "fluxaudit.storage.firebase" in contract
    watched = ("fluxaudit_runner", "fluxaudit_operator", "fluxaudit_cli", "torch", "diffusers", "kopf", "kubernetes")
    assert _loaded_after_import(contract, watched) == []


def test_the_operator_side_never_imports_torch() -> None:
    """DESIGN: the operator image stays small; only the runner carries CUDA."""
    operator = _modules(ROOT / "operator" / "fluxaudit_operator", "fluxaudit_operator")
    loaded = _loaded_after_import(["fluxaudit_cli", *operator], ("torch", "diffusers", "transformers"))
    assert loaded == []


def test_runner_and_operator_never_import_each_other_or_the_cli() -> None:
    for package, forbidden in (
        (ROOT / "runner" / "fluxaudit_runner", ("fluxaudit_operator", "fluxaudit_cli")),
        (ROOT / "operator" / "fluxaudit_operator", ("fluxaudit_runner", "fluxaudit_cli")),
    ):
        for path in package.rglob("*.py"):
            text = path.read_text()
            for name in forbidden:
                assert not re.search(rf"^\s*(from|import) {name}\b", text, re.M), f"{path} imports {name}"


@pytest.mark.parametrize("package", SOURCES, ids=lambda p: p.name)
def test_no_module_is_over_the_size_limit(package: Path) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in package.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these modules (one module, one job): {long}"


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"type\([^)]*\)\.__name__\s*[=!]=", "match errors by type, imported where they are defined"),
        (r"getattr\(\s*storage", "use the Storage interface, not a backend's attributes"),
        (r"isinstance\([^)]*(LocalStorage|FirebaseStorage)", "use the Storage interface, not the backend's class"),
        (r"(signed_url|location|read_uri|link)\(.*# type: ignore", "storage calls are typed by the interface"),
    ],
)
def test_removed_habits_stay_removed(pattern: str, why: str) -> None:
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for package in SOURCES
        for p in package.rglob("*.py")
        if "storage" not in p.relative_to(ROOT).parts or "isinstance" not in pattern
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert found == [], f"{why}: {found}"
