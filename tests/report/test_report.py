"""Report rendering from results alone: escaping, missing groups, stable output."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from fluxaudit.layout import RunLayout
from fluxaudit.report import build_report
from fluxaudit.report.markdown import esc
from fluxaudit.spec import parse_document
from fluxaudit.storage import LocalStorage

DOC = {
    "apiVersion": "fluxaudit.dev/v1alpha1",
    "kind": "FluxAudit",
    "metadata": {"name": "r"},
    "spec": {"input": {"image": "file:///nope/i.png", "mask": "file:///nope/m.png"}, "runId": "r1"},
}


def test_escape_blocks_markdown_and_html_injection() -> None:
    evil = "x | y [click](javascript:alert(1)) <script>alert(1)</script> `code` *b* _i_\nnew line"
    out = esc(evil)
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "[click]" not in out and "\\[click\\]" in out
    assert " | " not in out and "\\|" in out
    assert "\n" not in out and "\\`code\\`" in out


def test_report_of_a_run_with_no_results(tmp_path: Path) -> None:
    doc = copy.deepcopy(DOC)
    doc["spec"]["input"]["prompt"] = "ground | <img src=x onerror=alert(1)> [a](b)"
    audit = parse_document(doc)
    storage = LocalStorage(tmp_path)
    built = build_report(audit, storage)
    assert not built.data.complete and built.data.missing == ["Q4_0", "Q5_K_S", "Q8_0", "bf16"]
    md = built.markdown
    assert "INCOMPLETE" in md and md.count("| missing (no results were written) |") == 4
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "**Recommended: none**" in md
    lay = RunLayout("audit", "r1")
    for path in (lay.report_md, lay.report_json, lay.contact_sheet, lay.latency_chart, lay.diff_sheet, lay.drift_chart):
        assert storage.exists(path), path
    assert built.json["summary"]["failedGroups"] == ["Q4_0", "Q5_K_S", "Q8_0", "bf16"]
    # Rebuilding from the same (absent) results gives the same bytes.
    again = build_report(audit, storage)
    assert again.markdown == md and again.json == built.json


def test_the_report_build_benchmark_runs_on_the_stored_run(tmp_path) -> None:
    """``benchmarks/report_build.py`` at a small size: its blown-up copy builds a report of every cell."""
    import subprocess
    import sys

    stored = Path(__file__).parent / "fixtures"
    out = subprocess.run([sys.executable, "-m", "benchmarks.report_build", "--run", str(stored), "--side", "128",
                          "--repeats", "1"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["side"] == 128 and record["cells"] == 6 and len(record["seconds"]) == 1
