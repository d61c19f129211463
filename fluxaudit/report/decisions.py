"""Quality against the reference, and the report's three answers (pure).

Each answer comes with the rule that produced it, printed in the report:
which quant (fastest that stays within the drift thresholds at every cell),
which guidance (flags for outside-mask drift and saturation), and whether
torch.compile is worth it (graph breaks, measured speed-up).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np

from .. import quality
from ..fill import fill_scores
from ..results import CompileCheck
from ..spec import UNQUANTIZED, FluxAuditSpec, QualitySpec
from .base import ReportModel
from .model import CellSummary, GroupSummary
from .speed import RUNTIME_NAMES, Runtime, SpeedAnswer, calibration_note, decide_speed

ArrayReader = Callable[[str], np.ndarray | None]

#: compile verdicts: at least this measured speed-up is a "go", at least 1.0 "marginal".
COMPILE_GO_SPEEDUP = 1.05


class CellQuality(ReportModel):
    quant: str
    guidance: float
    seed: int
    psnr_whole: float | None
    psnr_inside: float | None
    psnr_outside: float | None
    ssim_whole: float | None
    ssim_inside: float | None
    ssim_outside: float | None
    latent_mad: float | None
    #: against the input image, outside the mask: what the user sees change where nothing should.
    psnr_outside_vs_input: float | None
    clipped_inside: float | None
    #: the fill on its own terms, against the input's surroundings (``fluxaudit.fill``); no reference needed.
    #: CLIP's probability that the fill is an object rather than the prompt (runner-side, ``quality.clipModel``)
    hallucination: float | None = None
    seam: float | None = None
    colour_delta_e: float | None = None
    texture_ratio: float | None = None


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


def cell_quality(
    cell: CellSummary,
    ref: CellSummary | None,
    mask: np.ndarray | None,
    input_image: np.ndarray | None,
    read: ArrayReader,
) -> CellQuality:
    img = read(cell.image) if cell.image else None
    d = None
    mad = None
    if ref is not None and img is not None and mask is not None:
        ref_img = read(ref.image) if ref.image else None
        if ref_img is not None:
            d = quality.drift(img, ref_img, mask)
        if cell.latents and ref.latents:
            la, lb = read(cell.latents), read(ref.latents)
            if la is not None and lb is not None:
                mad = quality.latent_mad(la, lb)
    vs_input = clipped = filled = None
    if img is not None and mask is not None:
        inside = quality.binary_mask(mask, img.shape[:2])
        if input_image is not None and input_image.shape == img.shape:
            vs_input = quality.psnr(img, input_image, ~inside)
            filled = fill_scores(img, input_image, inside)
        clipped = quality.clipped_fraction(img, inside)
    return CellQuality(
        quant=cell.quant,
        guidance=cell.guidance,
        seed=cell.seed,
        psnr_whole=d.whole.psnr_db if d else None,
        psnr_inside=d.inside.psnr_db if d else None,
        psnr_outside=d.outside.psnr_db if d else None,
        ssim_whole=d.whole.ssim if d else None,
        ssim_inside=d.inside.ssim if d else None,
        ssim_outside=d.outside.ssim if d else None,
        latent_mad=mad,
        psnr_outside_vs_input=vs_input,
        clipped_inside=clipped,
        hallucination=cell.hallucination,
        seam=filled.seam if filled else None,
        colour_delta_e=filled.colour_delta_e if filled else None,
        texture_ratio=filled.texture_ratio if filled else None,
    )


def verdict(label: str, cells: list[CellQuality], q: QualitySpec) -> QuantVerdict:
    failures = []
    for c in cells:
        if c.psnr_whole is None or c.ssim_whole is None:
            failures.append(f"gs{c.guidance:g}/seed {c.seed}: no reference result to compare")
            continue
        why = []
        if c.psnr_whole < q.min_psnr_db:
            why.append(f"PSNR {c.psnr_whole:.1f} < {q.min_psnr_db:g} dB")
        if c.ssim_whole < q.min_ssim:
            why.append(f"SSIM {c.ssim_whole:.3f} < {q.min_ssim:g}")
        if c.psnr_outside is not None and c.psnr_outside < q.min_outside_mask_psnr_db:
            why.append(f"outside-mask PSNR {c.psnr_outside:.1f} < {q.min_outside_mask_psnr_db:g} dB")
        if why:
            failures.append(f"gs{c.guidance:g}/seed {c.seed}: " + ", ".join(why))
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


def break_even_images(cc: CompileCheck, steps: int) -> float | None:
    """Images after which compiling has paid for itself: compile seconds ÷ seconds saved per image."""
    sp = cc.speedup
    if sp is None or sp.compile_seconds is None:
        return None
    saved = (sp.eager_step_seconds - sp.compiled_step_seconds) * steps
    return sp.compile_seconds / saved if saved > 0 else None


def compile_decision(cc: CompileCheck | None, steps: int = 28) -> tuple[str, list[str]]:
    if cc is None:
        return "not run", ["compileCheck.enabled is false, or its group did not finish"]
    t = next((e for e in cc.explain if e.target == "transformer"), None)
    reasons: list[str] = []
    if t is None or t.error:
        return "no-go", [f"dynamo could not trace the transformer: {t.error if t else 'no trace'}"]
    reasons.append(f"transformer: {t.graph_count} graph(s), {t.graph_break_count} break(s)")
    pipe = next((e for e in cc.explain if e.target == "pipeline"), None)
    if pipe is not None and not pipe.error:
        reasons.append(
            f"whole pipeline: {pipe.graph_count} graphs, {pipe.graph_break_count} breaks "
            "(expected: generator-driven randn, PIL, progress bar; compile the transformer, not the pipeline)"
        )
    if t.graph_break_count > 0:
        reasons += [f"break: {r.reason}" for r in t.break_reasons]
        return "no-go", reasons
    sp = cc.speedup
    if sp is None or sp.speedup is None:
        reasons.append(
            "speed-up not measured: nothing was compiled here (the fast path compiles on a CUDA GPU; "
            "compileCheck.measureSpeedup: true compiles the whole transformer to time it)"
        )
        return "go (traceable; speed-up unmeasured)", reasons
    reasons.append(
        f"measured {sp.speedup:.2f}× ({sp.eager_step_seconds * 1000:.1f} → {sp.compiled_step_seconds * 1000:.1f} ms "
        f"per forward) after {sp.compile_seconds or 0:.0f} s of compiling"
    )
    images = break_even_images(cc, steps)
    if images is not None:
        reasons.append(
            f"break-even after {images:.1f} images of {steps} steps (compile seconds ÷ seconds saved per image)"
        )
    if sp.speedup >= COMPILE_GO_SPEEDUP:
        return "go", reasons
    if sp.speedup >= 1.0:
        return "marginal", reasons
    return "no-go", reasons


QUANT_RULE = (
    "among quants whose every cell has whole-image PSNR ≥ {psnr:g} dB, SSIM ≥ {ssim:g} and outside-mask "
    "PSNR ≥ {out:g} dB against the reference (the reference itself is never a candidate), the fastest by median "
    "step time on {runtime} — but only when the bootstrap 95% interval of the ratio of step-time medians lies "
    "wholly outside a ±{tol:.0%} tie band; quants not distinguishable from the fastest at the measured noise are "
    "tied, and the smallest file among them wins"
)
GUIDANCE_RULE = (
    "flag a guidance when its outside-mask PSNR against the input image is more than {drop:g} dB below the best "
    "guidance's, or when more than {sat:.0%} of in-mask pixels are clipped; suggested = the unflagged guidance "
    "that changes the outside of the mask least (judge the inside with your own eyes on the contact sheet)"
)
COMPILE_RULE = (
    "go when the transformer traces as one graph with no breaks and the measured speed-up (when measured) is "
    f"≥ {COMPILE_GO_SPEEDUP:.2f}×; marginal between 1.00× and {COMPILE_GO_SPEEDUP:.2f}×; no-go on any transformer "
    "graph break, trace error or slow-down"
)


def _notes(mask: np.ndarray | None, groups: list[GroupSummary], reference: str | None) -> list[str]:
    notes = []
    if mask is None:
        notes.append("the mask used by the runner is missing from the run folder: quality not computed")
    elif quality.mask_coverage(mask) in (0.0, 1.0):
        notes.append("the mask is empty or covers the whole image: inside/outside scores are partly undefined")
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
    mask: np.ndarray | None,
    input_image: np.ndarray | None,
    read: ArrayReader,
) -> Decisions:
    q = spec.quality
    reference, why = pick_reference(spec.reference, groups)
    ref_cells = {(c.guidance, c.seed): c for c in cells if c.quant == reference}
    qualities = [cell_quality(c, ref_cells.get((c.guidance, c.seed)), mask, input_image, read) for c in cells]
    verdicts = [
        verdict(g.label, [c for c in qualities if c.quant == g.label], q)
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
    rows, suggested = guidance_table(qualities, guidance_quant, list(spec.guidance_scales), q)
    compile_verdict, compile_reasons = compile_decision(compile_check, spec.steps)
    return Decisions(
        reference=reference,
        reference_reason=why,
        cells=qualities,
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
        guidance_rule=GUIDANCE_RULE.format(drop=q.outside_mask_drop_db, sat=q.saturation_fraction),
        compile_decision=compile_verdict,
        compile_reasons=compile_reasons,
        compile_rule=COMPILE_RULE,
        notes=_notes(mask, groups, reference),
    )
