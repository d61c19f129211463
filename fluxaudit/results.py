"""Result schema: the partial JSON each runner group writes, cell by cell.

Versioned (``schemaVersion``) because partials outlive the code that wrote them:
the operator and ``fluxaudit report`` read partials written by older runners.
Nothing here is optional by accident: a ``None`` means "not measurable here"
(e.g. CUDA time on a CPU), never "we did not bother".
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .errors import PermanentError

SCHEMA_VERSION = 3
#: versions this build reads: 1 lacks the memory, calibration and stock-runtime records (None);
#: 2 has no per-input cells (one input).
READABLE_SCHEMA_VERSIONS = (1, 2, 3)


class ResumeConflict(PermanentError):
    """A stored partial was written for a different spec (or file): resuming would mix results."""


class _Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json(self) -> dict:
        return self.model_dump(by_alias=True, mode="json")


class QuantFile(_Schema):
    label: str
    file: str
    repo: str
    revision: str
    sha256: str
    bytes: int
    tensor_types: dict[str, int] = Field(default_factory=dict, description="GGML type name -> tensor count")


class Environment(_Schema):
    device: str
    gpu_name: str | None = None
    gpu_memory_bytes: int | None = None
    compute_capability: str | None = None
    driver: str | None = None
    cuda: str | None = None
    cpu: str | None = None
    cpu_count: int | None = None
    torch: str
    diffusers: str
    gguf: str
    transformers: str
    python: str
    host: str
    node: str | None = None


class LoadTimings(_Schema):
    download_seconds: float
    #: sha256 + header read of the GGUF file, overlapped with the loading below (not additive).
    hash_seconds: float | None = None
    transformer_load_seconds: float
    pipeline_load_seconds: float
    prompt_encode_seconds: float
    warmup_seconds: float
    memory_after_load_bytes: int | None
    memory_mode: str


class FastPath(_Schema):
    """What the group's transformer ran with, and why (``spec.fastPath`` resolved on this machine)."""

    dequant_kernels: bool
    #: GGUF linears dequantized by the kernels, and those left to diffusers by GGML type.
    kernel_linears: int = 0
    kept_linears: dict[str, int] = Field(default_factory=dict)
    compile: Literal["regional", "off"]
    compile_backend: str | None = None
    #: the first warm-up's extra time over the second: what compiling (or loading from the cache) cost.
    compile_seconds: float | None = None
    cache_dir: str | None = None
    cache_files_before: int | None = None
    cache_files_after: int | None = None
    notes: list[str] = Field(default_factory=list)


class Placement(_Schema):
    """Where the group's weights lived, and why (``spec.memory`` resolved on this machine)."""

    mode: Literal["resident", "modelCpuOffload", "groupOffload", "sequentialCpuOffload"]
    requested: str
    reason: str
    #: the transformer's weights as loaded (quantized bytes for GGUF), exact.
    weights_bytes: int | None = None
    #: peak activation measured on the device (VAE decode and one transformer block at the audit's shapes).
    activation_bytes: int | None = None
    #: what the allocator could still hand out before placing: the per-process cap minus what is reserved.
    free_bytes: int | None = None


class Calibration(_Schema):
    """A fixed matmul timed on this group's device: groups that ran on different nodes compare through it."""

    what: str
    tflops_median: float
    tflops_p10: float
    tflops_p90: float
    samples: int
    seconds: float


class TimedImage(_Schema):
    """One full image outside the sweep: the stock diffusers runtime, when the sweep ran the fast path."""

    guidance: float
    seed: int
    wall_seconds: float
    cuda_seconds: float | None
    step_seconds: list[float]
    peak_memory_bytes: int


class StockSample(_Schema):
    """Stock diffusers (no kernels, no compile) in the group's memory mode: a warm-up, then timed images."""

    warmup_seconds: float
    images: list[TimedImage] = Field(default_factory=list)


class InputRecord(_Schema):
    """One of ``spec.inputs`` as the group ran it."""

    name: str
    sha256: str
    height: int
    width: int
    prompt: str


#: (input, guidance, seed, repeat): what makes a cell, and what resuming counts.
CellKey = tuple[str | None, float, int, int]


class Cell(_Schema):
    #: the input's name with ``spec.inputs``; None for the one input of ``spec.input``.
    input: str | None = None
    guidance: float
    seed: int
    repeat: int
    wall_seconds: float
    cuda_seconds: float | None
    step_seconds: list[float]
    peak_memory_bytes: int
    peak_memory_kind: Literal["cuda_max_allocated", "process_peak_rss"]
    image: str | None
    image_sha256: str | None
    latents: str | None = None
    finished_at: str
    #: CLIP's probability that the fill reads as an object rather than the prompt (first repeat only).
    hallucination: float | None = None

    @property
    def key(self) -> CellKey:
        return (self.input, self.guidance, self.seed, self.repeat)


class BreakReason(_Schema):
    """One distinct graph-break reason and how often dynamo hit it."""

    reason: str
    where: str | None = None
    count: int = 1


class TracedBlocks(_Schema):
    """A list of ``of`` interchangeable blocks traced by ``traced`` of them (``repeated_blocks``): the first,
    the second and the last; the second's ops count for every block left out."""

    name: str
    traced: int
    of: int


class ExplainResult(_Schema):
    target: Literal["pipeline", "transformer"]
    graph_count: int
    graph_break_count: int
    op_count: int
    break_reasons: list[BreakReason]
    seconds: float
    error: str | None = None
    #: the size traced at (the pipeline is explained small: graphs and breaks do not depend on it)
    width: int | None = None
    height: int | None = None
    #: "pipeline": read from the transformer's frames of the pipeline's trace, not traced alone (seconds 0)
    traced_in: Literal["pipeline"] | None = None
    #: lists of repeated blocks traced by three of their blocks, ops scaled; None: every block traced
    traced_blocks: list[TracedBlocks] | None = None


class Speedup(_Schema):
    """Eager vs compiled transformer forwards, measured (``compile_check.measure_speedup``)."""

    #: regional: the blocks as the audit ran them vs ``force_eager``; whole: ``torch.compile`` of the transformer.
    mode: Literal["regional", "whole"]
    backend: str
    eager_step_seconds: float
    compiled_step_seconds: float
    compile_seconds: float | None
    speedup: float | None
    #: PSNR of the compiled output against eager over its range; inf when bit-identical.
    output_psnr_db: float | None
    output_max_abs_diff: float


class CompileCheck(_Schema):
    quant: str
    torch: str
    device: str
    explain: list[ExplainResult]
    speedup: Speedup | None = None


class Cleanup(_Schema):
    """Memory given back when the group released its models (local mode, many groups
    in one process: the next group must start from a clean device)."""

    before_bytes: int
    after_bytes: int
    freed_bytes: int
    kind: Literal["cuda_allocated", "process_rss"]


class Partial(_Schema):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    fingerprint: str
    #: sha256 over the input image's bytes, then the mask's: the same URIs may hold other bytes tomorrow.
    input_sha256: str | None = None
    quant: QuantFile | None = None
    dtype: str
    steps: int
    height: int
    width: int
    prompt: str
    #: with ``spec.inputs``: each input's size, prompt and bytes' sha256 (height, width and prompt above: the first's).
    inputs: list[InputRecord] = Field(default_factory=list)
    environment: Environment | None = None
    #: the loaded transformer's config (layers, heads, widths): FLOPs per step come from it.
    transformer_config: dict[str, Any] | None = None
    load: LoadTimings | None = None
    fast_path: FastPath | None = None
    placement: Placement | None = None
    calibration: Calibration | None = None
    #: which runtime the sweep's cells timed: stock diffusers, or the fast path.
    sweep_runtime: Literal["stock", "fastPath"] | None = None
    #: the CLIP checkpoint behind each cell's hallucination score, or why there is none.
    hallucination_model: str | None = None
    hallucination_note: str | None = None
    stock_sample: StockSample | None = None
    cells: list[Cell] = Field(default_factory=list)
    cells_total: int
    compile_check: CompileCheck | None = None
    cleanup: Cleanup | None = None
    status: Literal["running", "complete", "failed"] = "running"
    error: str | None = None
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def cells_done(self) -> int:
        return len(self.cells)

    def done_keys(self) -> set[CellKey]:
        return {c.key for c in self.cells}

    @classmethod
    def from_json(cls, data: dict) -> Partial:
        version = data.get("schemaVersion")
        if version not in READABLE_SCHEMA_VERSIONS:
            raise ValueError(f"partial has schemaVersion {version!r}; this build reads {READABLE_SCHEMA_VERSIONS}")
        return cls.model_validate(data)
