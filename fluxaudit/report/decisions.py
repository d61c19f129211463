"""Quality against the reference, and the report's three answers (pure).

Each answer comes with the rule that produced it, printed in the report:
which quant (fastest that stays within the drift thresholds at every cell),
which guidance (flags for outside-mask drift and saturation), and whether
torch.compile is worth it (graph breaks, measured speed-up).
"""

from __future__ import annotations

import statistics

from .. import quality
from ..results import CompileCheck
from ..spec import UNQUANTIZED, FluxAuditSpec, QualitySpec
from .base import ReportModel
from .cell_quality import ArrayReader, CellQuality, InputPixels, cell_qualities
from .compile_verdict import COMPILE_RULE, compile_decision
from .model import CellSummary, GroupSummary
from .paired import PairedComparisons, paired_comparisons
from .speed import RUNTIME_NAMES, Runtime, SpeedAnswer, calibration_note, decide_speed


class QuantVerdict(ReportModel):
    label: str
    passes: bool
    failures: list[str]
    worst_psnr: float | None
    median_psnr: float | None
    worst_ssim: float | None
    worst_outside_psnr: float | None
    median_latent_mad: float | None


class GuidanceRow(ReportModel):
    guidance: float
    psnr_outside_vs_input: float | None
    clipped_inside: float | None
    flags: list[str]


class Decisions(ReportModel):
    reference: str | None
    reference_reason: str
    cells: list[CellQuality]
    #: the fill metrics like with like: quants against the reference, guidance against the baseline guidance
    paired: PairedComparisons
    verdicts: list[QuantVerdict]
    recommended_quant: str | None
    quant_basis: str
    quant_rule: str
    quant_reason: str
    #: the speed answer the recommendation used, and the other runtime's where it was measured for all.
    speed: SpeedAnswer | None
    other_speed: SpeedAnswer | None
    #: the same rule over every timed quant, quality aside: which is fastest at the measured noise.
    speed_ranking: SpeedAnswer | None
    guidance_quant: str | None
    guidance_rows: list[GuidanceRow]
    suggested_guidance: float | None
    #: what the suggestion rests on: "fill" (paired verdicts) or "outside-mask" (too few pairs for one)
    guidance_basis: str = "outside-mask"
    guidance_rule: str
    compile_decision: str
    compile_reasons: list[str]
    compile_rule: str
    notes: list[str]


def pick_reference(requested: str | None, groups: list[GroupSummary]) -> tuple[str | None, str]:
    complete = [g for g in groups if g.status == "complete" and g.bytes]
    if requested is not None:
        if any(g.label == requested for g in complete):
            return requested, f"spec.reference = {requested}"
        return None, f"spec.reference {requested} has no complete results: quality cannot be measured"
    quants = [g for g in complete if g.label != UNQUANTIZED]
    if not quants:
        return None, "no complete group to compare against"
    best = max(quants, key=lambda g: (g.bytes, g.label))
    return best.label, f"largest GGUF file audited ({best.label}), the highest precision available"


def _where(c: CellQuality) -> str:
    return ("" if c.input is None else f"{c.input}/") + f"gs{c.guidance:g}/seed {c.seed}"


def verdict(label: str, cells: list[CellQuality], q: QualitySpec) -> QuantVerdict:
    failures = []
    for c in cells:
        if c.psnr_whole is None or c.ssim_whole is None:
            failures.append(f"{_where(c)}: no reference result to compare")
            continue
        why = []
        if c.psnr_whole < q.min_psnr_db:
            why.append(f"PSNR {c.psnr_whole:.1f} < {q.min_psnr_db:g} dB")
        if c.ssim_whole < q.min_ssim:
            why.append(f"SSIM {c.ssim_whole:.3f} < {q.min_ssim:g}")
        if c.psnr_outside is not None and c.psnr_outside < q.min_outside_mask_psnr_db:
            why.append(f"outside-mask PSNR {c.psnr_outside:.1f} < {q.min_outside_mask_psnr_db:g} dB")
        if why:
            failures.append(f"{_where(c)}: " + ", ".join(why))
    psnrs = [c.psnr_whole for c in cells if c.psnr_whole is not None]
    ssims = [c.ssim_whole for c in cells if c.ssim_whole is not None]
    outs = [c.psnr_outside for c in cells if c.psnr_outside is not None]
    mads = [c.latent_mad for c in cells if c.latent_mad is not None]
    return QuantVerdict(
        label=label,
        passes=bool(cells) and not failures,
        failures=failures,
        worst_psnr=min(psnrs) if psnrs else None,
        median_psnr=statistics.median(psnrs) if psnrs else None,
        worst_ssim=min(ssims) if ssims else None,
        worst_outside_psnr=min(outs) if outs else None,
        median_latent_mad=statistics.median(mads) if mads else None,
    )


#: paired fill metrics on which a quant may not be worse than the reference: it paints something in, or an edge.
FILL_GATES = ("hallucination", "seam")


def gate_on_fill(v: QuantVerdict, paired: PairedComparisons) -> QuantVerdict:
    """The verdict failed where the paired comparison says the quant's fills are worse than the reference's
    (the whole 95 % interval of the median paired difference beyond the tie): drift alone cannot say which
    image is the better fill, this can."""
    worse = [m for m in paired.quants if m.subject == v.label and m.metric in FILL_GATES and m.verdict == "worse"]
    if not worse:
        return v
    failures = [
        f"paired {m.metric}: worse than {m.baseline} (median difference {m.median:+.3g} [{m.low:+.3g}, "
        f"{m.high:+.3g}] over {m.pairs} pairs)"
        for m in worse
    ]
    return v.model_copy(update={"passes": False, "failures": [*v.failures, *failures]})


def _speed(labels: list[str], groups: list[GroupSummary], spec: FluxAuditSpec, runtime: Runtime) -> SpeedAnswer:
    """The speed rule over ``labels``, on their timings, sizes and calibrations."""
    timings = {g.label: {t.runtime: t for t in g.timings} for g in groups}
    sizes = {g.label: g.bytes or 0 for g in groups}
    calibrated = {g.label: g.calibration.tflops_median for g in groups if g.calibration and g.label in labels}
    tol = spec.quality.speed_tie_tolerance
    answer = decide_speed(labels, timings, sizes, tol, runtime, calibration_note(calibrated))
    return answer.model_copy(update={"candidates": list(labels)})


def rank_speed(
    groups: list[GroupSummary], reference: str | None, spec: FluxAuditSpec, chosen: SpeedAnswer | None = None
) -> SpeedAnswer | None:
    """The speed rule over every complete quant but the reference, quality aside (report.json's
    ``summary.speedRanking``: how stable the fastest is from one run to the next).  ``chosen``: the
    recommendation's own answer, reused when every ranked quant was a candidate (the same inputs)."""
    labels = [
        g.label for g in groups if g.status == "complete" and g.timings and g.label not in (reference, UNQUANTIZED)
    ]
    if len(labels) < 2:
        return None
    if chosen is not None and chosen.runtime == spec.timing.runtime and set(chosen.candidates) == set(labels):
        return chosen
    return _speed(labels, groups, spec, spec.timing.runtime)


def recommend_quant(
    verdicts: list[QuantVerdict], groups: list[GroupSummary], reference: str | None, spec: FluxAuditSpec
) -> tuple[SpeedAnswer, SpeedAnswer | None]:
    """The speed answer on ``spec.timing.runtime`` among quants that pass (never the reference: it passes
    against itself by definition), and the other runtime's answer where every candidate ran it too."""
    candidates = [v.label for v in verdicts if v.passes and v.label not in (reference, UNQUANTIZED)]
    chosen = _speed(candidates, groups, spec, spec.timing.runtime)
    other: Runtime = "fastPath" if chosen.runtime == "stock" else "stock"
    runtimes = {g.label: {t.runtime for t in g.timings} for g in groups}
    if len(candidates) > 1 and all(other in runtimes.get(label, set()) for label in candidates):
        return chosen, _speed(candidates, groups, spec, other)
    return chosen, None


def guidance_table(
    cells: list[CellQuality], quant: str | None, guidance: list[float], q: QualitySpec
) -> tuple[list[GuidanceRow], float | None]:
    measured: list[tuple[float, float | None, float | None]] = []
    for g in guidance:
        mine = [c for c in cells if c.quant == quant and c.guidance == g]
        outs = [c.psnr_outside_vs_input for c in mine if c.psnr_outside_vs_input is not None]
        clips = [c.clipped_inside for c in mine if c.clipped_inside is not None]
        measured.append((g, statistics.median(outs) if outs else None, max(clips) if clips else None))
    known = [out for _, out, _ in measured if out is not None]
    best = max(known) if known else None
    rows = []
    for g, out, clipped in measured:
        flags = []
        if best is not None and out is not None and out < best - q.outside_mask_drop_db:
            flags.append(f"outside-mask drift: {best - out:.1f} dB below the best guidance")
        if clipped is not None and clipped > q.saturation_fraction:
            flags.append(f"saturation: {clipped:.1%} of in-mask pixels clipped")
        rows.append(GuidanceRow(guidance=g, psnr_outside_vs_input=out, clipped_inside=clipped, flags=flags))
    clean = [r for r in rows if not r.flags and r.psnr_outside_vs_input is not None]
    suggested = max(clean, key=lambda r: (r.psnr_outside_vs_input, -r.guidance)).guidance if clean else None
    return rows, suggested


def suggest_guidance(
    rows: list[GuidanceRow], fallback: float | None, paired: PairedComparisons
) -> tuple[float | None, str]:
    """(suggested guidance, basis) by the fill metrics paired against the baseline guidance; ``fallback``
    (the outside-mask rule's pick) where no paired verdict exists."""
    baseline = paired.baseline_guidance
    verdicts: dict[float, dict[str, str]] = {}
    for m in paired.guidance:
        verdicts.setdefault(float(m.subject), {})[m.metric] = m.verdict
    measured = any(not v.startswith("too few") for by_metric in verdicts.values() for v in by_metric.values())
    if baseline is None or not measured:
        return fallback, "outside-mask"

    def net(g: float) -> int | None:
        """Metrics better than the baseline minus metrics worse; None: worse on a gate."""
        found = verdicts.get(g, {})
        if any(found.get(metric) == "worse" for metric in FILL_GATES):
            return None
        return sum(v == "better" for v in found.values()) - sum(v == "worse" for v in found.values())

    scored = [(score, r.guidance) for r in rows if not r.flags and (score := net(r.guidance)) is not None]
    if not scored:
        return None, "fill"
    best = max(score for score, _ in scored)
    tied = [g for score, g in scored if score == best]
    return (baseline if baseline in tied else tied[0]), "fill"


QUANT_RULE = (
    "among quants whose every cell has whole-image PSNR ≥ {psnr:g} dB, SSIM ≥ {ssim:g} and outside-mask "
    "PSNR ≥ {out:g} dB against the reference, and whose fills are not worse than the reference's on hallucination "
    "or seam when paired cell by cell (the reference itself is never a candidate), the fastest by median "
    "step time on {runtime} — but only when the bootstrap 95% interval of the ratio of step-time medians lies "
    "wholly outside a ±{tol:.0%} tie band; quants not distinguishable from the fastest at the measured noise are "
    "tied, and the smallest file among them wins"
)
GUIDANCE_RULE = (
    "flag a guidance when its outside-mask PSNR against the input image is more than {drop:g} dB below the best "
    "guidance's, or when more than {sat:.0%} of in-mask pixels are clipped; suggested = among unflagged guidances "
    "whose fills are not worse than the baseline guidance's on hallucination or seam (paired over quants, inputs and "
    "seeds), the one better than the baseline on the most fill metrics net of those it is worse on — the baseline "
    "itself when none is; where no paired verdict exists (fewer than 5 pairs), the unflagged guidance that changes "
    "the outside of the mask least"
)


def _notes(pixels: InputPixels, groups: list[GroupSummary], reference: str | None) -> list[str]:
    notes = []
    for name, (mask, _) in pixels.items():
        whose = "the mask" if name is None else f"input {name}'s mask"
        if mask is None:
            notes.append(f"{whose} used by the runner is missing from the run folder: its quality is not computed")
        elif quality.mask_coverage(mask) in (0.0, 1.0):
            notes.append(f"{whose} is empty or covers the whole image: inside/outside scores are partly undefined")
    if reference is not None and reference != UNQUANTIZED:
        notes.append(
            f"{reference} is the reference and one of the candidates: it passes against itself by definition, so it "
            "is not recommended on that basis (reference: bf16 measures every quant against the unquantized weights)"
        )
    notes += sorted({g.hallucination_note for g in groups if g.hallucination_note})
    calibrated = {g.label: g.calibration.tflops_median for g in groups if g.calibration is not None}
    flag = calibration_note(calibrated)
    if flag:
        notes.append(flag)
    return notes


def decide(
    spec: FluxAuditSpec,
    groups: list[GroupSummary],
    cells: list[CellSummary],
    compile_check: CompileCheck | None,
    pixels: InputPixels,
    read: ArrayReader,
) -> Decisions:
    q = spec.quality
    reference, why = pick_reference(spec.reference, groups)
    ref_cells = {(c.input, c.guidance, c.seed): c for c in cells if c.quant == reference}
    qualities = cell_qualities(cells, ref_cells, pixels, read)
    paired = paired_comparisons(qualities, reference)
    verdicts = [
        gate_on_fill(verdict(g.label, [c for c in qualities if c.quant == g.label], q), paired)
        for g in groups
        if g.status == "complete" or any(c.quant == g.label for c in qualities)
    ]
    speed = other_speed = None
    if reference is not None:
        speed, other_speed = recommend_quant(verdicts, groups, reference, spec)
        recommended, basis, quant_reason = speed.pick, speed.basis, speed.reason
        if speed.note:
            quant_reason += f" ({speed.note})"
        if other_speed is not None and other_speed.pick != speed.pick:
            quant_reason += (
                f". On {RUNTIME_NAMES[other_speed.runtime]} the answer would be {other_speed.pick or 'none'} "
                f"({other_speed.basis})"
            )
    else:
        recommended, basis, quant_reason = None, "none-pass", "no reference: " + why
    guidance_quant = recommended or reference
    rows, outside_pick = guidance_table(qualities, guidance_quant, list(spec.guidance_scales), q)
    suggested, guidance_basis = suggest_guidance(rows, outside_pick, paired)
    compile_verdict, compile_reasons = compile_decision(compile_check, spec.steps)
    return Decisions(
        reference=reference,
        reference_reason=why,
        cells=qualities,
        paired=paired,
        verdicts=verdicts,
        recommended_quant=recommended,
        quant_basis=basis,
        quant_rule=QUANT_RULE.format(
            tol=q.speed_tie_tolerance,
            psnr=q.min_psnr_db,
            ssim=q.min_ssim,
            out=q.min_outside_mask_psnr_db,
            runtime=RUNTIME_NAMES[speed.runtime if speed else spec.timing.runtime],
        ),
        quant_reason=quant_reason,
        speed=speed,
        other_speed=other_speed,
        speed_ranking=rank_speed(groups, reference, spec, speed),
        guidance_quant=guidance_quant,
        guidance_rows=rows,
        suggested_guidance=suggested,
        guidance_basis=guidance_basis,
        guidance_rule=GUIDANCE_RULE.format(drop=q.outside_mask_drop_db, sat=q.saturation_fraction),
        compile_decision=compile_verdict,
        compile_reasons=compile_reasons,
        compile_rule=COMPILE_RULE,
        notes=_notes(pixels, groups, reference),
    )
