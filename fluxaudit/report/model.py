"""Partials → report data (pure: no I/O, no clock).

The report is a function of the stored partials and the spec only, so rebuilding
it later (``fluxaudit report``) gives the same bytes, and the operator and the
local CLI produce the same report from the same results.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from pydantic.alias_generators import to_camel

from ..results import Cell, Partial
from ..spec import FluxAudit
from ..utilisation import FluxShape, tokens, transformer_flops, utilisation

REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CellSummary:
    """All repeats of one (quant, guidance, seed) cell."""

    quant: str
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


@dataclass(frozen=True)
class GroupSummary:
    label: str
    file: str
    status: str
    cells_done: int
    cells_total: int
    error: str | None
    bytes: int | None
    sha256: str | None
    tensor_types: dict[str, int]
    load: dict[str, Any] | None
    median_wall_seconds: float | None
    median_seconds_per_step: float | None
    max_peak_memory_bytes: int | None
    attempts: int
    cleanup: dict[str, Any] | None
    #: FLOPs per step, achieved TFLOP/s at the median step, fraction of the GPU's bf16 peak.
    utilisation: dict[str, float | None] | None = None
    #: what the transformer ran with (dequant kernels, regional compile, compile time, cache).
    fast_path: dict[str, Any] | None = None


@dataclass
class ReportData:
    audit: FluxAudit
    run_id: str
    generated_at: str | None
    environment: dict[str, Any] | None
    groups: list[GroupSummary]
    cells: list[CellSummary]
    compile_check: dict[str, Any] | None
    missing: list[str] = field(default_factory=list)
    #: quality and recommendations (decisions.Decisions), computed from stored pixels.
    decisions: Any = None

    @property
    def complete(self) -> bool:
        return not self.missing and all(g.status == "complete" for g in self.groups)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _summarize_cells(label: str, cells: list[Cell]) -> list[CellSummary]:
    by_key: dict[tuple[float, int], list[Cell]] = {}
    for c in cells:
        by_key.setdefault((c.guidance, c.seed), []).append(c)
    out = []
    for (guidance, seed), group in sorted(by_key.items()):
        group.sort(key=lambda c: c.repeat)
        first = group[0]
        cuda = [c.cuda_seconds for c in group if c.cuda_seconds is not None]
        steps = [s for c in group for s in c.step_seconds]
        out.append(
            CellSummary(
                quant=label,
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
            )
        )
    return out


def _utilisation(p: Partial, audit: FluxAudit, summaries: list[CellSummary]) -> dict[str, float | None] | None:
    if p.transformer_config is None or not summaries:
        return None
    image_tokens, text_tokens = tokens(p.height, p.width, audit.spec.max_sequence_length)
    flops = transformer_flops(FluxShape.from_config(p.transformer_config), image_tokens, text_tokens)
    step = statistics.median(s.seconds_per_step for s in summaries)
    return utilisation(flops, step, p.environment.gpu_name if p.environment else None)


def build_report_data(audit: FluxAudit, partials: dict[str, Partial | None]) -> ReportData:
    """``partials`` maps every group label (the quants, plus bf16 when it is the reference) to its partial (None if absent)."""
    groups: list[GroupSummary] = []
    cells: list[CellSummary] = []
    environment = None
    compile_check = None
    finished: list[str] = []
    missing = []
    files = {q.label: q.file for q in audit.spec.quants}
    for label in audit.spec.group_labels():
        p = partials.get(label)
        file = files.get(label, "base repo transformer (unquantized)")
        if p is None:
            missing.append(label)
            groups.append(
                GroupSummary(
                    label,
                    file,
                    "missing",
                    0,
                    0,
                    "no results were written",
                    None,
                    None,
                    {},
                    None,
                    None,
                    None,
                    None,
                    0,
                    None,
                )
            )
            continue
        summaries = _summarize_cells(label, p.cells)
        cells.extend(summaries)
        if environment is None and p.environment is not None:
            environment = p.environment.to_json()
        if p.compile_check is not None:
            compile_check = p.compile_check.to_json()
        if p.finished_at:
            finished.append(p.finished_at)
        groups.append(
            GroupSummary(
                label=label,
                file=p.quant.file if p.quant else file,
                status=p.status,
                cells_done=p.cells_done,
                cells_total=p.cells_total,
                error=p.error,
                bytes=p.quant.bytes if p.quant else None,
                sha256=p.quant.sha256 if p.quant else None,
                tensor_types=p.quant.tensor_types if p.quant else {},
                load=p.load.to_json() if p.load else None,
                median_wall_seconds=_median([s.wall_seconds for s in summaries]),
                median_seconds_per_step=_median([s.seconds_per_step for s in summaries]),
                max_peak_memory_bytes=max((s.peak_memory_bytes for s in summaries), default=None),
                attempts=p.attempts,
                cleanup=p.cleanup.to_json() if p.cleanup else None,
                utilisation=_utilisation(p, audit, summaries),
                fast_path=p.fast_path.to_json() if p.fast_path else None,
            )
        )
    return ReportData(
        audit=audit,
        run_id=audit.run_id(),
        generated_at=max(finished) if finished else None,
        environment=environment,
        groups=groups,
        cells=cells,
        compile_check=compile_check,
        missing=missing,
    )


def _camel(d: dict[str, Any]) -> dict[str, Any]:
    """report.json speaks the same camelCase as the spec and the partials."""
    return {to_camel(k): v for k, v in d.items()}


def report_json(data: ReportData) -> dict[str, Any]:
    spec = data.audit.spec.model_dump(by_alias=True, mode="json", exclude={"runner"})
    fastest = min(
        (g for g in data.groups if g.median_wall_seconds is not None),
        key=lambda g: g.median_wall_seconds,  # type: ignore[arg-type,return-value]
        default=None,
    )
    d = data.decisions
    return {
        "schemaVersion": REPORT_SCHEMA_VERSION,
        "runId": data.run_id,
        "name": data.audit.metadata.name,
        "generatedAt": data.generated_at,
        "complete": data.complete,
        "spec": spec,
        "environment": data.environment,
        "groups": [_camel(g.__dict__) for g in data.groups],
        "cells": [_camel(c.__dict__) for c in data.cells],
        "compileCheck": data.compile_check,
        "quality": None
        if d is None
        else {
            "reference": d.reference,
            "referenceReason": d.reference_reason,
            "thresholds": data.audit.spec.quality.model_dump(by_alias=True, mode="json"),
            "cells": [_camel(c.__dict__) for c in d.cells],
            "quants": [_camel(v.__dict__) for v in d.verdicts],
            "guidance": [_camel(r.__dict__) for r in d.guidance_rows],
            "notes": d.notes,
        },
        "summary": {
            "fastestQuant": fastest.label if fastest else None,
            "recommendedQuant": d.recommended_quant if d else None,
            "quantRule": d.quant_rule if d else None,
            "quantReason": d.quant_reason if d else None,
            "suggestedGuidance": d.suggested_guidance if d else None,
            "guidanceRule": d.guidance_rule if d else None,
            "compileVerdict": d.compile_decision if d else "not run",
            "compileReasons": d.compile_reasons if d else [],
            "compileRule": d.compile_rule if d else None,
            "failedGroups": [g.label for g in data.groups if g.status != "complete"],
        },
    }
