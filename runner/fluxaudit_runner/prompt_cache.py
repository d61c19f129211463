"""Prompt embeddings stored with the run: encoded once per audit, read by every later group (and Job).

The key names everything an embedding depends on — the prompt, the base repo and revision (its text
encoders), the token budget and the dtype — so an embedding is never read for another model.  A group that
finds every prompt stored loads no text encoder at all (T5-XXL is 9.5 GB to read from disk); one that finds
some missing encodes those and stores them.  A stored file that cannot be read is encoded again, never
trusted half-read.  Jobs that start together each encode (and write the same embeddings); reruns, resumed
groups and the later groups of a local run read them.
"""

from __future__ import annotations

import hashlib
import json
import logging

import torch

from fluxaudit.layout import RunLayout
from fluxaudit.spec import FluxAuditSpec
from fluxaudit.storage import NotFound, Storage

log = logging.getLogger("fluxaudit.runner")

Embedding = tuple[torch.Tensor, torch.Tensor]


def key(spec: FluxAuditSpec, prompt: str) -> str:
    what = [prompt, spec.model.base_repo, spec.model.base_revision, spec.max_sequence_length, spec.dtype]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:24]


def read_stored(storage: Storage, layout: RunLayout, spec: FluxAuditSpec, prompts: list[str]) -> dict[str, Embedding]:
    from safetensors.torch import load

    found: dict[str, Embedding] = {}
    for prompt in prompts:
        path = layout.prompt_embedding(key(spec, prompt))
        try:
            tensors = load(storage.read_bytes(path))
            found[prompt] = (tensors["prompt_embeds"], tensors["pooled_prompt_embeds"])
        except NotFound:
            continue
        except Exception as exc:  # unreadable: encode it again (and overwrite it)
            log.warning("stored prompt embedding %s is unreadable (%s): encoding the prompt again", path, exc)
    return found


def store(storage: Storage, layout: RunLayout, spec: FluxAuditSpec, embeddings: dict[str, Embedding]) -> None:
    from safetensors.torch import save

    for prompt, (embeds, pooled) in embeddings.items():
        data = save({"prompt_embeds": embeds.detach().cpu().contiguous(),
                     "pooled_prompt_embeds": pooled.detach().cpu().contiguous()})  # fmt: skip
        storage.write_bytes(layout.prompt_embedding(key(spec, prompt)), data, "application/octet-stream")
