"""``fluxaudit compare`` and report.csv: a regression beyond the noise is flagged (exit 4), noise and
identical audits pass, and the context that explains a change (machines, references) is named."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from fluxaudit.contract import ExitCode
from fluxaudit.report.compare import compare
from fluxaudit.report.export import COLUMNS, cells_csv
from tests.support.helpers import run_cli

GOLDEN = Path(__file__).parent / "golden" / "report.json"


def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def synthetic(step_ms: dict[str, float], noise: float, seed: int, cells: int = 15) -> dict[str, Any]:
    """A report with ``cells`` timed cells per quant around ``step_ms``, each ×(1 ± noise)."""
    rng = np.random.default_rng(seed)
    doc = golden()
    doc["cells"] = [
        {"quant": q, "guidance": 2.0, "seed": 0, "secondsPerStep": ms / 1000 * (1 + noise * rng.uniform(-1, 1))}
        for q, ms in step_ms.items()
        for _ in range(cells)
    ]
    return doc


def test_identical_audits_pass_and_every_cell_is_compared() -> None:
    result = compare(golden(), golden())
    assert not result.regressions and not result.notes
    assert {s.quant for s in result.speed} == {"Q4_0", "Q5_K_S", "Q8_0"}
    assert all(s.verdict == "within noise" and s.interval.ratio == 1.0 for s in result.speed)
    assert len(result.quality) == len(golden()["quality"]["cells"])


def test_an_injected_slowdown_is_flagged_and_noise_of_the_same_size_is_not() -> None:
    base = synthetic({"Q4_0": 110.0, "Q8_0": 114.0}, noise=0.04, seed=1)
    noisy = synthetic({"Q4_0": 110.0, "Q8_0": 114.0}, noise=0.04, seed=2)  # same speed, other samples
    assert not compare(base, noisy).regressions
    slower = synthetic({"Q4_0": 110.0 * 1.15, "Q8_0": 114.0}, noise=0.04, seed=2)
    result = compare(base, slower)
    (flagged,) = [s for s in result.speed if s.verdict == "slower"]
    assert flagged.quant == "Q4_0" and flagged.interval.low > 1.05 and len(result.regressions) == 1
    faster = synthetic({"Q4_0": 110.0 / 1.15, "Q8_0": 114.0}, noise=0.04, seed=2)
    assert [s.verdict for s in compare(base, faster).speed] == ["faster", "within noise"]
    assert not compare(base, faster).regressions


def test_a_quality_drop_beyond_the_threshold_is_flagged_and_a_small_one_is_not() -> None:
    worse = golden()
    worse["quality"]["cells"][0]["psnrWhole"] -= 3.0
    (flag,) = compare(golden(), worse).regressions
    assert "Q4_0 guidance 2 seed 0" in flag
    slight = golden()
    slight["quality"]["cells"][0]["psnrWhole"] -= 0.5
    assert not compare(golden(), slight).regressions


def test_context_that_explains_a_change_is_named() -> None:
    other = copy.deepcopy(golden())
    other["environment"]["torch"] = "2.14.0+cpu"
    other["quality"]["reference"] = "bf16"
    other["groups"][0]["calibration"]["tflopsMedian"] *= 1.5
    notes = compare(golden(), other).notes
    assert any("torch" in n and "2.14.0+cpu" in n for n in notes)
    assert any("different references" in n for n in notes)
    assert any("calibration" in n and "+50.0%" in n for n in notes)


def test_cli_exit_codes_for_ci(tmp_path: Path) -> None:
    slower = golden()
    for cell in slower["cells"]:
        if cell["quant"] == "Q5_K_S":
            cell["secondsPerStep"] *= 1.5
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "report.json").write_text(json.dumps(slower))
    same = run_cli("compare", str(GOLDEN), str(GOLDEN))
    assert same.returncode == ExitCode.OK and "no regression" in same.stderr
    regressed = run_cli("compare", str(GOLDEN), str(tmp_path / "b"))  # a run folder holding report.json
    assert regressed.returncode == ExitCode.REGRESSION, regressed.stderr
    assert "regression: Q5_K_S: 1.500× slower" in regressed.stderr
    missing = run_cli("compare", str(GOLDEN), str(tmp_path / "nowhere"))
    assert missing.returncode == ExitCode.INVALID_SPEC and "no such file or folder" in missing.stderr


def test_report_csv_has_one_row_per_cell_with_its_quality() -> None:
    doc = golden()
    rows = list(csv.DictReader(io.StringIO(cells_csv(doc))))
    assert tuple(rows[0]) == COLUMNS and len(rows) == len(doc["cells"])
    q4 = next(r for r in rows if r["quant"] == "Q4_0" and float(r["guidance"]) == 2.0)
    quality = next(c for c in doc["quality"]["cells"] if c["quant"] == "Q4_0" and c["guidance"] == 2.0)
    assert float(q4["psnrWhole"]) == quality["psnrWhole"] and float(q4["secondsPerStep"]) > 0
    reference = next(r for r in rows if r["quant"] == "Q8_0")
    assert reference["psnrWhole"] == "inf"  # the reference against itself, as report.json says


def test_a_bucket_target_with_credentials_is_refused_without_echoing_them() -> None:
    refused = run_cli("compare", "gs://alice:s3cret@bucket-1/audit/r", str(GOLDEN))
    assert refused.returncode == ExitCode.INVALID_SPEC and "take no user or password" in refused.stderr
    assert "s3cret" not in refused.stderr + refused.stdout and "alice" not in refused.stderr + refused.stdout
