"""The report's detail sections, one function each (pure): environment, groups, results, fast path,
utilisation, quality per cell, the compile check."""

from __future__ import annotations

from collections.abc import Callable

from ..layout import guidance_token
from ..results import Environment, ExplainResult
from .compile_verdict import how_traced
from .data import ReportData
from .format import db, esc, ms, num, size, ssim, table
from .speed import RUNTIME_NAMES

LinkFn = Callable[[str], str]


def _input_column(data: ReportData) -> bool:
    """Tables of cells get an Input column with ``spec.inputs``."""
    return data.audit.spec.inputs is not None


def environment(env: Environment | None) -> list[str]:
    lines = ["## Environment", ""]
    if env is None:
        return [*lines, "No group recorded its environment (no group started)."]
    if env.device == "cuda":
        device = (
            f"{esc(env.gpu_name)} (compute capability {esc(env.compute_capability)}, "
            f"{size(env.gpu_memory_bytes)}, driver {esc(env.driver or '?')}, CUDA {esc(env.cuda)})"
        )
    else:
        device = f"CPU only: {esc(env.cpu or '?')}, {env.cpu_count} cores (no CUDA: CUDA-event times are not available)"
    return [
        *lines,
        f"- Device: {device}",
        f"- Software: torch {esc(env.torch)}, diffusers {esc(env.diffusers)}, gguf {esc(env.gguf)}, "
        f"transformers {esc(env.transformers)}, Python {esc(env.python)}",
        f"- Host: {esc(env.host)}" + (f", node {esc(env.node)}" if env.node else ""),
    ]


def groups(data: ReportData) -> list[str]:
    rows = []
    for g in data.groups:
        load = g.load
        rows.append(
            [
                esc(g.label),
                esc(g.file),
                size(g.bytes),
                f"`{g.sha256[:12]}`" if g.sha256 else "—",
                esc(g.status) + (f" ({esc(g.error)})" if g.error else ""),
                f"{g.cells_done}/{g.cells_total}",
                num(
                    load.download_seconds + load.pipeline_load_seconds + load.transformer_load_seconds
                    if load
                    else None,
                    2,
                ),
                size(load.memory_after_load_bytes) if load else "—",
                esc(load.memory_mode) if load else "—",
            ]
        )
    header = ["Quant", "File", "Size", "sha256", "Status", "Cells", "Load (s)", "Memory after load", "Memory mode"]
    why = [f"- {esc(g.label)}: {esc(g.placement.mode)} — {esc(g.placement.reason)}" for g in data.groups if g.placement]
    clock = data.clock
    wall = []
    if clock is not None:
        ratio = clock.parallel_speedup
        wall = [
            "",
            f"Wall clock: {clock.span_seconds:.0f} s from the first group's start ({esc(clock.first_started_at)}) to "
            f"the last one's finish ({esc(clock.last_finished_at)}); the {clock.groups} groups' own times sum to "
            f"{clock.groups_seconds:.0f} s"
            + (
                f"; sum ÷ span = {ratio:.2f} (1: one after another, {clock.groups}: all side by side)."
                if ratio is not None
                else "."
            ),
        ]
    return [
        "## Groups",
        "",
        *table(header, rows),
        *wall,
        *(["", "Where the weights lived, and why:", "", *why] if why else []),
    ]


def results_matrix(data: ReportData, link: LinkFn) -> list[str]:
    spec = data.audit.spec
    several_seeds = len(spec.seeds) > 1
    several_inputs = _input_column(data)
    header = ["Quant"] + (["Input"] if several_inputs else []) + ["Guidance"] + (["Seed"] if several_seeds else [])
    header += ["Steps", "Wall-clock (s)", "GPU time (ms)", "s/step", "Peak memory", "Image"]
    rows = []
    for c in data.cells:
        rows.append(
            [esc(c.quant)]
            + ([esc(c.input or "")] if several_inputs else [])
            + [guidance_token(c.guidance)]
            + ([str(c.seed)] if several_seeds else [])
            + [
                str(spec.steps),
                num(c.wall_seconds),
                ms(c.cuda_seconds),
                num(c.seconds_per_step, 4),
                size(c.peak_memory_bytes),
                f"[{esc(c.quant)}{' ' + esc(c.input) if c.input else ''} gs{guidance_token(c.guidance)}]"
                f"({link(c.image)})"
                if c.image
                else "—",
            ]
        )
    return ["## Results matrix", "", *table(header, rows)]


def per_quant(data: ReportData) -> list[str]:
    return [
        "### Per quant",
        "",
        *table(
            ["Quant", "Median s/image", "Median s/step", "Max peak memory"],
            [
                [
                    esc(g.label),
                    num(g.median_wall_seconds),
                    num(g.median_seconds_per_step, 4),
                    size(g.max_peak_memory_bytes),
                ]
                for g in data.groups
            ],
        ),
    ]


def timing_evidence(data: ReportData) -> list[str]:
    """Every group's step times per runtime, with spread and sample counts, and its device's calibration."""
    d = data.decisions
    used = d.speed.runtime if d.speed else None
    candidates = {v.label for v in d.verdicts if v.passes and v.label != d.reference}
    rows = []
    for g in data.groups:
        cal = f"{g.calibration.tflops_median:.3g}" if g.calibration else "—"
        for t in g.timings:
            if g.label == d.reference:
                role = "reference: shown, never compared" + (
                    " (offloaded)" if t.memory_mode not in (None, "resident") else ""
                )
            elif t.runtime == used and g.label in candidates:
                role = "speed answer"
            else:
                role = "—"
            rows.append(
                [
                    esc(g.label),
                    RUNTIME_NAMES[t.runtime],
                    esc(t.memory_mode or "—"),
                    str(t.images),
                    str(t.steps),
                    ms(t.median_step_seconds),
                    f"{ms(t.p10_step_seconds)}–{ms(t.p90_step_seconds)}",
                    num(t.median_image_seconds),
                    cal,
                    role,
                ]
            )
    if not rows:
        return []
    lines = [
        "### Timing evidence",
        "",
        "Every denoising step of every timed image, per group and runtime (CUDA events on a GPU, `perf_counter` "
        "on CPU): the median with p10–p90, and how many images and steps it rests on. Calibration: the group's "
        "device timing a fixed matmul before its sweep (TFLOP/s), so groups that ran on different nodes compare.",
        "",
    ]
    header = ["Quant", "Runtime", "Memory mode", "Images", "Steps", "Median ms/step", "p10–p90 ms/step",
              "Median s/image", "Calibration TFLOP/s", "Role"]  # fmt: skip
    return lines + table(header, rows)


def fast_path(data: ReportData) -> list[str]:
    rows = []
    for g in data.groups:
        f = g.fast_path
        if f is None:
            continue
        kept = ", ".join(f"{esc(t)} ×{n}" for t, n in sorted(f.kept_linears.items()))
        kernels = f"on, {f.kernel_linears} linears" + (f" (diffusers kept {kept})" if kept else "")
        cache = (
            "—"
            if f.cache_files_before is None
            else f"{f.cache_files_before} → {'?' if f.cache_files_after is None else f.cache_files_after} files"
            + (" (warm)" if f.cache_files_before else " (cold)")
        )
        rows.append(
            [
                esc(g.label),
                kernels if f.dequant_kernels else "off",
                f"regional, {esc(f.compile_backend or '')}" if f.compile == "regional" else "off",
                num(f.compile_seconds, 1),
                cache,
                esc("; ".join(f.notes)) or "—",
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
    return lines + table(["Quant", "Dequant kernels", "Compile", "Compile (s)", "Compile cache", "Notes"], rows)


def utilisation(data: ReportData) -> list[str]:
    gpu = data.environment.gpu_name if data.environment else None
    rows = []
    for g in data.groups:
        u = g.utilisation
        if u is None:
            continue
        rows.append(
            [
                esc(g.label),
                f"{u.flops_per_step / 1e12:.2f}",
                num(g.median_seconds_per_step, 4),
                "—" if u.achieved_tflops is None else f"{u.achieved_tflops:.1f}",
                "—" if u.fraction_of_peak is None else f"{u.fraction_of_peak:.0%}",
            ]
        )
    if not rows:
        return []
    peak = next((g.utilisation.peak_tflops for g in data.groups if g.utilisation), None)
    where = (
        f"{esc(gpu)}, dense bf16 peak {peak:g} TFLOP/s (datasheet)"
        if gpu and peak
        else f"{esc(gpu)}: no bf16 peak known for this GPU"
        if gpu
        else "CPU run: no GPU peak to compare with"
    )
    lines = ["### Utilisation", "", f"Transformer FLOPs per step from its config and the token counts; {where}.", ""]
    return lines + table(["Quant", "TFLOP per step", "Median s/step", "Achieved TFLOP/s", "Of peak"], rows)


def quality_cells(data: ReportData) -> list[str]:
    d = data.decisions
    if d.reference is None:
        return []
    lines = [
        "## Quality against the reference",
        "",
        f"Each cell against {esc(d.reference)} at the same {'input, ' if _input_column(data) else ''}guidance and seed.",
        "",
    ]
    several_inputs = _input_column(data)
    header = ["Quant", *(["Input"] if several_inputs else []), "Guidance", "Seed", "PSNR whole", "PSNR in mask", "PSNR outside", "SSIM whole", "SSIM in mask",
              "SSIM outside", "Latent MAD"]  # fmt: skip
    rows = [
        [
            esc(c.quant),
            *([esc(c.input or "")] if several_inputs else []),
            guidance_token(c.guidance),
            str(c.seed),
            db(c.psnr_whole),
            db(c.psnr_inside),
            db(c.psnr_outside),
            ssim(c.ssim_whole),
            ssim(c.ssim_inside),
            ssim(c.ssim_outside),
            "—" if c.latent_mad is None else f"{c.latent_mad:.3g}",
        ]
        for c in d.cells
        if c.quant != d.reference
    ]
    return lines + table(header, rows)


def fill_quality(data: ReportData) -> list[str]:
    """Every cell's fill against the input's own surroundings: what drift from a reference cannot say."""
    cells = [c for c in data.decisions.cells if c.seam is not None or c.hallucination is not None]
    if not cells:
        return []
    lines = [
        "## Fill quality (no reference)",
        "",
        "Each cell's fill against the ring of the input image around the mask (formulas under Methodology): "
        "a fill that continues its surroundings has seam ≈ 1, colour ΔE near 0 and texture ≈ 1; a visible edge "
        "raises the seam, a tint raises ΔE, something painted in raises the texture and a smear lowers it. "
        "Hallucination is CLIP's probability (quality.clipModel) that the fill's crop shows one of "
        "quality.objectPrompts rather than the prompt: 0 reads as the prompt, towards 1 as an object.",
        "",
    ]
    reference = data.decisions.reference
    several_inputs = _input_column(data)
    rows = [
        [
            esc(c.quant) + (" (reference)" if c.quant == reference else ""),
            *([esc(c.input or "")] if several_inputs else []),
            guidance_token(c.guidance),
            str(c.seed),
            "—" if c.seam is None else f"{c.seam:.2f}",
            "—" if c.colour_delta_e is None else f"{c.colour_delta_e:.1f}",
            "—" if c.texture_ratio is None else f"{c.texture_ratio:.2f}",
            "—" if c.hallucination is None else f"{c.hallucination:.2f}",
        ]
        for c in cells
    ]
    header = ["Quant", *(["Input"] if several_inputs else []), "Guidance", "Seed", "Seam", "Colour ΔE", "Texture",
              "Hallucination"]  # fmt: skip
    return lines + table(header, rows)


def paired_fill(data: ReportData) -> list[str]:
    """The fill metrics like with like: each quant against the reference, each guidance against the baseline."""
    p = data.paired
    if not p.quants and not p.guidance:
        return []
    lines = [
        "## Fill, paired",
        "",
        "Distance from a perfect continuation per metric (|ln seam|, colour ΔE, |ln texture|, hallucination "
        "probability; lower is better), "
        "compared cell by cell: each quant against the reference at the same input, guidance and seed, each "
        f"guidance against {p.baseline_guidance:g} on the same quant, input and seed. Wins/ties/losses count the pairs (ties within "
        "0.05 for the logarithms and the probability, 1.0 ΔE); the median paired difference (subject − baseline) has a bootstrap 95 % "
        "interval: worse or better only when the whole interval lies beyond the tie tolerance, from 5 pairs up.",
        "",
    ]
    header = ["Subject", "Baseline", "Metric", "Pairs", "Wins / ties / losses", "Median difference [95 %]", "Verdict"]
    rows = [
        [
            esc(m.subject),
            esc(m.baseline),
            m.metric,
            str(m.pairs),
            f"{m.wins} / {m.ties} / {m.losses}",
            f"{m.median:+.3g} [{m.low:+.3g}, {m.high:+.3g}]",
            m.verdict,
        ]
        for m in [*p.quants, *p.guidance]
    ]
    return lines + table(header, rows)


def _explained(e: ExplainResult) -> str:
    how = how_traced(e)
    if e.traced_in is None and e.width:
        how = f"{e.width}×{e.height}, 1 step" + (f"; {how}" if how else "")
    return e.target + (f" ({how})" if how else "")


def compile_check(data: ReportData) -> list[str]:
    lines = ["## torch.compile check", ""]
    cc = data.compile_check
    if cc is None:
        return [*lines, "Not run."]
    lines += [f"Checked on {esc(cc.quant)} with torch {esc(cc.torch)} on {esc(cc.device)}.", ""]
    rows = []
    for e in cc.explain:
        reasons = "; ".join(
            f"{esc(r.reason)} ×{r.count}" + (f" at {esc(r.where)}" if r.where else "") for r in e.break_reasons
        )
        rows.append(
            [
                _explained(e),
                str(e.graph_count),
                str(e.graph_break_count),
                str(e.op_count),
                "in the pipeline's" if e.traced_in else num(e.seconds, 1),
                esc(e.error) if e.error else reasons or "none",
            ]
        )
    lines += table(["Target", "Graphs", "Graph breaks", "Ops", "Trace (s)", "Top break reasons"], rows)
    sp = cc.speedup
    if sp is not None:
        how = (
            "the transformer as the audit ran it (regional compilation), eager under "
            '`torch.compiler.set_stance("force_eager")`'
            if sp.mode == "regional"
            else "`torch.compile` of the whole transformer"
        )
        drift = (
            "compiled output vs eager: bit-identical."
            if sp.output_max_abs_diff == 0
            else f"compiled output vs eager: {db(sp.output_psnr_db)} dB PSNR."
        )
        lines += [
            "",
            f"Measured on {how}, backend {esc(sp.backend or 'inductor')}: "
            f"eager {ms(sp.eager_step_seconds)} ms/forward, compiled {ms(sp.compiled_step_seconds)} ms/forward, "
            f"compile {num(sp.compile_seconds, 1)} s; " + drift,
        ]
    return lines
