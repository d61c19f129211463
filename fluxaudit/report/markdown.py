"""ReportData → REPORT.md (pure).

Everything a user typed (prompt, URIs, error messages) is escaped before it goes
into Markdown: a prompt must not be able to inject links, HTML or table cells.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from typing import Any

from ..layout import guidance_token
from .model import ReportData

#: characters that act inline (line-start syntax cannot occur: cells never start a line).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")

LinkFn = Callable[[str], str]


def esc(text: object) -> str:
    """Escape for inline Markdown and table cells: HTML entities, Markdown punctuation, no newlines."""
    s = html.escape(str(text), quote=False)
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return " ".join(s.split())


def _bytes(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _s(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x * 1000:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _environment(env: dict[str, Any] | None) -> list[str]:
    if env is None:
        return ["No group recorded its environment (no group started)."]
    if env.get("device") == "cuda":
        device = (
            f"{esc(env.get('gpuName'))} (compute capability {esc(env.get('computeCapability'))}, "
            f"{_bytes(env.get('gpuMemoryBytes'))}, driver {esc(env.get('driver') or '?')}, CUDA {esc(env.get('cuda'))})"
        )
    else:
        device = f"CPU only: {esc(env.get('cpu') or '?')}, {env.get('cpuCount')} cores (no CUDA: CUDA-event times are not available)"
    return [
        f"- Device: {device}",
        f"- Software: torch {esc(env['torch'])}, diffusers {esc(env['diffusers'])}, gguf {esc(env['gguf'])}, "
        f"transformers {esc(env['transformers'])}, Python {esc(env['python'])}",
        f"- Host: {esc(env['host'])}" + (f", node {esc(env['node'])}" if env.get("node") else ""),
    ]


def _db(x: float | None) -> str:
    if x is None:
        return "—"
    return "identical" if math.isinf(x) else f"{x:.2f}"


def _ssim(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def _answers(data: ReportData) -> list[str]:
    d = data.decisions
    if d is None:
        return []
    by_label = {g.label: g for g in data.groups}
    lines = ["## Answers", "", "### 1. Which quant", ""]
    lines.append(f"**Recommended: {esc(d.recommended_quant or 'none')}** — {esc(d.quant_reason)}.")
    lines += [
        "",
        f"Rule: {esc(d.quant_rule)}. Reference: {esc(d.reference or 'none')} ({esc(d.reference_reason)}).",
        "",
    ]
    rows = []
    for v in d.verdicts:
        g = by_label.get(v.label)
        rows.append(
            [
                esc(v.label),
                _bytes(g.bytes if g else None),
                _s(g.median_wall_seconds if g else None),
                _s(g.median_seconds_per_step if g else None, 4),
                _bytes(g.max_peak_memory_bytes if g else None),
                _db(v.worst_psnr),
                _db(v.median_psnr),
                _ssim(v.worst_ssim),
                _db(v.worst_outside_psnr),
                "—" if v.median_latent_mad is None else f"{v.median_latent_mad:.3g}",
                "reference" if v.label == d.reference else ("pass" if v.passes else "fail"),
            ]
        )
    lines += _table(
        [
            "Quant",
            "GGUF size",
            "Median s/image",
            "Median s/step",
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
    lines += ["", "### 2. Which guidance", ""]
    suggested = "none" if d.suggested_guidance is None else guidance_token(d.suggested_guidance)
    lines.append(
        f"**Suggested: {suggested}** (measured on {esc(d.guidance_quant or 'no group')}). Rule: {esc(d.guidance_rule)}."
    )
    lines.append("")
    lines += _table(
        ["Guidance", "Outside-mask PSNR vs input (dB)", "In-mask clipped pixels", "Flags"],
        [
            [
                guidance_token(r.guidance),
                _db(r.psnr_outside_vs_input),
                "—" if r.clipped_inside is None else f"{r.clipped_inside:.2%}",
                esc("; ".join(r.flags)) or "none",
            ]
            for r in d.guidance_rows
        ],
    )
    lines += ["", "### 3. Is torch.compile worth it", ""]
    lines.append(f"**{esc(d.compile_decision)}**. Rule: {esc(d.compile_rule)}.")
    lines += [""] + [f"- {esc(r)}" for r in d.compile_reasons]
    for note in d.notes:
        lines += ["", f"Note: {esc(note)}."]
    lines.append("")
    return lines


FIGURE_CAPTIONS = {
    "contact_sheet": "Images: quant rows × guidance columns, mask outlined in yellow",
    "diff_sheet": "|image − reference| per pixel, quant rows × guidance columns, one colour scale for all tiles",
    "drift": "Drift against the reference across guidance (PSNR, higher is closer)",
    "latency": "Wall-clock seconds per image",
}


def _pictures(figures: dict[str, str]) -> list[str]:
    """The pictures right after the answers, so a person can check the numbers at a glance."""
    lines = ["## Pictures", ""]
    for key, caption in FIGURE_CAPTIONS.items():
        if key in figures:
            lines += [f"**{caption}**", "", f"![{caption}]({figures[key]})", ""]
    return lines


def _quality_cells(data: ReportData) -> list[str]:
    d = data.decisions
    if d is None or d.reference is None:
        return []
    lines = [
        "## Quality against the reference",
        "",
        f"Each cell against {esc(d.reference)} at the same guidance and seed.",
        "",
    ]
    lines += _table(
        [
            "Quant",
            "Guidance",
            "Seed",
            "PSNR whole",
            "PSNR in mask",
            "PSNR outside",
            "SSIM whole",
            "SSIM in mask",
            "SSIM outside",
            "Latent MAD",
        ],
        [
            [
                esc(c.quant),
                guidance_token(c.guidance),
                str(c.seed),
                _db(c.psnr_whole),
                _db(c.psnr_inside),
                _db(c.psnr_outside),
                _ssim(c.ssim_whole),
                _ssim(c.ssim_inside),
                _ssim(c.ssim_outside),
                "—" if c.latent_mad is None else f"{c.latent_mad:.3g}",
            ]
            for c in d.cells
            if c.quant != d.reference
        ],
    )
    return lines


def _utilisation_table(data: ReportData) -> list[str]:
    env = data.environment or {}
    gpu = env.get("gpuName")
    rows = []
    for g in data.groups:
        u = g.utilisation
        if not u:
            continue
        rows.append(
            [
                esc(g.label),
                f"{u['flopsPerStep'] / 1e12:.2f}",
                _s(g.median_seconds_per_step, 4),
                "—" if u["achievedTflops"] is None else f"{u['achievedTflops']:.1f}",
                "—" if u["fractionOfPeak"] is None else f"{u['fractionOfPeak']:.0%}",
            ]
        )
    if not rows:
        return []
    peak = next((g.utilisation["peakTflops"] for g in data.groups if g.utilisation), None)
    where = (
        f"{esc(gpu)}, dense bf16 peak {peak:g} TFLOP/s (datasheet)"
        if gpu and peak
        else f"{esc(gpu)}: no bf16 peak known for this GPU"
        if gpu
        else "CPU run: no GPU peak to compare with"
    )
    lines = ["### Utilisation", "", f"Transformer FLOPs per step from its config and the token counts; {where}.", ""]
    lines += _table(["Quant", "TFLOP per step", "Median s/step", "Achieved TFLOP/s", "Of peak"], rows)
    return lines


def _fast_path_table(data: ReportData) -> list[str]:
    rows = []
    for g in data.groups:
        f = g.fast_path
        if not f:
            continue
        kept = ", ".join(f"{esc(t)} ×{n}" for t, n in sorted(f.get("keptLinears", {}).items()))
        kernels = f"on, {f['kernelLinears']} linears" + (f" (diffusers kept {kept})" if kept else "")
        cache = (
            "—"
            if f.get("cacheFilesBefore") is None
            else f"{f['cacheFilesBefore']} → {f.get('cacheFilesAfter', '?')} files"
            + (" (warm)" if f["cacheFilesBefore"] else " (cold)")
        )
        rows.append(
            [
                esc(g.label),
                kernels if f["dequantKernels"] else "off",
                f"regional, {esc(f.get('compileBackend') or '')}" if f["compile"] == "regional" else "off",
                _s(f.get("compileSeconds"), 1),
                cache,
                esc("; ".join(f.get("notes") or [])) or "—",
            ]
        )
    if not rows:
        return []
    lines = [
        "### Fast path",
        "",
        "GGUF dequantization through FluxAudit's Triton kernels (bit-identical to diffusers') and regional "
        "torch.compile of the repeated transformer blocks (`spec.fastPath`). The compile time is the first "
        "warm-up's extra time over the second; the timings above already include the fast path.",
        "",
    ]
    lines += _table(["Quant", "Dequant kernels", "Compile", "Compile (s)", "Compile cache", "Notes"], rows)
    return lines


def render_markdown(data: ReportData, link: LinkFn, figures: dict[str, str]) -> str:
    spec = data.audit.spec
    inp = spec.input
    session = inp.session_paths()
    source = (
        f"session {esc(inp.user_id)}/{esc(inp.session_id)}" if session else f"{esc(inp.image)} + mask {esc(inp.mask)}"
    )
    lines: list[str] = [
        f"# FluxAudit report — {esc(data.audit.metadata.name)}",
        "",
        f"- Run id: `{data.run_id}`",
        f"- Results as of: {esc(data.generated_at or 'no group finished')}",
        f"- Status: {'complete' if data.complete else 'INCOMPLETE — see the groups table'}",
        f"- Input: {source}",
        f"- Prompt: {esc(inp.prompt)}",
        f"- Model: GGUF from {esc(spec.model.gguf_repo)}@{esc(spec.model.revision)}, "
        f"base {esc(spec.model.base_repo)}@{esc(spec.model.base_revision)}",
        f"- Settings: {spec.steps} steps, compute dtype {spec.dtype}, seeds {', '.join(map(str, spec.seeds))}, "
        f"{spec.repeats} timed repeat(s) per cell, {spec.warmup} warm-up inference(s) per group, "
        f"long side ≤ {spec.max_side} px, {spec.max_sequence_length} T5 tokens",
        "",
        *_answers(data),
        *_pictures(figures),
        "## Environment",
        "",
        *_environment(data.environment),
        "",
        "## Groups",
        "",
    ]
    rows = []
    for g in data.groups:
        load = g.load or {}
        load_s = (
            sum(load.get(k, 0.0) for k in ("downloadSeconds", "pipelineLoadSeconds", "transformerLoadSeconds"))
            if load
            else None
        )
        rows.append(
            [
                esc(g.label),
                esc(g.file),
                _bytes(g.bytes),
                f"`{g.sha256[:12]}`" if g.sha256 else "—",
                esc(g.status) + (f" ({esc(g.error)})" if g.error else ""),
                f"{g.cells_done}/{g.cells_total}",
                _s(load_s, 2),
                _bytes(load.get("memoryAfterLoadBytes")) if load else "—",
                esc(load.get("memoryMode", "—")) if load else "—",
            ]
        )
    lines += _table(
        ["Quant", "File", "Size", "sha256", "Status", "Cells", "Load (s)", "Memory after load", "Memory mode"], rows
    )
    lines += ["", "## Results matrix", ""]
    several_seeds = len(spec.seeds) > 1
    header = (
        ["Quant", "Guidance"]
        + (["Seed"] if several_seeds else [])
        + [
            "Steps",
            "Wall-clock (s)",
            "GPU time (ms)",
            "s/step",
            "Peak memory",
            "Image",
        ]
    )
    rows = []
    for c in data.cells:
        rows.append(
            [esc(c.quant), guidance_token(c.guidance)]
            + ([str(c.seed)] if several_seeds else [])
            + [
                str(spec.steps),
                _s(c.wall_seconds),
                _ms(c.cuda_seconds),
                _s(c.seconds_per_step, 4),
                _bytes(c.peak_memory_bytes),
                f"[{esc(c.quant)} gs{guidance_token(c.guidance)}]({link(c.image)})" if c.image else "—",
            ]
        )
    lines += _table(header, rows)
    lines += ["", "### Per quant", ""]
    lines += _table(
        ["Quant", "Median s/image", "Median s/step", "Max peak memory"],
        [
            [esc(g.label), _s(g.median_wall_seconds), _s(g.median_seconds_per_step, 4), _bytes(g.max_peak_memory_bytes)]
            for g in data.groups
        ],
    )
    lines += ["", *_fast_path_table(data)]
    lines += ["", *_utilisation_table(data)]
    lines += ["", *_quality_cells(data)]
    lines += ["", "## torch.compile check", ""]
    cc = data.compile_check
    if cc is None:
        lines.append("Not run.")
    else:
        lines += [f"Checked on {esc(cc['quant'])} with torch {esc(cc['torch'])} on {esc(cc['device'])}.", ""]
        lines += _table(
            ["Target", "Graphs", "Graph breaks", "Ops", "Trace (s)", "Top break reasons"],
            [
                [
                    e["target"],
                    str(e["graphCount"]),
                    str(e["graphBreakCount"]),
                    str(e["opCount"]),
                    _s(e["seconds"], 1),
                    esc(e["error"])
                    if e.get("error")
                    else "; ".join(
                        f"{esc(r['reason'])} ×{r['count']}" + (f" at {esc(r['where'])}" if r.get("where") else "")
                        for r in e["breakReasons"]
                    )
                    or "none",
                ]
                for e in cc["explain"]
            ],
        )
        if cc.get("speedup"):
            sp = cc["speedup"]
            how = (
                "the transformer as the audit ran it (regional compilation), eager under "
                '`torch.compiler.set_stance("force_eager")`'
                if sp.get("mode") == "regional"
                else "`torch.compile` of the whole transformer"
            )
            lines += [
                "",
                f"Measured on {how}, backend {esc(sp.get('backend') or 'inductor')}: "
                f"eager {_ms(sp.get('eagerStepSeconds'))} ms/forward, compiled "
                f"{_ms(sp.get('compiledStepSeconds'))} ms/forward, compile {_s(sp.get('compileSeconds'), 1)} s; "
                + (
                    "compiled output vs eager: bit-identical."
                    if sp.get("outputMaxAbsDiff") == 0
                    else f"compiled output vs eager: {_db(sp.get('outputPsnrDb'))} dB PSNR."
                ),
            ]
    lines += [
        "",
        "## Methodology",
        "",
        "- Each group loads its GGUF file through `hf_hub_download` and "
        "`FluxTransformer2DModel.from_single_file` with `GGUFQuantizationConfig`, builds `FluxFillPipeline`, "
        "encodes the prompt once (FLUX guidance is a distilled embedding, so the prompt embedding does not "
        "depend on it) and frees the text encoders before the transformer loads.",
        "- Warm-up inferences (2 denoising steps each, at the audit's shapes) run first and are not timed. Every cell uses a CPU `torch.Generator` seeded "
        "with the cell's seed, so a cell is reproducible across quants and runs.",
        "- Wall-clock is `time.perf_counter` around the pipeline call after `torch.cuda.synchronize`; GPU time "
        "is CUDA events around the same call; s/step is the median over denoising steps (transformer forward "
        "plus scheduler step). With several repeats, the median is shown.",
        "- Peak memory is `torch.cuda.max_memory_allocated` per cell on a GPU, else the process's peak RSS "
        "(reset per cell through /proc/self/clear_refs).",
        "- Quality compares each cell with the reference group's cell at the same guidance and seed: PSNR over "
        "all pixels, inside the mask and outside it; SSIM (scikit-image, Gaussian window σ=1.5, averaged over "
        "the same regions); the mean absolute difference of the final packed latents. The mask and image are the "
        'ones the pipeline received (stored under inputs/). Identical pixels give PSNR = inf ("identical").',
        "- The compile check runs after the timed matrix: `torch._dynamo.explain` on a 1-step pipeline call "
        "and on the transformer alone with the inputs the pipeline passes it.",
        "- The fast path (`spec.fastPath`, on by default on a CUDA GPU) changes how fast the transformer runs, "
        "not what it computes: the dequant kernels reproduce diffusers' fp16 arithmetic bit for bit, and the "
        "compile check's PSNR states how far compiled output drifts from eager.",
        "",
    ]
    return "\n".join(lines)
