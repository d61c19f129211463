"""The audit's own choices: which files, which input, which thresholds, how the transformer runs."""

from __future__ import annotations

import re
import string
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from .base import (
    DEFAULT_BASE_REPO,
    DEFAULT_GGUF_REPO,
    DEFAULT_IMAGE_TEMPLATE,
    DEFAULT_MASK_TEMPLATE,
    DEFAULT_PROMPT,
    GGUF_FILE_PATTERN,
    REPO_ID_PATTERN,
    REVISION_PATTERN,
    SAFE_SEGMENT,
    URI_PATTERN,
    StrictBool,
    StrictInt,
    StrictNumber,
    _Model,
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
        str,
        Field(pattern=REVISION_PATTERN, max_length=64, description="Revision of ggufRepo (branch, tag or commit)."),
    ] = "main"
    base_revision: Annotated[
        str, Field(pattern=REVISION_PATTERN, max_length=64, description="Revision of baseRepo.")
    ] = "main"

    @field_validator("revision", "base_revision")
    @classmethod
    def _no_parent_dirs(cls, v: str) -> str:
        if ".." in v.split("/"):
            raise ValueError("must not contain '..': a revision names a branch, tag or commit, not a path")
        return v


#: an input's folder name in the run: no dots (they would meet the run's own files), not a folder the run uses.
INPUT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
RESERVED_INPUT_NAMES = frozenset({"partials", "latents", "inputs", "embeddings"})


class InputSpec(_Model):
    """The user's image, mask and prompt: a stored session, or explicit URIs."""

    name: Annotated[
        str | None,
        Field(
            default=None,
            pattern=INPUT_NAME_PATTERN,
            description="In spec.inputs: the input's folder in the run and its name in the report. Default: the "
            "sessionId, or the image file's stem.",
        ),
    ] = None
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
    resize_mask: Annotated[
        StrictBool,
        Field(
            description="Resize a mask of another aspect ratio to the image (refused by default: it would be stretched)."
        ),
    ] = False

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
        try:
            parts = list(string.Formatter().parse(v))
        except ValueError as exc:
            raise ValueError(
                f"not a path template ({exc}); write e.g. users/{{userId}}/sessions/{{sessionId}}/x.png"
            ) from None
        for _, name, spec, conversion in parts:
            if name is None:
                continue
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            if name not in allowed:
                raise ValueError(f"unknown placeholder {shown}; allowed: {{userId}}, {{sessionId}}")
            if spec or conversion:
                raise ValueError(f"placeholder {shown} is not allowed: use plain {{userId}} and {{sessionId}} only")
        if v.startswith("/") or ".." in v.split("/"):
            raise ValueError("must be a relative storage path without '..'")
        return v

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str | None) -> str | None:
        if v is not None and v.lower() in RESERVED_INPUT_NAMES:
            raise ValueError(f"{v!r} is a folder the run uses itself; pick another name")
        return v

    def default_name(self, index: int) -> str:
        """``name``, else the sessionId or the image file's stem made a folder name, else ``input-{index+1}``."""
        if self.name is not None:
            return self.name
        raw = self.session_id or (self.image or "").rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-_")[:63]
        if not cleaned or cleaned.lower() in RESERVED_INPUT_NAMES:
            return f"input-{index + 1}"
        return cleaned

    def session_paths(self) -> tuple[str, str] | None:
        if self.user_id is None or self.session_id is None:
            return None
        values = {"userId": self.user_id, "sessionId": self.session_id}
        return self.image_template.format(**values), self.mask_template.format(**values)


#: things object removal must not paint back, as CLIP reads them.
OBJECT_PROMPTS = ("an object", "a person", "an animal", "a vehicle", "a bag or a box", "a piece of furniture",
                  "a bottle or a cup", "text or a sign")  # fmt: skip


class QualitySpec(_Model):
    """Thresholds behind the report's recommendations (all stated in the report)."""

    min_psnr_db: Annotated[
        StrictNumber,
        Field(
            ge=0,
            le=100,
            description="A quant passes at a cell when its whole-image PSNR vs the reference is at least this.",
        ),
    ] = 30.0
    min_ssim: Annotated[
        StrictNumber, Field(ge=0, le=1, description="...and its whole-image SSIM vs the reference is at least this.")
    ] = 0.90
    min_outside_mask_psnr_db: Annotated[
        StrictNumber,
        Field(
            ge=0,
            le=100,
            description="...and its PSNR outside the mask (pixels users expect unchanged) is at least this.",
        ),
    ] = 30.0
    speed_tie_tolerance: Annotated[
        StrictNumber,
        Field(
            ge=0,
            le=0.5,
            description="Quants whose median s/image differ by less than this fraction count as equally fast; the smaller file wins.",
        ),
    ] = 0.03
    saturation_fraction: Annotated[
        StrictNumber,
        Field(
            ge=0,
            le=1,
            description="Flag a guidance when more than this fraction of in-mask pixels are clipped to 0 or 255.",
        ),
    ] = 0.02
    outside_mask_drop_db: Annotated[
        StrictNumber,
        Field(
            ge=0,
            le=60,
            description="Flag a guidance whose outside-mask PSNR vs the input falls this far below the best guidance's.",
        ),
    ] = 3.0
    clip_model: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=200,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$",
            description="CLIP checkpoint on the hub (loaded like the FLUX weights) that scores hallucinated content: "
            "its probability of objectPrompts over the fill prompt on the fill's crop. null: not measured.",
        ),
    ] = "openai/clip-vit-base-patch32"
    object_prompts: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]],
        Field(
            min_length=1,
            max_length=32,
            description="What a fill should not look like (the hallucination score's alternatives to the prompt).",
        ),
    ] = Field(default_factory=lambda: list(OBJECT_PROMPTS))


class CompileCheckSpec(_Model):
    """The torch.compile viability check, run after the matrix."""

    enabled: Annotated[
        StrictBool, Field(description="Run torch._dynamo.explain on the pipeline and the transformer.")
    ] = True
    quant: Annotated[str | None, Field(default=None, description="Quant label to check; default the first quant.")] = (
        None
    )
    measure_speedup: Annotated[
        StrictBool | None,
        Field(
            description="Time the transformer compiled against eager. Unset: whenever the fast path compiled the "
            "blocks (seconds: both forms are at hand); true: also compile the whole transformer when it did not "
            "(minutes); false: never."
        ),
    ] = None


class TimingSpec(_Model):
    """How speed is sampled and which runtime the speed answer uses."""

    runtime: Annotated[
        Literal["stock", "fastPath"],
        Field(
            description="The runtime the speed answer compares: stock (diffusers as a service runs it, in the "
            "group's memory mode: what a team serves unless it adopts the fast path) or fastPath (FluxAudit's "
            "dequant kernels and regional compile). The report prints the other runtime's answer beside it."
        ),
    ] = "stock"
    stock_images: Annotated[
        StrictInt | None,
        Field(
            ge=1,
            le=20,
            description="Full timed images with stock diffusers when the sweep runs the fast path (offloading "
            "costs are paid per image, not per step). Unset: as many as repeats.",
        ),
    ] = None
    calibration_seconds: Annotated[
        StrictNumber,
        Field(
            ge=0,
            le=30,
            description="Seconds of a fixed bf16 matmul timed before each group, so groups that ran on different "
            "nodes can be compared (0 switches it off).",
        ),
    ] = 1.0


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
