"""What every part of the spec shares: the camelCase model base, field patterns, defaults, names.

Field names are the camelCase ones Kubernetes users write; Python code uses snake_case.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Strict, StrictBool, StrictInt
from pydantic.alias_generators import to_camel

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
#: a branch, tag or commit of a hub repo (refs/pr/1 included); never a path out of the hub cache.
REVISION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$"
REPO_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$"
GGUF_FILE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_./-]*\.gguf$"
URI_PATTERN = r"^(gs|file)://.+$"
MAX_LIST = 32
#: the reserved group label of the unquantized transformer from the base repo.
UNQUANTIZED = "bf16"
#: Numbers and booleans are taken as the API server takes them: "2" is not a number and true is not
#: a step count (lax coercion would accept locally what the CRD refuses in a cluster).
StrictNumber = Annotated[float, Strict()]
__all__ = ["StrictBool", "StrictInt", "StrictNumber"]

#: a warm-up inference runs this many denoising steps: enough to initialise CUDA, cuBLAS
#: and the allocator at the real shapes, without paying a whole extra image per group.
WARMUP_STEPS = 2
#: timed runs per cell on a CUDA GPU when ``repeats`` is unset: one sample is noise, not evidence.
GPU_DEFAULT_REPEATS = 3
MemoryMode = Literal["resident", "modelCpuOffload", "groupOffload", "sequentialCpuOffload"]


class _Model(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


def dns_label(value: str) -> str:
    """Lower-case DNS-1123 label characters only (``Q5_K_S`` → ``q5-k-s``): how a label appears in
    Job names and Kubernetes labels."""
    out = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    return out or "x"
