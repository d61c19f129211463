"""The recommendation rules on constructed result sets: quality gates the candidates, the reference is
never one of them, and the noise-aware speed rule (tests/report/test_speed.py) picks among them."""

from __future__ import annotations

import math
from typing import Any

from fluxaudit.report.cell_quality import CellQuality
from fluxaudit.report.compile_verdict import compile_decision
from fluxaudit.report.decisions import (
    guidance_table,
    pick_reference,
    recommend_quant,
    verdict,
)
from fluxaudit.report.model import GroupSummary
from fluxaudit.results import CompileCheck, TracedBlocks
from fluxaudit.spec import QualitySpec, parse_document
from tests.report.test_speed import images, timing

Q = QualitySpec()
SPEC = parse_document(
    {
        "apiVersion": "fluxaudit.dev/v1alpha1",
        "kind": "FluxAudit",
        "metadata": {"name": "d"},
        "spec": {"input": {"userId": "u", "sessionId": "s"}},
    }
).spec


def group(label: str, seconds: float | None, size: int, status: str = "complete", noise: float = 0.02) -> GroupSummary:
    """A group whose stock step times centre on ``seconds`` (15 images × 28 steps, known noise)."""
    seed = sum(map(ord, label))
    timings = [] if seconds is None else [timing(images(seconds * 1000, noise, seed=seed))]
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
        timings=timings,
    )


def recommend(verdicts: list, groups: list[GroupSummary], reference: str | None = "bf16") -> tuple[str | None, str]:
    speed, _ = recommend_quant(verdicts, groups, reference, SPEC)
    return speed.pick, speed.reason


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
    assert recommend(verdicts, groups)[0] == "Q4_0"


def test_quant_failing_at_one_guidance_only_is_excluded() -> None:
    groups = [group("Q4_0", 1.0, 6), group("Q8_0", 1.6, 12)]
    bad = verdict("Q4_0", [cell("Q4_0", 2, 45), cell("Q4_0", 30, 25.0)], Q)
    assert not bad.passes and len(bad.failures) == 1 and bad.failures[0].startswith("gs30/seed 0: PSNR 25.0 < 30 dB")
    good = verdict("Q8_0", [cell("Q8_0", 2, math.inf, 1.0), cell("Q8_0", 30, math.inf, 1.0)], Q)
    label, reason = recommend([bad, good], groups)
    assert label == "Q8_0" and "only quant that passes" in reason


def test_each_threshold_can_fail_a_cell() -> None:
    assert "SSIM 0.800 < 0.9" in verdict("Q", [cell("Q", 4, 45, ssim=0.8)], Q).failures[0]
    assert "outside-mask PSNR 20.0 < 30 dB" in verdict("Q", [cell("Q", 4, 45, outside=20.0)], Q).failures[0]
    strict = QualitySpec(min_psnr_db=50)
    assert not verdict("Q", [cell("Q", 4, 45)], strict).passes
    missing = verdict("Q", [cell("Q", 4, 45, psnr_whole=None)], Q)
    assert not missing.passes and "no reference result" in missing.failures[0]


def test_ties_go_to_the_smaller_file() -> None:
    groups = [group("Q5_K_S", 0.101, 8), group("Q4_0", 0.100, 6), group("Q8_0", 0.102, 12)]
    verdicts = [verdict(g.label, [cell(g.label, 2, 45)], Q) for g in groups]
    assert recommend(verdicts, groups)[0] == "Q4_0"
    # Q4_0 distinguishably slower: the faster Q5_K_S wins despite its size.
    groups = [group("Q5_K_S", 0.100, 8), group("Q4_0", 0.120, 6)]
    verdicts = [verdict(g.label, [cell(g.label, 2, 45)], Q) for g in groups]
    label, reason = recommend(verdicts, groups)
    assert label == "Q5_K_S" and "distinguishably" in reason
    # Within the noise: not distinguishable, so the smaller file wins and the reason says why.
    groups = [group("Q5_K_S", 0.100, 8, noise=0.1), group("Q4_0", 0.102, 6, noise=0.1)]
    label, reason = recommend(verdicts, groups)
    assert label == "Q4_0" and "not distinguishable at the measured noise" in reason


def test_no_passing_quant() -> None:
    groups = [group("Q4_0", 1.0, 6)]
    speed, _ = recommend_quant([verdict("Q4_0", [cell("Q4_0", 2, 10)], Q)], groups, "bf16", SPEC)
    assert speed.pick is None and speed.basis == "none-pass"


def test_unquantized_reference_is_never_recommended() -> None:
    groups = [group("bf16", 0.5, 24), group("Q8_0", 1.0, 12)]
    verdicts = [verdict("bf16", [cell("bf16", 2, math.inf, 1.0)], Q), verdict("Q8_0", [cell("Q8_0", 2, 60)], Q)]
    assert recommend(verdicts, groups)[0] == "Q8_0"


def test_a_quant_as_reference_is_never_recommended_for_passing_against_itself() -> None:
    groups = [group("Q4_0", 0.20, 6), group("Q8_0", 0.10, 12)]  # the reference is the faster one
    verdicts = [verdict("Q8_0", [cell("Q8_0", 2, math.inf, 1.0)], Q), verdict("Q4_0", [cell("Q4_0", 2, 45)], Q)]
    speed, _ = recommend_quant(verdicts, groups, "Q8_0", SPEC)
    assert (speed.pick, speed.basis) == ("Q4_0", "only-passing")
    alone = recommend_quant([verdicts[0]], groups[1:], "Q8_0", SPEC)[0]
    assert (alone.pick, alone.basis) == (None, "none-pass")  # passing against itself is no pass


def test_the_other_runtime_answers_beside_the_chosen_one() -> None:
    stock = {"Q8_0": 0.240, "Q4_0": 0.315}  # stock diffusers: Q8_0 fastest
    fast = {"Q8_0": 0.140, "Q4_0": 0.138}  # the fast path: tied
    groups = [
        group(label, None, size).model_copy(
            update={
                "timings": [
                    timing(images(stock[label] * 1000, 0.02, seed=size)),
                    timing(images(fast[label] * 1000, 0.1, seed=size + 1), "fastPath"),
                ]
            }
        )
        for label, size in (("Q8_0", 12), ("Q4_0", 6))
    ]
    verdicts = [verdict(g.label, [cell(g.label, 2, 45)], Q) for g in groups]
    chosen, other = recommend_quant(verdicts, groups, "bf16", SPEC)
    assert (chosen.runtime, chosen.pick, chosen.basis) == ("stock", "Q8_0", "faster")
    assert other is not None and (other.runtime, other.pick, other.basis) == ("fastPath", "Q4_0", "tied")


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
    # 190 s ÷ (90 ms saved × 28 steps) = 75.4 images before compiling pays for itself
    assert "break-even after 75.4 images of 28 steps (compile seconds ÷ seconds saved per image)" in reasons
    assert compile_decision(_cc(speedup={**fast, "speedup": 1.02}))[0] == "marginal"
    assert compile_decision(_cc(speedup={**fast, "speedup": 0.9}))[0] == "no-go"


def test_a_faster_quant_whose_fills_hallucinate_more_than_the_reference_is_not_recommended() -> None:
    """Drift passes for both, and Q4_0 is clearly faster; paired cell by cell (5 guidance × 2 seeds), its
    fills read as an object far more often than the reference's: it fails, with the interval as the reason."""
    from fluxaudit.report.decisions import gate_on_fill
    from fluxaudit.report.paired import paired_comparisons

    cells = []
    for g in (2, 4, 10, 20, 30):
        for seed in (0, 1):
            cells.append(cell("bf16", g, math.inf, 1.0, seed=seed, hallucination=0.10, seam=1.0))
            cells.append(cell("Q4_0", g, 45, seed=seed, hallucination=0.60 + 0.01 * seed, seam=1.0))
            cells.append(cell("Q8_0", g, 50, seed=seed, hallucination=0.11, seam=1.02))
    paired = paired_comparisons(cells, "bf16")
    verdicts = [gate_on_fill(verdict(q, [c for c in cells if c.quant == q], Q), paired) for q in ("Q4_0", "Q8_0")]
    q4, q8 = verdicts
    assert not q4.passes and q4.failures == [
        "paired hallucination: worse than bf16 (median difference +0.505 [+0.5, +0.51] over 10 pairs)"
    ]
    assert q8.passes  # within the ties: not distinguishable from the reference
    groups = [group("Q4_0", 1.0, 6), group("Q8_0", 1.6, 12)]
    assert recommend(verdicts, groups)[0] == "Q8_0"
    # the same cells without the hallucinated fills: Q4_0 passes and, faster, is recommended
    clean = [c.model_copy(update={"hallucination": 0.10}) if c.quant == "Q4_0" else c for c in cells]
    paired = paired_comparisons(clean, "bf16")
    verdicts = [gate_on_fill(verdict(q, [c for c in clean if c.quant == q], Q), paired) for q in ("Q4_0", "Q8_0")]
    assert all(v.passes for v in verdicts) and recommend(verdicts, groups)[0] == "Q4_0"


def test_guidance_is_suggested_by_the_paired_fill_and_never_one_that_hallucinates_more() -> None:
    """Over 3 quants × 2 seeds (6 pairs per guidance): 4 has cleaner seams than 30, 2 cleaner seams but more
    hallucination, 10 the same as 30 — 4 is suggested; with seams alike, nothing beats 30 and 30 stays."""
    from fluxaudit.report.decisions import suggest_guidance
    from fluxaudit.report.paired import paired_comparisons

    def cells(seams: dict[float, float], hallucinations: dict[float, float]) -> list[CellQuality]:
        return [
            cell(q, g, 45, seed=seed, seam=seams[g] + 0.001 * seed, hallucination=hallucinations[g])
            for q in ("Q4_0", "Q5_K_S", "Q8_0") for g in (2, 4, 10, 30) for seed in (0, 1)
        ]  # fmt: skip

    rows, outside_pick = guidance_table(cells({2: 1, 4: 1, 10: 1, 30: 1}, {2: 0, 4: 0, 10: 0, 30: 0}), "Q4_0",
                                        [2, 4, 10, 30], Q)  # fmt: skip
    assert outside_pick == 2 and not any(r.flags for r in rows)  # the outside-mask rule alone: the lowest
    seams = {2: 1.1, 4: 1.1, 10: 1.8, 30: 1.8}  # |ln seam| 0.10 vs 0.59: 2 and 4 clearly better than 30
    hallucinations = {2: 0.6, 4: 0.1, 10: 0.1, 30: 0.1}
    paired = paired_comparisons(cells(seams, hallucinations), "Q8_0")
    assert suggest_guidance(rows, outside_pick, paired) == (4, "fill")
    alike = paired_comparisons(cells({2: 1.8, 4: 1.8, 10: 1.8, 30: 1.8}, hallucinations), "Q8_0")
    assert suggest_guidance(rows, outside_pick, alike) == (30, "fill")
    few = paired_comparisons([c for c in cells(seams, hallucinations) if c.seed == 0 and c.quant == "Q4_0"], "Q8_0")
    assert suggest_guidance(rows, outside_pick, few) == (2, "outside-mask")  # 1 pair each: no paired verdict


def test_a_scaled_trace_says_how_the_transformer_was_traced() -> None:
    """Counts scaled from three blocks of each list are a claim about the blocks left out: the reasons and
    the compile table say so, with the lists and their lengths."""
    from fluxaudit.report.compile_verdict import how_traced

    cc = _cc()
    blocks = [{"name": "transformer_blocks", "traced": 3, "of": 19},
              {"name": "single_transformer_blocks", "traced": 3, "of": 38}]  # fmt: skip
    scaled = cc.explain[1].model_copy(
        update={"traced_in": "pipeline", "traced_blocks": [TracedBlocks.model_validate(b) for b in blocks]}
    )
    said = (
        "its frames in the pipeline's trace; 3 of 19 transformer_blocks and 3 of 38 single_transformer_blocks "
        "traced, the middle one's ops counted for each block left out"
    )
    assert how_traced(scaled) == said
    assert f"transformer: 1 graph(s), 0 break(s) ({said})" in compile_decision(cc.model_copy(
        update={"explain": [cc.explain[0], scaled]}))[1]  # fmt: skip
    assert how_traced(cc.explain[1]) == ""
