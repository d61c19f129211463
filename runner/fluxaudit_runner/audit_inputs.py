"""Every input of the audit, read and prepared once per group: ``spec.input`` is one, ``spec.inputs`` many.

All inputs are read and checked before any model loads, so a missing session or a mask of the wrong
shape in the fifth input fails the group in seconds, naming ``inputs[4]``, not after four inputs' cells.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fluxaudit.inputs import resolve
from fluxaudit.results import InputRecord
from fluxaudit.spec import FluxAuditSpec
from fluxaudit.storage import Storage

from .pipeline_inputs import PreparedInputs, prepare_inputs


@dataclass(frozen=True)
class AuditInput:
    #: the input's folder in the run; None for the one input of ``spec.input`` (the run's root).
    name: str | None
    prepared: PreparedInputs
    #: sha256 over the image's bytes, then the mask's, as read.
    sha256: str

    def record(self) -> InputRecord:
        assert self.name is not None
        p = self.prepared
        return InputRecord(name=self.name, sha256=self.sha256, height=p.height, width=p.width, prompt=p.prompt)


def read_inputs(spec: FluxAuditSpec, storage: Storage) -> list[AuditInput]:
    out = []
    for i, (name, item) in enumerate(spec.input_items()):
        where = "input" if name is None else f"inputs[{i}]"
        assets = resolve(item, storage, where)
        prepared = prepare_inputs(
            assets.image,
            assets.mask,
            spec.max_side,
            (assets.image_source, assets.mask_source),
            item.resize_mask,
            prompt=assets.prompt,
            where=where,
        )
        out.append(AuditInput(name, prepared, hashlib.sha256(assets.image + assets.mask).hexdigest()))
    return out


def inputs_sha256(inputs: list[AuditInput]) -> str:
    """What the partial records as ``inputSha256``: the one input's own hash, or one over every input's name
    and hash (a resumed group must see the same bytes under the same names)."""
    if len(inputs) == 1 and inputs[0].name is None:
        return inputs[0].sha256
    joined = "".join(f"{i.name}\0{i.sha256}\n" for i in inputs)
    return hashlib.sha256(joined.encode()).hexdigest()


def distinct_prompts(spec: FluxAuditSpec) -> list[str]:
    """Each prompt once, in the inputs' order: what the text encoders encode before they are freed."""
    return list(dict.fromkeys(item.prompt for _, item in spec.input_items()))
