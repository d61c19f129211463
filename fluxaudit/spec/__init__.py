"""The FluxAudit spec: one pydantic model shared by the CLI, the runner and the operator.

The same YAML a user ``kubectl apply``s is what ``fluxaudit run`` reads, so the
document envelope (apiVersion/kind/metadata) is validated here too.  The CRD is
generated from these models (``fluxaudit_operator.crd``).

- ``base``: the model base, field patterns, defaults and the names derived from labels;
- ``sections``: quants, model repos, input, quality thresholds, compile check, fast path;
- ``cluster``: the runner Jobs' pod settings and the results storage;
- ``audit``: the whole spec and the document envelope;
- ``document``: parsing YAML/JSON into it, every error with its field path.
"""

from .audit import FluxAudit, FluxAuditSpec, Metadata
from .base import (
    DEFAULT_BASE_REPO,
    DEFAULT_GGUF_REPO,
    DEFAULT_GUIDANCE,
    DEFAULT_IMAGE_TEMPLATE,
    DEFAULT_MASK_TEMPLATE,
    DEFAULT_PROMPT,
    DEFAULT_STEPS,
    GPU_DEFAULT_REPEATS,
    SAFE_SEGMENT,
    UNQUANTIZED,
    WARMUP_STEPS,
    MemoryMode,
    dns_label,
)
from .cluster import ResourceSpec, RunnerSpec, StorageSpec, Toleration
from .document import SpecError, errors_from, load_file, parse_document, parse_text
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

__all__ = [
    "DEFAULT_BASE_REPO",
    "DEFAULT_GGUF_REPO",
    "DEFAULT_GUIDANCE",
    "DEFAULT_IMAGE_TEMPLATE",
    "DEFAULT_MASK_TEMPLATE",
    "DEFAULT_PROMPT",
    "DEFAULT_STEPS",
    "GPU_DEFAULT_REPEATS",
    "SAFE_SEGMENT",
    "UNQUANTIZED",
    "WARMUP_STEPS",
    "CompileCheckSpec",
    "FastPathSpec",
    "FluxAudit",
    "FluxAuditSpec",
    "InputSpec",
    "MemoryMode",
    "Metadata",
    "ModelSpec",
    "QualitySpec",
    "QuantSpec",
    "ResourceSpec",
    "RunnerSpec",
    "SpecError",
    "StorageSpec",
    "TimingSpec",
    "Toleration",
    "default_quants",
    "dns_label",
    "errors_from",
    "load_file",
    "parse_document",
    "parse_text",
]
