"""ReportData → REPORT.md (pure): the header, the answers and pictures, the details, the methodology.

Each section is one function (``answers``, ``sections``); this module orders them.
"""

from __future__ import annotations

from ..spec import UNQUANTIZED, WARMUP_STEPS
from ..stats import RESAMPLES
from . import answers, sections
from .answers import Figures
from .data import ReportData
from .format import esc
from .input_list import input_lines, inputs_section
from .sections import LinkFn

__all__ = ["Figures", "esc", "render_markdown"]


def _repeats(data: ReportData) -> str:
    """Repeats as the groups ran them (``repeats`` unset: 3 on a GPU, 1 on CPU; the bf16 reference 1)."""
    ran = sorted({c.repeats for c in data.cells if c.quant != UNQUANTIZED})
    if data.audit.spec.repeats is not None or not ran:
        return str(data.audit.spec.repeats or "—")
    return "/".join(map(str, ran)) + " (repeats unset: 3 on a GPU, 1 on CPU)"


def header(data: ReportData) -> list[str]:
    spec = data.audit.spec
    return [
        f"# FluxAudit report — {esc(data.audit.metadata.name)}",
        "",
        f"- Run id: `{data.run_id}`",
        f"- Results as of: {esc(data.generated_at or 'no group finished')}",
        f"- Status: {'complete' if data.complete else 'INCOMPLETE — see the groups table'}",
        *input_lines(data),
        f"- Model: GGUF from {esc(spec.model.gguf_repo)}@{esc(spec.model.revision)}, "
        f"base {esc(spec.model.base_repo)}@{esc(spec.model.base_revision)}",
        f"- Settings: {spec.steps} steps, compute dtype {spec.dtype}, seeds {', '.join(map(str, spec.seeds))}; "
        f"{_repeats(data)} timed run(s) per cell, {spec.warmup} warm-up inference(s) per group, "
        f"long side ≤ {spec.max_side} px, {spec.max_sequence_length} T5 tokens",
    ]


def methodology() -> list[str]:
    return [
        "## Methodology",
        "",
        "- Each group loads its GGUF file through `hf_hub_download` and "
        "`FluxTransformer2DModel.from_single_file` with `GGUFQuantizationConfig`, builds `FluxFillPipeline`, "
        "encodes the prompt once (FLUX guidance is a distilled embedding, so the prompt embedding does not "
        "depend on it) and frees the text encoders before the transformer loads.",
        f"- Warm-up inferences ({WARMUP_STEPS} denoising steps each, at the audit's shapes) run first and are not "
        "timed. Every cell uses a CPU `torch.Generator` seeded with the cell's seed, so a cell is reproducible "
        "across quants and runs.",
        "- Wall-clock is `time.perf_counter` around the pipeline call after `torch.cuda.synchronize`; GPU time "
        "is CUDA events around the same call; s/step is the median over denoising steps (transformer forward "
        "plus scheduler step). With several repeats, the median is shown.",
        "- Timing evidence: every step of every timed image is a sample; the report gives median, p10 and p90 "
        "per group and runtime with the counts. Speed comparisons take the ratio of step-time medians and a "
        f"bootstrap 95% interval ({RESAMPLES} resamples of whole images — steps within one image are not "
        "independent; with a single image, of steps); a quant is faster only when the interval lies wholly "
        "outside the tie band, else the quants are tied and the smaller file wins.",
        "- Runtimes: stock diffusers (no kernels, no compile) is timed in the group's memory mode — when the sweep "
        "runs the fast path, first, on a warm-up and whole timed images, because offloading costs are paid per "
        "image — and the fast path is the sweep itself. The speed answer names the runtime it used "
        "(`spec.timing.runtime`) and prints the other's when it differs.",
        "- Memory: `spec.memory: auto` places the weights resident when they plus the activation peak measured on "
        "the device (the VAE decode and one transformer block of each kind at the audit's shapes), with headroom, "
        "fit what the allocator can still hand out under the process's cap; else it streams blocks with group "
        "offloading, else offloads sequentially. Each group's mode and reason are in the groups table and report.json.",
        "- Peak memory is `torch.cuda.max_memory_allocated` per cell on a GPU, else the process's peak RSS "
        "(reset per cell through /proc/self/clear_refs).",
        "- Quality compares each cell with the reference group's cell at the same guidance and seed: PSNR over "
        "all pixels, inside the mask and outside it; SSIM (scikit-image, Gaussian window σ=1.5, averaged over "
        "the same regions); the mean absolute difference of the final packed latents. The mask and image are the "
        'ones the pipeline received (stored under inputs/). Identical pixels give PSNR = inf ("identical").',
        "- Fill quality needs no reference: with the mask M, a band B of ±3 px around its boundary and a ring R "
        "beyond it (6 % of the short side) on the input image: seam = mean |Sobel(G₂ ∗ Y)| of the result over B ÷ "
        "the same of the input over R (Y luminance, G₂ a Gaussian of σ = 2 px); colour ΔE = CIE76 distance "
        "between the mean CIELAB colour of the result over M and of the input over R; texture = std of the "
        "high-pass luminance (Y − G₂ ∗ Y) of the result over M ÷ the same of the input over R. Known-answer "
        "tests (tests/contract/test_fill.py) separate a continued surface from a hard seam (≥ 3× the seam), a "
        "tint (≥ 3× the ΔE) and a pasted object or a smear (≥ 2× or ≤ ½ the texture).",
        "- The compile check runs after the timed matrix: `torch._dynamo.explain` on a 1-step pipeline call "
        "at a long side of at most 256 px (graphs and breaks do not depend on the size) and on the transformer "
        "alone with the inputs the pipeline passes it at the audit's size.",
        "- The fast path (`spec.fastPath`, on by default on a CUDA GPU) changes how fast the transformer runs, "
        "not what it computes: the dequant kernels reproduce diffusers' fp16 arithmetic bit for bit, and the "
        "compile check's PSNR states how far compiled output drifts from eager.",
        "",
    ]


def render_markdown(data: ReportData, link: LinkFn, figures: Figures) -> str:
    parts = [
        header(data),
        answers.answers(data) + answers.pictures(figures) + sections.environment(data.environment),
        inputs_section(data, link),
        sections.groups(data),
        sections.results_matrix(data, link),
        sections.per_quant(data),
        sections.timing_evidence(data),
        sections.fast_path(data),
        sections.utilisation(data),
        sections.quality_cells(data),
        sections.fill_quality(data),
        sections.paired_fill(data),
        sections.compile_check(data),
        methodology(),
    ]
    return "\n".join(line for i, part in enumerate(parts) if part for line in ([""] if i else []) + part)
