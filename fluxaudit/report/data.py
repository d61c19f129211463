"""``ReportData``: everything the report says, decided before it is built; and report.json from it (pure)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from ..results import Partial
from ..spec import FluxAudit
from .cell_quality import ArrayReader, InputPixels
from .decisions import Decisions, decide
from .model import REPORT_SCHEMA_VERSION, Summaries, summarize
from .paired import PairedComparisons


class ReportData(Summaries):
    """What the partials say (``Summaries``), and what is decided from them and the stored pixels."""

    audit: FluxAudit = Field(exclude=True)
    run_id: str
    decisions: Decisions

    @property
    def paired(self) -> PairedComparisons:
        """The fill metrics compared like with like (quant vs reference, guidance vs the baseline guidance)."""
        return self.decisions.paired

    @property
    def complete(self) -> bool:
        return not self.missing and all(g.status == "complete" for g in self.groups)


def build_report_data(
    audit: FluxAudit,
    partials: dict[str, Partial | None],
    pixels: InputPixels,
    read: ArrayReader,
) -> ReportData:
    s = summarize(audit, partials)
    decisions = decide(audit.spec, s.groups, s.cells, s.compile_check, pixels, read)
    return ReportData(audit=audit, run_id=audit.run_id(), decisions=decisions, **dict(s))


def finite(obj: Any) -> Any:
    """Strict JSON: PSNR of identical images is written as the string "inf"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else "-inf" if obj < 0 else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def _dump(model: BaseModel | None) -> Any:
    return None if model is None else model.model_dump(by_alias=True)


def report_json(data: ReportData) -> dict[str, Any]:
    spec = data.audit.spec.model_dump(by_alias=True, mode="json", exclude={"runner"})
    d = data.decisions
    return finite(
        {
            "schemaVersion": REPORT_SCHEMA_VERSION,
            "runId": data.run_id,
            "name": data.audit.metadata.name,
            "generatedAt": data.generated_at,
            "complete": data.complete,
            "spec": spec,
            "environment": _dump(data.environment),
            "groups": [_dump(g) for g in data.groups],
            "cells": [_dump(c) for c in data.cells],
            "compileCheck": _dump(data.compile_check),
            "clock": _dump(data.clock),
            "quality": {
                "reference": d.reference,
                "referenceReason": d.reference_reason,
                "thresholds": data.audit.spec.quality.model_dump(by_alias=True, mode="json"),
                "cells": [_dump(c) for c in d.cells],
                "quants": [_dump(v) for v in d.verdicts],
                "guidance": [_dump(r) for r in d.guidance_rows],
                "paired": _dump(data.paired),
                "notes": d.notes,
            },
            "summary": {
                # distinguishably fastest at the measured noise, quality aside (None: tied or not timed)
                "fastestQuant": d.speed_ranking.fastest
                if d.speed_ranking and d.speed_ranking.basis == "faster"
                else None,
                "speedRanking": _dump(d.speed_ranking),
                "reference": d.reference,
                "recommendedQuant": d.recommended_quant,
                "quantBasis": d.quant_basis,
                "speed": _dump(d.speed),
                "otherRuntimeSpeed": _dump(d.other_speed),
                "quantRule": d.quant_rule,
                "quantReason": d.quant_reason,
                "suggestedGuidance": d.suggested_guidance,
                "guidanceRule": d.guidance_rule,
                "compileVerdict": d.compile_decision,
                "compileReasons": d.compile_reasons,
                "compileRule": d.compile_rule,
                "failedGroups": [g.label for g in data.groups if g.status != "complete"],
            },
        }
    )
