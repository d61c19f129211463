"""The report's data, typed: partials → summaries → (decisions) → ``ReportData`` (pure: no I/O, no clock).

The report is a function of the stored partials, the stored pixels and the spec only,
so rebuilding it later (``fluxaudit report``) gives the same bytes, and the operator
and the local CLI produce the same report from the same results.  The markdown and
report.json both read these models; report.json is their camelCase dump.
"""

from __future__ import annotations

import statistics

from pydantic import Field, computed_field

from ..contract import parse_timestamp
from ..results import Calibration, Cell, Cleanup, CompileCheck, Environment, FastPath, LoadTimings, Partial, Placement
from ..spec import FluxAudit
from ..utilisation import FluxShape, Utilisation, tokens, transformer_flops, utilisation
from .base import ReportModel
from .speed import RuntimeTiming, runtime_timings

#: 3: cells name their input (``spec.inputs``; null for the one input of ``spec.input``).
REPORT_SCHEMA_VERSION = 3


class CellSummary(ReportModel):
    """All repeats of one (quant, input, guidance, seed) cell."""

    quant: str
    input: str | None = None
    guidance: float
    seed: int
    repeats: int
    wall_seconds: float
    cuda_seconds: float | None
    seconds_per_step: float
    peak_memory_bytes: int
    peak_memory_kind: str
    image: str | None
    image_sha256: str | None
    latents: str | None
    hallucination: float | None = None


class GroupSummary(ReportModel):
    label: str
    file: str
    status: str
    cells_done: int = 0
    cells_total: int = 0
    error: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    tensor_types: dict[str, int] = Field(default_factory=dict)
    load: LoadTimings | None = None
    median_wall_seconds: float | None = None
    median_seconds_per_step: float | None = None
    max_peak_memory_bytes: int | None = None
    attempts: int = 0
    cleanup: Cleanup | None = None
    #: FLOPs per step, achieved TFLOP/s at the median step, fraction of the GPU's bf16 peak.
    utilisation: Utilisation | None = None
    #: what the transformer ran with (dequant kernels, regional compile, compile time, cache).
    #: why the group's cells have no hallucination score (CLIP switched off or not loadable), if so.
    hallucination_note: str | None = None
    fast_path: FastPath | None = None
    #: where the weights lived and why; the device's calibration matmul; step times per runtime.
    placement: Placement | None = None
    calibration: Calibration | None = None
    timings: list[RuntimeTiming] = Field(default_factory=list)

    def timing(self, runtime: str) -> RuntimeTiming | None:
        return next((t for t in self.timings if t.runtime == runtime), None)


class AuditClock(ReportModel):
    """The audit's own wall clock, from its groups' partials: the first group's start to the last one's finish,
    beside the sum of each group's own start → finish.  Their ratio is what running the groups side by side
    (one Job per quant) bought; about 1 when they ran one after another (local mode)."""

    first_started_at: str
    last_finished_at: str
    span_seconds: float
    groups_seconds: float
    groups: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def parallel_speedup(self) -> float | None:
        return self.groups_seconds / self.span_seconds if self.span_seconds > 0 else None


def audit_clock(partials: list[Partial]) -> AuditClock | None:
    timed = [
        (p.started_at, p.finished_at) for p in partials if p.status == "complete" and p.started_at and p.finished_at
    ]
    if not timed:
        return None
    first, last = min(s for s, _ in timed), max(f for _, f in timed)
    seconds = sum((parse_timestamp(f) - parse_timestamp(s)).total_seconds() for s, f in timed)
    return AuditClock(
        first_started_at=first,
        last_finished_at=last,
        span_seconds=(parse_timestamp(last) - parse_timestamp(first)).total_seconds(),
        groups_seconds=seconds,
        groups=len(timed),
    )


class Summaries(ReportModel):
    """What the partials say, before any pixel is read."""

    groups: list[GroupSummary]
    cells: list[CellSummary]
    environment: Environment | None
    compile_check: CompileCheck | None
    missing: list[str]
    generated_at: str | None
    clock: AuditClock | None = None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _summarize_cells(label: str, cells: list[Cell], inputs: list[str | None]) -> list[CellSummary]:
    """``inputs``: the spec's input names, in its order (the cells' order in the report)."""
    by_key: dict[tuple[str | None, float, int], list[Cell]] = {}
    for c in cells:
        by_key.setdefault((c.input, c.guidance, c.seed), []).append(c)
    order = {name: i for i, name in enumerate(inputs)}
    out = []
    for (name, guidance, seed), group in sorted(
        by_key.items(), key=lambda kv: (order.get(kv[0][0], len(order)), *kv[0][1:])
    ):
        group.sort(key=lambda c: c.repeat)
        first = group[0]
        cuda = [c.cuda_seconds for c in group if c.cuda_seconds is not None]
        steps = [s for c in group for s in c.step_seconds]
        out.append(
            CellSummary(
                quant=label,
                input=name,
                guidance=guidance,
                seed=seed,
                repeats=len(group),
                wall_seconds=statistics.median(c.wall_seconds for c in group),
                cuda_seconds=statistics.median(cuda) if cuda else None,
                seconds_per_step=statistics.median(steps)
                if steps
                else statistics.median(c.wall_seconds for c in group),
                peak_memory_bytes=max(c.peak_memory_bytes for c in group),
                peak_memory_kind=first.peak_memory_kind,
                image=first.image,
                image_sha256=first.image_sha256,
                latents=first.latents,
                hallucination=first.hallucination,
            )
        )
    return out


def _utilisation(p: Partial, audit: FluxAudit, summaries: list[CellSummary]) -> Utilisation | None:
    if p.transformer_config is None or not summaries:
        return None
    # FLOPs per step depend on the size: with inputs of several sizes, the cells at the first input's size
    other_size = {i.name for i in p.inputs if (i.height, i.width) != (p.height, p.width)}
    summaries = [s for s in summaries if s.input not in other_size]
    image_tokens, text_tokens = tokens(p.height, p.width, audit.spec.max_sequence_length)
    flops = transformer_flops(FluxShape.from_config(p.transformer_config), image_tokens, text_tokens)
    step = statistics.median(s.seconds_per_step for s in summaries)
    return utilisation(flops, step, p.environment.gpu_name if p.environment else None)


def _group(label: str, file: str, p: Partial, audit: FluxAudit, summaries: list[CellSummary]) -> GroupSummary:
    return GroupSummary(
        label=label,
        file=p.quant.file if p.quant else file,
        status=p.status,
        cells_done=p.cells_done,
        cells_total=p.cells_total,
        error=p.error,
        bytes=p.quant.bytes if p.quant else None,
        sha256=p.quant.sha256 if p.quant else None,
        tensor_types=p.quant.tensor_types if p.quant else {},
        load=p.load,
        median_wall_seconds=_median([s.wall_seconds for s in summaries]),
        median_seconds_per_step=_median([s.seconds_per_step for s in summaries]),
        max_peak_memory_bytes=max((s.peak_memory_bytes for s in summaries), default=None),
        attempts=p.attempts,
        cleanup=p.cleanup,
        utilisation=_utilisation(p, audit, summaries),
        fast_path=p.fast_path,
        hallucination_note=p.hallucination_note,
        placement=p.placement,
        calibration=p.calibration,
        timings=runtime_timings(p),
    )


def summarize(audit: FluxAudit, partials: dict[str, Partial | None]) -> Summaries:
    """``partials`` maps every group label (the quants, plus bf16 when it is the reference) to its partial (None if absent)."""
    groups: list[GroupSummary] = []
    cells: list[CellSummary] = []
    environment = compile_check = None
    finished: list[str] = []
    missing = []
    files = {q.label: q.file for q in audit.spec.quants}
    for label in audit.spec.group_labels():
        p = partials.get(label)
        file = files.get(label, "base repo transformer (unquantized)")
        if p is None:
            missing.append(label)
            groups.append(GroupSummary(label=label, file=file, status="missing", error="no results were written"))
            continue
        summaries = _summarize_cells(label, p.cells, [name for name, _ in audit.spec.input_items()])
        cells.extend(summaries)
        environment = environment or p.environment
        compile_check = p.compile_check or compile_check
        if p.finished_at:
            finished.append(p.finished_at)
        groups.append(_group(label, file, p, audit, summaries))
    return Summaries(
        groups=groups,
        cells=cells,
        environment=environment,
        compile_check=compile_check,
        missing=missing,
        generated_at=max(finished) if finished else None,
        clock=audit_clock([p for label in audit.spec.group_labels() if (p := partials.get(label)) is not None]),
    )
