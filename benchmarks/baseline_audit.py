"""The default audit as the code of another commit ran it, for a before/after in one run (#18's ×4.9).

    mkdir -p /tmp/issue-tree && git archive 4b172b6 | tar -x -C /tmp/issue-tree   # the code of #18's first number
    python -m benchmarks.default_audit --root /tmp/full --runs 1 --baseline-tree /tmp/issue-tree

``default_audit`` calls :func:`run_baseline` after its own runs: the same audit document, weights and input
(built by ``default_audit``), run by that tree's ``run_audit`` in a child process under the same memory cap,
with compile caches of its own, so each side compiles from cold.  The child uses only what that commit
already had (``parse_document``, ``LocalStorage``, ``run_audit``, the partials' ``cells[].step_seconds``),
and prints one JSON line: the audit's wall time (groups and report) and its timed denoising.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: run by the other tree's Python path: argv is the memory cap in GiB and the run folder, stdin the document.
CHILD = """
import json, sys, time
import torch
if torch.cuda.is_available():
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(float(sys.argv[1]) * 2**30 / total)
from fluxaudit.spec import parse_document
from fluxaudit.storage import LocalStorage
from fluxaudit_runner.local import quiet_libraries, run_audit
quiet_libraries()
audit = parse_document(json.loads(sys.stdin.read()))
start = time.perf_counter()
outcome = run_audit(audit, LocalStorage(sys.argv[2]))
wall = time.perf_counter() - start
denoise = {label: sum(sum(c.step_seconds) for c in p.cells) for label, p in outcome.partials.items() if p}
total_denoise = sum(denoise.values())
print("BASELINE " + json.dumps({
    "auditWallSeconds": wall, "denoiseSeconds": total_denoise, "groupDenoiseSeconds": denoise,
    "wallOverDenoise": wall / total_denoise if total_denoise else None, "failures": outcome.failures,
    "groups": list(audit.spec.group_labels()),
}))
"""


def child_path(tree: Path) -> str:
    """The other tree's packages first, then whatever else this process's path holds (installed wheels),
    without this checkout's own folders."""
    own = {str(REPO / p) for p in ("", "runner", "operator", "cli")} | {str(REPO), "."}
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p.rstrip("/") not in own]
    return os.pathsep.join([str(tree), str(tree / "runner"), str(tree / "operator"), *inherited])


def run_baseline(tree: Path, document: dict[str, Any], folder: Path, cap_gib: float, timeout: float = 3600) -> dict:
    """The other tree's audit of ``document`` into ``folder``; its JSON line, or what went wrong."""
    cache = folder.parent / f"{folder.name}-compile-cache"
    env = {
        **os.environ,
        "PYTHONPATH": child_path(tree),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),  # cold, like the run it is compared with
        "TRITON_CACHE_DIR": str(cache / "triton"),
    }
    env.pop("FLUXAUDIT_COMPILE_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(cap_gib), str(folder)],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        timeout=timeout,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("BASELINE "):
            return {"tree": str(tree), **json.loads(line.removeprefix("BASELINE "))}
    return {"tree": str(tree), "error": f"exit {done.returncode}", "stderrTail": done.stderr[-3000:]}
