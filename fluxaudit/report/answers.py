"""The report's first screen: the three answers, each with its rule, and the pictures (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from ..layout import guidance_token
from .data import ReportData
from .format import db, esc, num, size, ssim, table
from .paired import PairedMetric
from .speed import RUNTIME_NAMES, RuntimeTiming


@dataclass(frozen=True)
class Figures:
    """Links to the pictures, as REPORT.md refers to them."""

    contact_sheet: str
    diff_sheet: str
    drift: str
    latency: str
    fill: str


FIGURE_CAPTIONS = {
    "contact_sheet": "Images: quant rows × guidance columns, mask outlined in yellow",
    "diff_sheet": "|image − reference| per pixel, quant rows × guidance columns, one colour scale for all tiles",
    "drift": "Drift against the reference across guidance (PSNR, higher is closer)",
    "latency": "Step time per quant and runtime (box: quartiles, whiskers: p10–p90)",
    "fill": "Fill quality per quant across guidance, no reference needed (median over seeds; bars: its bootstrap "
    "95 % interval)",
}


def _compared_on(data: ReportData) -> str:
    """Which runtime and memory modes the speed comparison used, named (an answer that does not say
    what it timed cannot be acted on)."""
    speed = data.decisions.speed
    if speed is None or speed.fastest is None:
        return ""
    modes = []
    for g in data.groups:
        t = g.timing(speed.runtime)
        if t is not None and g.label != data.decisions.reference:
            modes.append(f"{esc(g.label)} {esc(t.memory_mode or 'resident')}")
    return f"; compared on {RUNTIME_NAMES[speed.runtime]} ({', '.join(modes)})" if modes else ""


def _runtimes_shown(data: ReportData) -> list[str]:
    """Every runtime some group timed, the one the speed answer used first: a step time in the quant
    table names its runtime, because the order of the quants can differ between them."""
    timed = {t.runtime for g in data.groups for t in g.timings}
    first = data.decisions.speed.runtime if data.decisions.speed is not None else None
    return sorted(timed, key=lambda runtime: (runtime != first, runtime))


def _step_spread(t: RuntimeTiming | None) -> str:
    if t is None:
        return "—"
    return f"{num(t.median_step_seconds, 4)} ({num(t.p10_step_seconds, 4)}–{num(t.p90_step_seconds, 4)})"


METRIC_NAMES = {"seam": "seam", "colourDeltaE": "colour ΔE", "texture": "texture", "hallucination": "hallucination"}


def _paired_lines(metrics: list[PairedMetric], subjects: list[str], what: str) -> list[str]:
    """One bullet per subject: the fill metrics grouped by paired verdict, with the median difference and
    interval where one is distinguishable (the rule: the "Fill, paired" section)."""
    lines = []
    for subject in subjects:
        by_verdict: dict[str, list[str]] = {}
        for m in (m for m in metrics if m.subject == subject):
            name = METRIC_NAMES.get(m.metric, m.metric)
            if m.verdict in ("worse", "better"):
                name += f" {m.median:+.3g} [{m.low:+.3g}, {m.high:+.3g}] over {m.pairs} pairs"
            by_verdict.setdefault(m.verdict, []).append(name)
        if by_verdict:
            said = "; ".join(f"{verdict}: {', '.join(names)}" for verdict, names in by_verdict.items())
            lines.append(f"- {esc(what.format(subject))} — {esc(said)}")
    return lines


def quant_answer(data: ReportData) -> list[str]:
    d = data.decisions
    by_label = {g.label: g for g in data.groups}
    lines = ["### 1. Which quant", ""]
    lines.append(f"**Recommended: {esc(d.recommended_quant or 'none')}** — {esc(d.quant_reason)}.")
    lines += ["", f"Basis: {esc(d.quant_basis)}{_compared_on(data)}", ""]
    lines += [
        f"Rule: {esc(d.quant_rule)}. Reference: {esc(d.reference or 'none')} ({esc(d.reference_reason)}).",
        "",
    ]
    runtimes = _runtimes_shown(data)
    rows = []
    for v in d.verdicts:
        g = by_label.get(v.label)
        timed: list[str] = []
        for runtime in runtimes:
            t = g.timing(runtime) if g else None
            timed += [num(t.median_image_seconds if t else None), _step_spread(t)]
        rows.append(
            [
                esc(v.label),
                size(g.bytes if g else None),
                *timed,
                size(g.max_peak_memory_bytes if g else None),
                db(v.worst_psnr),
                db(v.median_psnr),
                ssim(v.worst_ssim),
                db(v.worst_outside_psnr),
                "—" if v.median_latent_mad is None else f"{v.median_latent_mad:.3g}",
                "reference" if v.label == d.reference else ("pass" if v.passes else "fail"),
            ]
        )
    lines += table(
        [
            "Quant",
            "GGUF size",
            *(
                head
                for runtime in runtimes
                for head in (
                    f"s/image, {RUNTIME_NAMES[runtime]}",
                    f"s/step, {RUNTIME_NAMES[runtime]}: median (p10–p90)",
                )
            ),
            "Peak memory",
            "Worst PSNR (dB)",
            "Median PSNR (dB)",
            "Worst SSIM",
            "Worst outside-mask PSNR (dB)",
            "Median latent MAD",
            "Verdict",
        ],
        rows,
    )
    for v in d.verdicts:
        if v.failures and v.label != d.reference:
            lines += ["", f"{esc(v.label)} fails at: " + "; ".join(esc(f) for f in v.failures[:8])]
    subjects = list(dict.fromkeys(m.subject for m in data.paired.quants))
    if subjects:
        lines += [
            "",
            f"Does each quant change the fill? Paired against {esc(d.reference or '?')} at the same input, "
            'guidance and seed (worse: more seam, tint, texture change or hallucination; rule under "Fill, paired"):',
            "",
        ]
        lines += _paired_lines(data.paired.quants, subjects, "{}")  # fmt: skip
    return lines


def guidance_answer(data: ReportData) -> list[str]:
    d = data.decisions
    suggested = "none" if d.suggested_guidance is None else guidance_token(d.suggested_guidance)
    lines = [
        "### 2. Which guidance",
        "",
        f"**Suggested: {suggested}** ("
        + (
            "by the fill, paired over quants, inputs and seeds; flags "
            if d.guidance_basis == "fill"
            else "by the outside of the mask: too few pairs for a paired fill verdict; "
        )
        + f"measured on {esc(d.guidance_quant or 'no group')}). Rule: {esc(d.guidance_rule)}.",
        "",
    ]
    lines += table(
        ["Guidance", "Outside-mask PSNR vs input (dB)", "In-mask clipped pixels", "Flags"],
        [
            [
                guidance_token(r.guidance),
                db(r.psnr_outside_vs_input),
                "—" if r.clipped_inside is None else f"{r.clipped_inside:.2%}",
                esc("; ".join(r.flags)) or "none",
            ]
            for r in d.guidance_rows
        ],
    )
    p = data.paired
    subjects = list(dict.fromkeys(m.subject for m in p.guidance))
    if subjects and p.baseline_guidance is not None:
        lines += ["", f"The fill at each guidance against {p.baseline_guidance:g} (the official value), paired over "
                  "quants, inputs and seeds (community values 2–5 first):", ""]  # fmt: skip
        lines += _paired_lines(p.guidance, subjects, "guidance {}")
    return lines


def compile_answer(data: ReportData) -> list[str]:
    d = data.decisions
    lines = ["### 3. Is torch.compile worth it", "", f"**{esc(d.compile_decision)}**. Rule: {esc(d.compile_rule)}."]
    lines += [""] + [f"- {esc(r)}" for r in d.compile_reasons]
    return lines


def answers(data: ReportData) -> list[str]:
    lines = ["## Answers", "", *quant_answer(data), "", *guidance_answer(data), "", *compile_answer(data)]
    for note in data.decisions.notes:
        lines += ["", f"Note: {esc(note)}."]
    lines.append("")
    return lines


def pictures(figures: Figures) -> list[str]:
    """The pictures right after the answers, so a person can check the numbers at a glance."""
    lines = ["## Pictures", ""]
    for key, caption in FIGURE_CAPTIONS.items():
        lines += [f"**{caption}**", "", f"![{caption}]({getattr(figures, key)})", ""]
    return lines
