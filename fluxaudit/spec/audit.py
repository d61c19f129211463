"""The whole FluxAudit: its spec (what to audit and how) and the document envelope around it."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..contract import API_VERSION, KIND
from ..layout import guidance_token
from .base import (
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
    GPU_DEFAULT_REPEATS,
    MAX_LIST,
    RUN_ID_PATTERN,
    UNQUANTIZED,
    StrictInt,
    StrictNumber,
    _Model,
    dns_label,
)
from .cluster import RunnerSpec, StorageSpec
from .sections import (
    CompileCheckSpec,
    FastPathSpec,
    InputSpec,
    ModelSpec,
    QualitySpec,
    QuantSpec,
    TimingSpec,
    default_quants,
)

#: inputs per audit: each multiplies every group's cells.
MAX_INPUTS = 64
#: the fields that change what a cell computes (or, for memory, what its timing means).
FINGERPRINTED = {
    "input",
    "inputs",
    "model",
    "quants",
    "steps",
    "max_side",
    "max_sequence_length",
    "dtype",
    "fast_path",
    "memory",
}


class FluxAuditSpec(_Model):
    """What to audit and how."""

    input: Annotated[
        InputSpec | None, Field(description="The one input: a stored session or image+mask URIs (or use inputs).")
    ] = None
    inputs: Annotated[
        tuple[InputSpec, ...] | None,
        Field(
            min_length=1,
            max_length=MAX_INPUTS,
            description="Many inputs (sessions or URI pairs, each with an optional prompt and name): every cell runs "
            "on each, one folder per input in the run. Set input or inputs, not both.",
        ),
    ] = None
    model: ModelSpec = Field(default_factory=ModelSpec)
    quants: Annotated[
        tuple[QuantSpec, ...],
        Field(
            min_length=1,
            max_length=MAX_LIST,
            description="GGUF files to audit, one group (Job) each.",
            # A list keyed by label: the API server rejects two quants with one label.
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["label"]},
        ),
    ] = Field(default_factory=default_quants)
    guidance_scales: Annotated[
        tuple[StrictNumber, ...],
        Field(
            min_length=1,
            max_length=MAX_LIST,
            description="Guidance scales to sweep (each > 0 and <= 100, unique).",
            json_schema_extra={
                "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                "x-kubernetes-list-type": "set",  # the API server rejects duplicates
            },
        ),
    ] = DEFAULT_GUIDANCE
    steps: Annotated[StrictInt, Field(ge=1, le=200, description="Denoising steps of every cell.")] = DEFAULT_STEPS
    seeds: Annotated[
        tuple[StrictInt, ...],
        Field(
            min_length=1,
            max_length=MAX_LIST,
            description="Generator seeds; every guidance runs with each.",
            json_schema_extra={"items": {"type": "integer", "minimum": 0}, "x-kubernetes-list-type": "set"},
        ),
    ] = (0,)
    repeats: Annotated[
        StrictInt | None,
        Field(
            ge=1,
            le=20,
            description="Timed runs per cell; images come from the first, every run adds timing samples. Unset: "
            f"{GPU_DEFAULT_REPEATS} on a CUDA GPU, 1 on CPU (the unquantized reference runs once: its timings "
            "decide nothing).",
        ),
    ] = None
    warmup: Annotated[StrictInt, Field(ge=0, le=10, description="Untimed inferences before the sweep.")] = 1
    max_side: Annotated[
        StrictInt,
        Field(ge=64, le=2048, description="The image is resized so its long side is at most this (multiples of 16)."),
    ] = 1024
    max_sequence_length: Annotated[StrictInt, Field(ge=16, le=512, description="T5 prompt tokens.")] = 512
    dtype: Annotated[
        Literal["bfloat16", "float16", "float32"],
        Field(description="Compute dtype; float32 separates quants more finely than bf16 noise allows."),
    ] = "bfloat16"
    reference: Annotated[
        str | None,
        Field(
            description="What quality is measured against: bf16, the base repo's own unquantized transformer (one "
            "more group, offloaded where it does not fit), or a quant label; null picks the largest GGUF file. "
            "A reference that is also a candidate is never recommended for passing against itself.",
        ),
    ] = UNQUANTIZED
    memory: Annotated[
        Literal["auto", "resident", "modelCpuOffload", "groupOffload", "sequentialCpuOffload"],
        Field(
            description="Where the weights live while a group runs. auto: resident when the weights plus a "
            "measured activation estimate fit the free GPU memory, else the cheapest offload that fits, per "
            "group (the partial says why). modelCpuOffload reproduces a service that calls "
            "enable_model_cpu_offload() exactly: text encoders kept, the prompt encoded in every call."
        ),
    ] = "auto"
    timing: TimingSpec = Field(default_factory=TimingSpec)
    quality: QualitySpec = Field(default_factory=QualitySpec)
    compile_check: CompileCheckSpec = Field(default_factory=CompileCheckSpec)
    fast_path: FastPathSpec = Field(default_factory=FastPathSpec)
    runner: RunnerSpec = Field(default_factory=RunnerSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    run_id: Annotated[
        str | None,
        Field(default=None, pattern=RUN_ID_PATTERN, description="Names the run's folder; generated when absent."),
    ] = None

    @field_validator("guidance_scales")
    @classmethod
    def _guidance_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        """In range, unique, and distinct in the images' names (``guidance_token``: 6 significant digits)."""
        for g in v:
            if not 0 < g <= 100:
                raise ValueError(f"guidance {g} is out of range: each value must be > 0 and <= 100")
        if len(set(v)) != len(v):
            raise ValueError("guidance values must be unique")
        names: dict[str, float] = {}
        for g in v:
            token = guidance_token(g)
            if token in names and names[token] != g:
                raise ValueError(
                    f"guidance {names[token]!r} and {g!r} would both write images named ..._gs{token}: "
                    "they must differ within 6 significant digits"
                )
            names[token] = g
        return v

    @field_validator("seeds")
    @classmethod
    def _seed_range(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= s < 2**63 for s in v):
            raise ValueError("seeds must be between 0 and 2**63-1")
        if len(set(v)) != len(v):
            raise ValueError("seeds must be unique")
        return v

    @field_validator("quants")
    @classmethod
    def _unique_labels(cls, v: tuple[QuantSpec, ...]) -> tuple[QuantSpec, ...]:
        seen: dict[str, str] = {}
        for q in v:
            if q.label.lower() == UNQUANTIZED:
                raise ValueError(f"label {q.label!r} is reserved for the unquantized reference (reference: bf16)")
            if q.label.lower() in (s.lower() for s in seen.values()):
                raise ValueError(f"duplicate quant label {q.label!r}: labels name files and Jobs, make each unique")
            # Job names use the label's DNS form: Q5_K.S and Q5_K_S would both be "q5-k-s".
            key = dns_label(q.label)
            if key in seen:
                raise ValueError(
                    f"quant labels {seen[key]!r} and {q.label!r} both become {key!r} in Kubernetes names; rename one"
                )
            seen[key] = q.label
        return v

    @model_validator(mode="after")
    def _one_input_form(self) -> FluxAuditSpec:
        if (self.input is None) == (self.inputs is None):
            raise ValueError(
                "set input (one image and mask) or inputs (a list of them), not both"
                if self.input is not None
                else "set input (userId+sessionId, or image+mask URIs) or inputs (a list of them)"
            )
        if self.input is not None and self.input.name is not None:
            raise ValueError("input.name names an input of spec.inputs; the one input of spec.input has no folder")
        seen: dict[str, int] = {}
        for i, item in enumerate(self.inputs or ()):
            name = item.default_name(i)
            if name.lower() in seen:
                raise ValueError(
                    f"inputs[{seen[name.lower()]}] and inputs[{i}] are both named {name!r} (their folders in the run): "
                    f"set inputs[{i}].name"
                )
            seen[name.lower()] = i
        return self

    def input_items(self) -> list[tuple[str | None, InputSpec]]:
        """Every input with its folder name; the one input of ``spec.input`` has none (the run's root)."""
        if self.inputs is None:
            assert self.input is not None
            return [(None, self.input)]
        return [(item.default_name(i), item) for i, item in enumerate(self.inputs)]

    @property
    def first_input(self) -> InputSpec:
        return self.input_items()[0][1]

    @model_validator(mode="after")
    def _references_exist(self) -> FluxAuditSpec:
        labels = [q.label for q in self.quants]
        if self.reference is not None and self.reference not in [*labels, UNQUANTIZED]:
            raise ValueError(f"reference {self.reference!r} is not one of the quants {labels} (or 'bf16')")
        if self.compile_check.quant is not None and self.compile_check.quant not in labels:
            raise ValueError(f"compileCheck.quant {self.compile_check.quant!r} is not one of the quants {labels}")
        return self

    def group_labels(self) -> list[str]:
        """Every group the audit runs: the quants, plus the unquantized reference when asked for."""
        labels = [q.label for q in self.quants]
        return [*labels, UNQUANTIZED] if self.reference == UNQUANTIZED else labels

    @property
    def compile_quant(self) -> str:
        return self.compile_check.quant or self.quants[0].label

    def quant(self, label: str) -> QuantSpec:
        for q in self.quants:
            if q.label == label:
                return q
        raise KeyError(f"no quant labelled {label!r}; have {[q.label for q in self.quants]}")

    def repeats_for(self, label: str, gpu: bool) -> int:
        """Timed runs per cell of one group on this kind of machine."""
        if label == UNQUANTIZED:
            return 1
        if self.repeats is not None:
            return self.repeats
        return GPU_DEFAULT_REPEATS if gpu else 1

    def cells_for(self, label: str, gpu: bool) -> int:
        """Runs one group makes: every input × guidance scale × seed × repeat."""
        return len(self.input_items()) * len(self.guidance_scales) * len(self.seeds) * self.repeats_for(label, gpu)

    @property
    def requests_gpu(self) -> bool:
        """Whether the runner Jobs claim a GPU (what the operator plans cell counts for)."""
        return any(str(k).endswith("/gpu") for k in self.runner.resources.limits)

    def fingerprint(self) -> str:
        """Hash of everything that changes what a cell computes: a partial written
        under a different fingerprint must not be resumed into this run."""
        relevant = self.model_dump(
            by_alias=True,
            include=FINGERPRINTED,
            mode="json",
        )
        # absent forms stay out of the hash: a one-input spec hashes as it did before inputs existed
        if relevant.get("inputs") is None:
            relevant.pop("inputs", None)
        if isinstance(relevant.get("input"), dict) and relevant["input"].get("name") is None:
            relevant["input"].pop("name")
        if relevant.get("input") is None:
            relevant.pop("input", None)
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Annotated[
        str,
        Field(
            pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$",
            description="Resource name (DNS label, max 40 chars so Job names fit).",
        ),
    ]
    namespace: str | None = None


class FluxAudit(BaseModel):
    """The whole document: what ``kubectl apply`` and ``fluxaudit run`` both read."""

    model_config = ConfigDict(extra="forbid")
    api_version: Annotated[Literal[API_VERSION], Field(alias="apiVersion")]
    kind: Literal[KIND]
    metadata: Metadata
    spec: FluxAuditSpec
    status: dict[str, Any] | None = None

    def run_id(self) -> str:
        """The explicit runId, else ``{name}-{fingerprint}``: rerunning the same
        document finds (and resumes) the same run."""
        if self.spec.run_id:
            return self.spec.run_id
        return f"{self.metadata.name[:30].rstrip('-')}-{self.spec.fingerprint()[:8]}"
