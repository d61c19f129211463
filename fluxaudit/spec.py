"""The FluxAudit spec: one pydantic model shared by the CLI, the runner and the operator.

The same YAML a user ``kubectl apply``s is what ``fluxaudit run`` reads, so the
document envelope (apiVersion/kind/metadata) is validated here too.  Field names
are the camelCase ones Kubernetes users write; Python code uses snake_case.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

API_GROUP = "fluxaudit.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "FluxAudit"

DEFAULT_GGUF_REPO = "YarvixPA/FLUX.1-Fill-dev-GGUF"
DEFAULT_BASE_REPO = "black-forest-labs/FLUX.1-Fill-dev"
#: the original service's fixed object-removal prompt.
DEFAULT_PROMPT = "empty ground, nothing here, just the natural ground surface continuing seamlessly"
DEFAULT_GUIDANCE = (2.0, 4.0, 10.0, 20.0, 30.0)
DEFAULT_STEPS = 28
DEFAULT_IMAGE_TEMPLATE = "users/{userId}/sessions/{sessionId}/original.jpg"
DEFAULT_MASK_TEMPLATE = "users/{userId}/sessions/{sessionId}/mask_auto.png"

#: a label becomes a path segment, a Job name suffix and a Markdown cell, so keep it plain.
SAFE_SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
RUN_ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$"
REPO_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$"
GGUF_FILE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_./-]*\.gguf$"
URI_PATTERN = r"^(gs|file)://.+$"
MAX_LIST = 32
#: the reserved group label of the unquantized transformer from the base repo.
UNQUANTIZED = "bf16"


class _Model(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class QuantSpec(_Model):
    """One GGUF file to audit."""

    label: Annotated[
        str, Field(pattern=SAFE_SEGMENT, description="Short name used in paths, Job names and the report, e.g. Q4_0.")
    ]
    file: Annotated[
        str,
        Field(pattern=GGUF_FILE_PATTERN, description="File name inside model.ggufRepo, e.g. flux1-fill-dev-Q4_0.gguf."),
    ]
    sha256: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^[0-9a-f]{64}$",
            description="Expected sha256 of the file; the group fails if it differs.",
        ),
    ] = None

    @field_validator("file")
    @classmethod
    def _no_parent_dirs(cls, v: str) -> str:
        if ".." in v.split("/"):
            raise ValueError("must not contain '..'; give the file's path inside the repo")
        return v


def default_quants(file_prefix: str = "flux1-fill-dev") -> tuple[QuantSpec, ...]:
    return tuple(QuantSpec(label=q, file=f"{file_prefix}-{q}.gguf") for q in ("Q4_0", "Q5_K_S", "Q8_0"))


class ModelSpec(_Model):
    """Where the weights come from (Hugging Face hub repos)."""

    gguf_repo: Annotated[
        str, Field(pattern=REPO_ID_PATTERN, description="Hub repo holding the GGUF transformer files.")
    ] = DEFAULT_GGUF_REPO
    base_repo: Annotated[
        str,
        Field(
            pattern=REPO_ID_PATTERN,
            description="Diffusers repo for config, VAE, text encoders, scheduler (gated: needs HF_TOKEN).",
        ),
    ] = DEFAULT_BASE_REPO
    revision: Annotated[
        str, Field(min_length=1, max_length=64, description="Revision of ggufRepo (branch, tag or commit).")
    ] = "main"
    base_revision: Annotated[str, Field(min_length=1, max_length=64, description="Revision of baseRepo.")] = "main"


class InputSpec(_Model):
    """The user's image, mask and prompt: a stored session, or explicit URIs."""

    user_id: Annotated[
        str | None,
        Field(
            default=None,
            pattern=SAFE_SEGMENT,
            description="Session owner; with sessionId resolves the session's assets.",
        ),
    ] = None
    session_id: Annotated[
        str | None,
        Field(default=None, pattern=SAFE_SEGMENT, description="Session id; with userId resolves the session's assets."),
    ] = None
    image: Annotated[
        str | None,
        Field(default=None, pattern=URI_PATTERN, description="Image URI (gs://bucket/path or file:///path)."),
    ] = None
    mask: Annotated[
        str | None, Field(default=None, pattern=URI_PATTERN, description="Mask URI; white = area to fill.")
    ] = None
    prompt: Annotated[str, Field(min_length=1, max_length=2000, description="Fill prompt.")] = DEFAULT_PROMPT
    image_template: Annotated[str, Field(description="Storage path of a session's image.")] = DEFAULT_IMAGE_TEMPLATE
    mask_template: Annotated[str, Field(description="Storage path of a session's mask.")] = DEFAULT_MASK_TEMPLATE

    @model_validator(mode="after")
    def _one_source(self) -> InputSpec:
        session = self.user_id is not None or self.session_id is not None
        explicit = self.image is not None or self.mask is not None
        if session and explicit:
            raise ValueError("give either userId+sessionId or image+mask, not both")
        if session and (self.user_id is None or self.session_id is None):
            raise ValueError("userId and sessionId go together: set both")
        if explicit and (self.image is None or self.mask is None):
            raise ValueError("image and mask go together: set both URIs")
        if not session and not explicit:
            raise ValueError("set userId+sessionId, or image+mask URIs")
        return self

    @field_validator("image_template", "mask_template")
    @classmethod
    def _template_fields(cls, v: str) -> str:
        allowed = {"userId", "sessionId"}
        names = set(re.findall(r"{(\w*)}", v))
        if names - allowed:
            raise ValueError(f"unknown placeholder(s) {sorted(names - allowed)}; allowed: {{userId}}, {{sessionId}}")
        if v.startswith("/") or ".." in v.split("/"):
            raise ValueError("must be a relative storage path without '..'")
        return v

    def session_paths(self) -> tuple[str, str] | None:
        if self.user_id is None or self.session_id is None:
            return None
        values = {"userId": self.user_id, "sessionId": self.session_id}
        return self.image_template.format(**values), self.mask_template.format(**values)


class QualitySpec(_Model):
    """Thresholds behind the report's recommendations (all stated in the report)."""

    min_psnr_db: Annotated[
        float,
        Field(
            ge=0,
            le=100,
            description="A quant passes at a cell when its whole-image PSNR vs the reference is at least this.",
        ),
    ] = 30.0
    min_ssim: Annotated[
        float, Field(ge=0, le=1, description="...and its whole-image SSIM vs the reference is at least this.")
    ] = 0.90
    min_outside_mask_psnr_db: Annotated[
        float,
        Field(
            ge=0,
            le=100,
            description="...and its PSNR outside the mask (pixels users expect unchanged) is at least this.",
        ),
    ] = 30.0
    speed_tie_tolerance: Annotated[
        float,
        Field(
            ge=0,
            le=0.5,
            description="Quants whose median s/image differ by less than this fraction count as equally fast; the smaller file wins.",
        ),
    ] = 0.03
    saturation_fraction: Annotated[
        float,
        Field(
            ge=0,
            le=1,
            description="Flag a guidance when more than this fraction of in-mask pixels are clipped to 0 or 255.",
        ),
    ] = 0.02
    outside_mask_drop_db: Annotated[
        float,
        Field(
            ge=0,
            le=60,
            description="Flag a guidance whose outside-mask PSNR vs the input falls this far below the best guidance's.",
        ),
    ] = 3.0


class CompileCheckSpec(_Model):
    """The torch.compile viability check, run after the matrix."""

    enabled: Annotated[bool, Field(description="Run torch._dynamo.explain on the pipeline and the transformer.")] = True
    quant: Annotated[str | None, Field(default=None, description="Quant label to check; default the first quant.")] = (
        None
    )
    measure_speedup: Annotated[bool, Field(description="Also compile and time a few steps (minutes on a GPU).")] = False


class FastPathSpec(_Model):
    """How the runner executes the transformer; each part of the GGUF fast path can be switched off."""

    dequant_kernels: Annotated[
        Literal["auto", "on", "off"],
        Field(
            description="Dequantize GGUF weights with FluxAudit's Triton kernels (bit-identical to diffusers, "
            "several times faster). auto: on where Triton and a CUDA GPU are present."
        ),
    ] = "auto"
    compile: Annotated[
        Literal["auto", "regional", "off"],
        Field(
            description="torch.compile the repeated transformer blocks (regional compilation: seconds, not "
            "minutes) before the warm-up. auto: regional on a CUDA GPU, off on CPU."
        ),
    ] = "auto"
    compile_backend: Annotated[
        Literal["inductor", "aot_eager", "eager"],
        Field(description="torch.compile backend; inductor in production, the others to isolate a compiler bug."),
    ] = "inductor"


class Toleration(_Model):
    """A pod toleration, as in core/v1 (lets runner pods onto tainted GPU nodes)."""

    key: Annotated[str | None, Field(description="Taint key to tolerate, e.g. nvidia.com/gpu.")] = None
    operator: Annotated[Literal["Exists", "Equal"] | None, Field(description="Exists or Equal.")] = None
    value: Annotated[str | None, Field(description="Taint value (with operator Equal).")] = None
    effect: Annotated[
        Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None, Field(description="Taint effect to tolerate.")
    ] = None
    toleration_seconds: Annotated[int | None, Field(description="With NoExecute: how long the pod stays.")] = None


class ResourceSpec(_Model):
    """Requests and limits of the runner container, as in core/v1."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    requests: dict[str, str | int] = Field(
        default_factory=lambda: {"cpu": "4", "memory": "28Gi"}, description="Resource requests, e.g. cpu: 4."
    )
    limits: dict[str, str | int] = Field(
        default_factory=lambda: {"memory": "30Gi", "nvidia.com/gpu": 1},
        description="Resource limits; nvidia.com/gpu: 1 claims the GPU.",
    )


class RunnerSpec(_Model):
    """How the Kubernetes Job of each quant group runs (ignored in local mode)."""

    image: Annotated[
        str,
        Field(
            min_length=1,
            description="Runner container image (CUDA build of torch inside). Unset: the operator installation's default (Helm value runner.image).",
        ),
    ] = "ghcr.io/fluxaudit/runner:0.1.0"
    node_selector: dict[str, str] = Field(
        default_factory=lambda: {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        description="Node labels the runner pods need. Unset: the installation's default, else the GKE L4 pool.",
    )
    tolerations: tuple[Toleration, ...] = Field(
        default=(Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),),
        description="Tolerations for the GPU nodes' taints.",
    )
    resources: ResourceSpec = Field(default_factory=ResourceSpec, description="Container resources.")
    backoff_limit: Annotated[
        int, Field(ge=0, le=20, description="Retries of a failed runner pod (preemptions do not count).")
    ] = 3
    active_deadline_seconds: Annotated[
        int, Field(ge=60, le=7 * 24 * 3600, description="Hard time limit of each group's Job.")
    ] = 4 * 3600
    ttl_seconds_after_finished: Annotated[
        int, Field(ge=0, description="Seconds a finished Job is kept before the cluster deletes it.")
    ] = 24 * 3600
    priority_class_name: Annotated[str | None, Field(description="PriorityClass of the runner pods.")] = None
    queue_name: Annotated[
        str | None, Field(description="Kueue LocalQueue: Jobs start suspended and Kueue admits them.")
    ] = None


class StorageSpec(_Model):
    """Where results go: a Firebase/GCS bucket in the cluster, a folder locally."""

    bucket: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$",
            description="GCS bucket name. Unset: the operator installation's default bucket; locally, a folder.",
        ),
    ] = None
    prefix: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$",
            description="Folder the audit writes under.",
        ),
    ] = "audit"
    signed_url_hours: Annotated[
        int, Field(ge=1, le=168, description="Lifetime of signed URLs; V4 URLs last at most 7 days (168 h).")
    ] = 72


class FluxAuditSpec(_Model):
    """What to audit and how."""

    input: InputSpec
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
        tuple[float, ...],
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
    steps: Annotated[int, Field(ge=1, le=200, description="Denoising steps of every cell.")] = DEFAULT_STEPS
    seeds: Annotated[
        tuple[int, ...],
        Field(
            min_length=1,
            max_length=MAX_LIST,
            description="Generator seeds; every guidance runs with each.",
            json_schema_extra={"items": {"type": "integer", "minimum": 0}, "x-kubernetes-list-type": "set"},
        ),
    ] = (0,)
    repeats: Annotated[int, Field(ge=1, le=20, description="Timed runs per cell; images come from the first.")] = 1
    warmup: Annotated[int, Field(ge=0, le=10, description="Untimed inferences before the sweep.")] = 1
    max_side: Annotated[
        int,
        Field(ge=64, le=2048, description="The image is resized so its long side is at most this (multiples of 16)."),
    ] = 1024
    max_sequence_length: Annotated[int, Field(ge=16, le=512, description="T5 prompt tokens.")] = 512
    dtype: Annotated[
        Literal["bfloat16", "float16", "float32"],
        Field(description="Compute dtype; float32 separates quants more finely than bf16 noise allows."),
    ] = "bfloat16"
    reference: Annotated[
        str | None,
        Field(
            default=None,
            description="Quant label, or bf16 for the base repo's unquantized transformer (one more group), "
            "that quality is measured against; default the largest GGUF file audited.",
        ),
    ] = None
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
        for g in v:
            if not 0 < g <= 100:
                raise ValueError(f"guidance {g} is out of range: each value must be > 0 and <= 100")
        if len(set(v)) != len(v):
            raise ValueError("guidance values must be unique")
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

    @property
    def cells_per_group(self) -> int:
        """Images each group makes: every guidance scale × seed × repeat."""
        return len(self.guidance_scales) * len(self.seeds) * self.repeats

    def fingerprint(self) -> str:
        """Hash of everything that changes what a cell computes: a partial written
        under a different fingerprint must not be resumed into this run."""
        relevant = self.model_dump(
            by_alias=True,
            include={"input", "model", "quants", "steps", "max_side", "max_sequence_length", "dtype", "fast_path"},
            mode="json",
        )
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
    api_version: Annotated[Literal["fluxaudit.dev/v1alpha1"], Field(alias="apiVersion")]
    kind: Literal["FluxAudit"]
    metadata: Metadata
    spec: FluxAuditSpec
    status: dict[str, Any] | None = None

    def run_id(self) -> str:
        """The explicit runId, else ``{name}-{fingerprint}``: rerunning the same
        document finds (and resumes) the same run."""
        if self.spec.run_id:
            return self.spec.run_id
        return f"{self.metadata.name[:30].rstrip('-')}-{self.spec.fingerprint()[:8]}"


def dns_label(value: str) -> str:
    """Lower-case DNS-1123 label characters only (``Q5_K_S`` → ``q5-k-s``): how a label appears in
    Job names and Kubernetes labels."""
    out = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    return out or "x"


class SpecError(Exception):
    """A spec that cannot run; ``errors`` are (field path, message) pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {path}: {msg}" for path, msg in errors)
        super().__init__(f"{source}: {len(errors)} error(s)\n{lines}")


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # pydantic inserts tags like "function-after[...]" for validators; they are not fields.
            if "[" in part or part.startswith("function-"):
                continue
            out += f".{part}" if out else part
    return out or "(document)"


def _friendly(err: dict[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown field: remove it or check its spelling (kubectl explain fa.spec lists the fields)"
    if err["type"] == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        return f"{err.get('input')!r} does not match {pattern}"
    if err["type"] == "too_short":
        return "must not be empty"
    return msg


def errors_from(exc: ValidationError) -> list[tuple[str, str]]:
    return [(_field_path(tuple(e["loc"])), _friendly(e)) for e in exc.errors()]


def parse_document(doc: Any, source: str = "<spec>") -> FluxAudit:
    """Validate a loaded YAML/JSON document; raise SpecError listing every problem."""
    if not isinstance(doc, dict):
        raise SpecError(source, [("(document)", "expected a mapping with apiVersion, kind, metadata and spec")])
    try:
        return FluxAudit.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(source, errors_from(exc)) from None


def parse_text(text: str, source: str) -> FluxAudit:
    """One YAML (or JSON) document → a validated FluxAudit."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecError(source, [("(yaml)", str(exc).replace("\n", " "))]) from None
    if len(docs) != 1:
        raise SpecError(source, [("(document)", f"expected one FluxAudit document, found {len(docs)}")])
    return parse_document(docs[0], source)


def load_file(path: str | Path) -> FluxAudit:
    """A YAML/JSON file, or ``env:NAME`` for a document held in an environment variable
    (how a Kubernetes Job receives its spec without another object to grant RBAC on)."""
    if isinstance(path, str) and path.startswith("env:"):
        name = path.removeprefix("env:")
        if name not in os.environ:
            raise SpecError(path, [("(env)", f"environment variable {name} is not set")])
        return parse_text(os.environ[name], path)
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), [("(file)", f"cannot read: {exc.strerror}")]) from None
    return parse_text(text, str(path))
