"""The recommendation rules on constructed result sets."""

from __future__ import annotations

import math
from typing import Any

from fluxaudit.report.decisions import (
    CellQuality,
    compile_decision,
    guidance_table,
    pick_reference,
    recommend_quant,
    verdict,
)
from fluxaudit.report.model import GroupSummary
from fluxaudit.results import CompileCheck
from fluxaudit.spec import QualitySpec

Q = QualitySpec()


def group(label: str, seconds: float | None, size: int, status: str = "complete") -> GroupSummary:
    return GroupSummary(
        label=label,
        file=f"{label}.gguf",
        status=status,
        cells_done=2,
        cells_total=2,
        bytes=size,
        sha256="0" * 64,
        median_wall_seconds=seconds,
        median_seconds_per_step=seconds,
        max_peak_memory_bytes=1,
        attempts=1,
    )


def cell(quant: str, g: float, psnr: float, ssim: float = 0.99, outside: float | None = None, **kw: Any) -> CellQuality:
    base = dict(
        quant=quant,
        guidance=g,
        seed=0,
        psnr_whole=psnr,
        psnr_inside=psnr,
        psnr_outside=psnr if outside is None else outside,
        ssim_whole=ssim,
        ssim_inside=ssim,
        ssim_outside=ssim,
        latent_mad=0.01,
        psnr_outside_vs_input=30.0,
        clipped_inside=0.0,
    )
    base.update(kw)
    return CellQuality(**base)


def test_reference_defaults_to_largest_complete_file() -> None:
    groups = [group("Q4_0", 1.0, 6), group("Q8_0", 1.2, 12), group("Q6_K", 1.1, 10)]
    assert pick_reference(None, groups)[0] == "Q8_0"
    groups[1] = group("Q8_0", None, 12, status="failed")
    assert pick_reference(None, groups)[0] == "Q6_K"
    ref, why = pick_reference("bf16", groups)
    assert ref is None and "no complete results" in why


def test_fastest_passing_quant_wins() -> None:
    groups = [group("Q4_0", 1.0, 6), group("Q5_K_S", 1.3, 8), group("Q8_0", 1.6, 12)]
    verdicts = [
        verdict("Q4_0", [cell("Q4_0", 2, 45), cell("Q4_0", 30, 44)], Q),
        verdict("Q5_K_S", [cell("Q5_K_S", 2, 48), cell("Q5_K_S", 30, 47)], Q),
        verdict("Q8_0", [cell("Q8_0", 2, math.inf, 1.0), cell("Q8_0", 30, math.inf, 1.0)], Q),
    ]
    assert recommend_quant(verdicts, groups, Q)[0] == "Q4_0"


def test_quant_failing_at_one_guidance_only_is_excluded() -> None:
    groups = [group("Q4_0", 1.0, 6), group("Q8_0", 1.6, 12)]
    bad = verdict("Q4_0", [cell("Q4_0", 2, 45), cell("Q4_0", 30, 25.0)], Q)
    assert not bad.passes and len(bad.failures) == 1 and bad.failures[0].startswith("gs30/seed 0: PSNR 25.0 < 30 dB")
    good = verdict("Q8_0", [cell("Q8_0", 2, math.inf, 1.0), cell("Q8_0", 30, math.inf, 1.0)], Q)
    label, reason = recommend_quant([bad, good], groups, Q)
    assert label == "Q8_0" and "passes every cell" in reason


def test_each_threshold_can_fail_a_cell() -> None:
    assert "SSIM 0.800 < 0.9" in verdict("Q", [cell("Q", 4, 45, ssim=0.8)], Q).failures[0]
    assert "outside-mask PSNR 20.0 < 30 dB" in verdict("Q", [cell("Q", 4, 45, outside=20.0)], Q).failures[0]
    strict = QualitySpec(min_psnr_db=50)
    assert not verdict("Q", [cell("Q", 4, 45)], strict).passes
    missing = verdict("Q", [cell("Q", 4, 45, psnr_whole=None)], Q)
    assert not missing.passes and "no reference result" in missing.failures[0]


def test_ties_go_to_the_smaller_file() -> None:
    groups = [group("Q5_K_S", 1.01, 8), group("Q4_0", 1.0, 6), group("Q8_0", 1.02, 12)]
    verdicts = [verdict(g.label, [cell(g.label, 2, 45)], Q) for g in groups]
    assert recommend_quant(verdicts, groups, Q)[0] == "Q4_0"
    # Q4_0 slower beyond the tolerance: the faster Q5_K_S wins despite its size.
    groups = [group("Q5_K_S", 1.0, 8), group("Q4_0", 1.2, 6)]
    verdicts = [verdict(g.label, [cell(g.label, 2, 45)], Q) for g in groups]
    label, reason = recommend_quant(verdicts, groups, Q)
    assert label == "Q5_K_S" and "as fast" not in reason
    # Within the tolerance: equally fast, so the smaller file wins and the reason says why.
    groups = [group("Q5_K_S", 1.0, 8), group("Q4_0", 1.02, 6)]
    label, reason = recommend_quant(verdicts, groups, Q)
    assert label == "Q4_0" and "as fast (within 3%) as Q5_K_S" in reason


def test_no_passing_quant() -> None:
    groups = [group("Q4_0", 1.0, 6)]
    label, reason = recommend_quant([verdict("Q4_0", [cell("Q4_0", 2, 10)], Q)], groups, Q)
    assert label is None and "no quant" in reason


def test_unquantized_reference_is_never_recommended() -> None:
    groups = [group("bf16", 0.5, 24), group("Q8_0", 1.0, 12)]
    verdicts = [verdict("bf16", [cell("bf16", 2, math.inf, 1.0)], Q), verdict("Q8_0", [cell("Q8_0", 2, 60)], Q)]
    assert recommend_quant(verdicts, groups, Q)[0] == "Q8_0"


def test_guidance_flags_and_suggestion() -> None:
    cells = [
        cell("Q", 2, 45, psnr_outside_vs_input=31.0),
        cell("Q", 4, 45, psnr_outside_vs_input=32.0),
        cell("Q", 10, 45, psnr_outside_vs_input=33.0, clipped_inside=0.10),
        cell("Q", 30, 45, psnr_outside_vs_input=25.0),
    ]
    rows, suggested = guidance_table(cells, "Q", [2, 4, 10, 30], Q)
    flags = {r.guidance: r.flags for r in rows}
    assert flags[2] == [] and flags[4] == []
    assert flags[10] == ["saturation: 10.0% of in-mask pixels clipped"]
    assert flags[30] == ["outside-mask drift: 8.0 dB below the best guidance"]
    assert suggested == 4  # best outside-mask fidelity among unflagged guidance


def _cc(breaks: int = 0, speedup: dict[str, float] | None = None, error: str | None = None) -> CompileCheck:
    if speedup is not None:
        speedup = {"mode": "whole", "backend": "inductor", "outputPsnrDb": None, "outputMaxAbsDiff": 0.0, **speedup}
    doc = {
        "quant": "Q",
        "torch": "2",
        "device": "cuda",
        "explain": [
            {
                "target": "pipeline",
                "graphCount": 22,
                "graphBreakCount": 21,
                "opCount": 1,
                "seconds": 1.0,
                "error": None,
                "breakReasons": [],
            },
            {
                "target": "transformer",
                "graphCount": breaks + 1,
                "graphBreakCount": breaks,
                "opCount": 1,
                "seconds": 1.0,
                "error": error,
                "breakReasons": [{"reason": "data-dependent branch", "count": breaks}] if breaks else [],
            },
        ],
        "speedup": speedup,
    }
    return CompileCheck.model_validate(doc)


def test_compile_decisions() -> None:
    assert compile_decision(None)[0] == "not run"
    assert compile_decision(_cc())[0].startswith("go (traceable")
    decision, reasons = compile_decision(_cc(breaks=2))
    assert decision == "no-go" and "break: data-dependent branch" in reasons
    assert compile_decision(_cc(error="Unsupported op"))[0] == "no-go"
    fast = {"speedup": 1.6, "eagerStepSeconds": 0.24, "compiledStepSeconds": 0.15, "compileSeconds": 190.0}
    decision, reasons = compile_decision(_cc(speedup=fast))
    assert decision == "go" and "measured 1.60× (240.0 → 150.0 ms per forward) after 190 s of compiling" in reasons
    assert compile_decision(_cc(speedup={**fast, "speedup": 1.02}))[0] == "marginal"
    assert compile_decision(_cc(speedup={**fast, "speedup": 0.9}))[0] == "no-go"
