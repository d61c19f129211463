"""The production loading path, and input preparation.

hf_hub_download → FluxTransformer2DModel.from_single_file(GGUF, config=<base repo>)
→ FluxFillPipeline.  The pipeline's text encoders load first, encode the prompt
once and are freed before the transformer arrives: FLUX guidance is a distilled
embedding, so the prompt embedding does not depend on it, and dropping T5
(≈9.5 GB) is what lets Q8_0 fit a 24 GB L4 without CPU offload.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from fluxaudit.results import QuantFile
from fluxaudit.spec import UNQUANTIZED, FluxAuditSpec, QuantSpec

FILL_IN_CHANNELS = 384
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class GroupInputError(Exception):
    """Input this group cannot use (bad GGUF, bad image): retrying will not help."""


@dataclass(frozen=True)
class PreparedInputs:
    image: Image.Image
    mask: Image.Image
    width: int
    height: int


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale so the long side is at most ``max_side``, both sides multiples of 16
    (FLUX packs 2×2 latents of an 8× VAE)."""
    scale = min(1.0, max_side / max(width, height))
    return max(16, int(width * scale) // 16 * 16), max(16, int(height * scale) // 16 * 16)


def prepare_inputs(image_bytes: bytes, mask_bytes: bytes, max_side: int) -> PreparedInputs:
    try:
        image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    except Exception as exc:
        raise GroupInputError(f"input.image is not a readable image: {exc}") from None
    try:
        mask = Image.open(io.BytesIO(mask_bytes)).convert("L")
    except Exception as exc:
        raise GroupInputError(f"input.mask is not a readable image: {exc}") from None
    width, height = fit_size(*image.size, max_side)
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    mask = mask.resize((width, height), Image.Resampling.NEAREST)
    if mask.getextrema()[1] < 128:
        raise GroupInputError("input.mask has no white (fill) area after resizing: nothing to inpaint")
    return PreparedInputs(image, mask, width, height)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def download_gguf(spec: FluxAuditSpec, quant: QuantSpec) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=spec.model.gguf_repo, filename=quant.file, revision=spec.model.revision))


def describe_gguf(spec: FluxAuditSpec, quant: QuantSpec, path: Path) -> QuantFile:
    """sha256, size and tensor types of a downloaded file, checked against the spec.
    Hashing 13 GB takes ~13 s, so the runner does it beside the model loading
    (hashlib releases the GIL)."""
    digest = sha256_file(path)
    size = path.stat().st_size
    if quant.sha256 is not None and digest != quant.sha256:
        raise GroupInputError(
            f"quants[{quant.label}].file {quant.file}: sha256 {digest} ({size} bytes) "
            f"differs from the expected {quant.sha256}; re-download it or fix quants[].sha256"
        )
    try:
        from gguf import GGUFReader

        types = Counter(t.tensor_type.name for t in GGUFReader(path).tensors)
    except Exception as exc:
        raise GroupInputError(
            f"quants[{quant.label}].file {quant.file} (sha256 {digest}, {size} bytes) is not a readable GGUF file: {exc}"
        ) from None
    return QuantFile(
        label=quant.label,
        file=quant.file,
        repo=spec.model.gguf_repo,
        revision=spec.model.revision,
        sha256=digest,
        bytes=size,
        tensor_types=dict(sorted(types.items())),
    )


def load_transformer(path: Path, spec: FluxAuditSpec, device: torch.device) -> torch.nn.Module:
    from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig

    dtype = DTYPES[spec.dtype]
    try:
        transformer = FluxTransformer2DModel.from_single_file(
            str(path),
            quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
            config=spec.model.base_repo,
            subfolder="transformer",
            revision=spec.model.base_revision,
            dtype=dtype,
        )
    except (ValueError, RuntimeError, KeyError, OSError) as exc:  # OSError: truncated or unreadable file
        raise GroupInputError(f"cannot load {path.name} as a FLUX transformer: {exc}") from None
    if transformer.config.in_channels != FILL_IN_CHANNELS:
        raise GroupInputError(
            f"{path.name} is not a FLUX.1-Fill transformer: in_channels={transformer.config.in_channels}, "
            f"expected {FILL_IN_CHANNELS}; pick a Fill GGUF file"
        )
    return transformer.to(device)


def load_unquantized_transformer(spec: FluxAuditSpec, device: torch.device) -> tuple[torch.nn.Module, QuantFile]:
    """The base repo's own transformer weights: the reference the GGUF files were cut from."""
    from diffusers import FluxTransformer2DModel
    from huggingface_hub import snapshot_download

    root = Path(
        snapshot_download(spec.model.base_repo, revision=spec.model.base_revision, allow_patterns=["transformer/*"])
    )
    weights = sorted((root / "transformer").glob("*.safetensors"))
    if not weights:
        raise GroupInputError(
            f"model.baseRepo {spec.model.base_repo} has no transformer/*.safetensors for reference: bf16"
        )
    # One pass over each shard (they total ~24 GB): a single file's own digest, else a digest of digests.
    digests = [sha256_file(w) for w in weights]
    digest = digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
    transformer = FluxTransformer2DModel.from_pretrained(root, subfolder="transformer", dtype=DTYPES[spec.dtype])
    if transformer.config.in_channels != FILL_IN_CHANNELS:
        raise GroupInputError(f"model.baseRepo {spec.model.base_repo} is not a FLUX.1-Fill model")
    info = QuantFile(
        label=UNQUANTIZED,
        file="transformer/" + ("*.safetensors" if len(weights) > 1 else weights[0].name),
        repo=spec.model.base_repo,
        revision=spec.model.base_revision,
        sha256=digest,
        bytes=sum(w.stat().st_size for w in weights),
        tensor_types={"safetensors": len(weights)},
    )
    return transformer.to(device), info


def load_pipeline_without_transformer(spec: FluxAuditSpec, device: torch.device):  # -> FluxFillPipeline
    from diffusers import FluxFillPipeline

    pipe = FluxFillPipeline.from_pretrained(
        spec.model.base_repo, revision=spec.model.base_revision, transformer=None, dtype=DTYPES[spec.dtype]
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def encode_prompt(pipe, prompt: str, spec: FluxAuditSpec, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Under inference mode: embeddings with autograd history would keep T5's weights and
    activations alive (measured: 14.9 GB on a full-size model) after the encoders are freed."""
    with torch.inference_mode():
        prompt_embeds, pooled, _ = pipe.encode_prompt(
            prompt=prompt, prompt_2=None, device=device, max_sequence_length=spec.max_sequence_length
        )
    return prompt_embeds, pooled


def free_text_encoders(pipe) -> None:
    pipe.register_modules(text_encoder=None, text_encoder_2=None)
