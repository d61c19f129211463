"""The production loading path: one group's models, loaded and timed, in one typed object.

hf_hub_download → FluxTransformer2DModel.from_single_file(GGUF, config=<base repo>)
→ FluxFillPipeline.  The pipeline's text encoders load first, encode the prompt
once and are freed before the transformer arrives: FLUX guidance is a distilled
embedding, so the prompt embedding does not depend on it, and dropping T5
(≈9.5 GB) is what lets Q8_0 fit a 24 GB L4 without CPU offload.

``load_group`` runs the whole path and returns a ``LoadedGroup``: built once, complete,
with the seconds of each phase (the sha256 of the GGUF file runs in a worker thread
beside the loading and hands back its own duration).
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fluxaudit.results import FastPath, Placement, QuantFile
from fluxaudit.spec import UNQUANTIZED, FluxAuditSpec, QuantSpec

from . import fastpath, placement
from .errors import DownloadUnavailable, GroupInputError
from .events import phase
from .measure import memory_in_use

FILL_IN_CHANNELS = 384
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


#: digests already computed in this process, by (device, inode, size, mtime_ns): a file read once for its
#: hash (``prefetch``, or an earlier group) is not read again for it.
_DIGESTS: dict[tuple[int, int, int, int], str] = {}


def sha256_file(path: Path) -> str:
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    if path.stat().st_mtime_ns == st.st_mtime_ns:  # not rewritten while it was read
        _DIGESTS[key] = h.hexdigest()
    return h.hexdigest()


def download_gguf(spec: FluxAuditSpec, quant: QuantSpec) -> Path:
    """The GGUF file from the hub (or its cache).  A file, revision or repo that is not there, or a gated
    repo without access, is permanent; a cache miss while the network is down is not."""
    from huggingface_hub import constants, errors, hf_hub_download

    where = f"quants[{quant.label}].file {quant.file} in {spec.model.gguf_repo}@{spec.model.revision}"
    try:
        return Path(hf_hub_download(repo_id=spec.model.gguf_repo, filename=quant.file, revision=spec.model.revision))
    # Most specific first: GatedRepoError is a RepositoryNotFoundError, and in some huggingface_hub
    # versions LocalEntryNotFoundError is an EntryNotFoundError.
    except errors.GatedRepoError:
        raise GroupInputError(
            f"{where}: the repo is gated and HF_TOKEN has no access; accept its terms on the hub"
        ) from None
    except errors.LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise GroupInputError(f"{where}: not in the local hub cache and HF_HUB_OFFLINE is set") from None
        raise DownloadUnavailable(f"{where}: not cached and the hub could not be reached; retry later") from None
    except (errors.EntryNotFoundError, errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as exc:
        raise GroupInputError(
            f"{where}: not found ({type(exc).__name__}); check the repo, revision and file name"
        ) from None


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


def load_transformer(path: Path, spec: FluxAuditSpec) -> torch.nn.Module:
    """The GGUF transformer, in host memory (``placement`` puts it on the device)."""
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
    except (ValueError, RuntimeError, KeyError, OSError, IndexError, TypeError) as exc:  # truncated, junk tensors
        raise GroupInputError(
            f"quants: {path.name} cannot be loaded as a FLUX transformer ({type(exc).__name__}: {exc})"[:1000]
        ) from None
    if transformer.config.in_channels != FILL_IN_CHANNELS:
        raise GroupInputError(
            f"{path.name} is not a FLUX.1-Fill transformer: in_channels={transformer.config.in_channels}, "
            f"expected {FILL_IN_CHANNELS}; pick a Fill GGUF file"
        )
    return transformer


def download_reference(spec: FluxAuditSpec) -> list[Path]:
    """The base repo's transformer shards (the bf16 reference's weights), from the hub or its cache."""
    from huggingface_hub import snapshot_download

    root = Path(
        snapshot_download(spec.model.base_repo, revision=spec.model.base_revision, allow_patterns=["transformer/*"])
    )
    weights = sorted((root / "transformer").glob("*.safetensors"))
    if not weights:
        raise GroupInputError(
            f"model.baseRepo {spec.model.base_repo} has no transformer/*.safetensors for reference: bf16"
        )
    return weights


def load_unquantized_transformer(spec: FluxAuditSpec) -> tuple[torch.nn.Module, QuantFile]:
    """The base repo's own transformer weights (the reference the GGUF files were cut from), in host memory."""
    from diffusers import FluxTransformer2DModel

    weights = download_reference(spec)
    root = weights[0].parent.parent
    # One pass over each shard (they total ~24 GB), beside the loading (hashlib releases the GIL): a
    # single file's own digest, else a digest of digests.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bf16-hash") as pool:
        hashing = pool.submit(lambda: [sha256_file(w) for w in weights])
        transformer = FluxTransformer2DModel.from_pretrained(root, subfolder="transformer", dtype=DTYPES[spec.dtype])
        digests = hashing.result()
    digest = digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
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
    return transformer, info


def load_pipeline_without_transformer(spec: FluxAuditSpec, text_encoders: bool = True):  # -> FluxFillPipeline
    """In host memory; without ``text_encoders`` (every prompt's embeddings are at hand) neither encoder nor
    tokenizer is read."""
    from diffusers import FluxFillPipeline

    skip = {} if text_encoders else {"text_encoder": None, "text_encoder_2": None, "tokenizer": None,
                                     "tokenizer_2": None}  # fmt: skip
    pipe = FluxFillPipeline.from_pretrained(
        spec.model.base_repo, revision=spec.model.base_revision, transformer=None, dtype=DTYPES[spec.dtype], **skip
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


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


#: the transformer config keys the report needs (FLOPs per step come from them).
CONFIG_KEYS = ("num_layers", "num_single_layers", "num_attention_heads", "attention_head_dim", "in_channels",
               "out_channels", "joint_attention_dim")  # fmt: skip


@dataclass(frozen=True)
class LoadSeconds:
    download: float
    #: the sha256 and header read of the GGUF file, beside the loading (not additive); None for bf16.
    hash: float | None
    pipeline: float
    prompt: float
    transformer: float
    memory_after_load_bytes: int


@dataclass
class LoadedGroup:
    """One group's models, placed and ready to run.  Only :meth:`release` changes the models."""

    pipe: Any
    transformer: torch.nn.Module
    #: each input's prompt encoded once (prompt → (embeddings, pooled)); None where every call encodes it
    #: (modelCpuOffload, as a service would).
    embeddings: dict[str, tuple[torch.Tensor, torch.Tensor]] | None
    #: the prompts this group encoded itself (the rest came stored with the run)
    encoded: list[str]
    quant_file: QuantFile
    placement: Placement
    #: what the transformer runs with; the fast-path phase carries it out, the warm-up completes it,
    #: and from then on it is the one record of whether the blocks run compiled.
    fast_path: FastPath
    seconds: LoadSeconds

    @property
    def transformer_config(self) -> dict[str, Any]:
        return {k: self.transformer.config[k] for k in CONFIG_KEYS}

    def release(self) -> None:
        """Drop every reference to the models (the caller collects and measures)."""
        self.pipe = self.transformer = self.embeddings = None  # type: ignore[assignment]


def _timed_describe(spec: FluxAuditSpec, quant: QuantSpec, path: Path) -> tuple[QuantFile, float]:
    start = time.perf_counter()
    described = describe_gguf(spec, quant, path)
    return described, time.perf_counter() - start


def _text_phase(
    pipe: Any, spec: FluxAuditSpec, device: torch.device, prompts: list[str], stored: dict[str, Any]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]] | None:
    """Encode each prompt not ``stored`` once and free the encoders (they do not fit beside Q8_0 on an
    L4), then move the VAE over; with modelCpuOffload keep them: the service encodes in every call."""
    if spec.memory == "modelCpuOffload":
        return None
    embeddings = {p: (e.to(device), pooled.to(device)) for p, (e, pooled) in stored.items()}
    missing = [p for p in prompts if p not in embeddings]
    if missing:
        pipe.text_encoder.to(device)
        pipe.text_encoder_2.to(device)
        embeddings.update({prompt: encode_prompt(pipe, prompt, spec, device) for prompt in missing})
    free_text_encoders(pipe)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    pipe.vae.to(device)
    return embeddings


def load_group(
    spec: FluxAuditSpec,
    quant: QuantSpec | None,
    device: torch.device,
    plan: fastpath.Plan,
    shape: tuple[int, int],
    prompts: list[str],
    stored: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> LoadedGroup:
    """Download → pipeline (host) → prompt (encoders freed) → transformer (host) → placement.

    ``quant`` None loads the base repo's unquantized transformer (the bf16 reference);
    ``shape`` (height, width) is what the activation probe measures at (the largest input's);
    ``prompts``: every input's prompt, encoded before the encoders go unless ``stored`` (the run's own
    embeddings, ``prompt_cache``) has it; with all of them stored no text encoder is read."""
    stored = stored or {}
    need_encoders = spec.memory == "modelCpuOffload" or any(p not in stored for p in prompts)
    group = quant.label if quant is not None else UNQUANTIZED
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gguf-hash") as pool:
        t0 = time.perf_counter()
        path = described = None
        if quant is not None:
            with phase("download", group, file=quant.file):
                path = download_gguf(spec, quant)
            described = pool.submit(_timed_describe, spec, quant, path)
        t1 = time.perf_counter()
        with phase("pipeline_load", group):
            pipe = load_pipeline_without_transformer(spec, text_encoders=need_encoders)
        t2 = time.perf_counter()
        with phase("prompt_encode", group):
            embeddings = _text_phase(pipe, spec, device, prompts, stored)
        t3 = time.perf_counter()
        hash_seconds = None
        with phase("transformer_load", group) as done:
            if path is None or described is None:
                transformer, quant_file = load_unquantized_transformer(spec)
            else:
                try:
                    transformer = load_transformer(path, spec)
                except GroupInputError:
                    described.result()  # a sha256/size mismatch explains a failed load best
                    raise
                quant_file, hash_seconds = described.result()
            done.update(bytes=quant_file.bytes, hash_seconds=hash_seconds)
        with phase("placement", group, requested=spec.memory) as done:
            budget = placement.budget_for(
                pipe, transformer, *shape, spec.max_sequence_length, device, probe=spec.memory == "auto"
            )
            mode, reason = placement.choose(spec.memory, budget)
            placement.place(pipe, transformer, mode, device)
            done.update(mode=mode, activation_bytes=budget.activation, free_bytes=budget.free)
        t4 = time.perf_counter()
    if mode != "resident":
        plan = plan.off(f"fast path off: the transformer is offloaded ({mode}); it runs as stock diffusers")
    seconds = LoadSeconds(
        download=t1 - t0,
        hash=hash_seconds,
        pipeline=t2 - t1,
        prompt=t3 - t2,
        transformer=t4 - t3,
        memory_after_load_bytes=memory_in_use(device),
    )
    where = placement.record(spec.memory, mode, reason, budget)
    encoded = [p for p in prompts if p not in stored] if embeddings is not None else []
    return LoadedGroup(pipe, transformer, embeddings, encoded, quant_file, where, fastpath.record_for(plan), seconds)
