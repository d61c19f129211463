"""Resolve a spec's input to the bytes of its image and mask, and its prompt."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PermanentError
from .layout import UnsafePathError
from .limits import LimitError
from .spec import InputSpec
from .storage import NotFound, Storage, UnsupportedURI


class InputError(PermanentError):
    """An input the audit cannot read; the message names the field and the path."""


@dataclass(frozen=True)
class Inputs:
    image: bytes
    mask: bytes
    prompt: str
    image_source: str
    mask_source: str


def _read_uri(uri: str, field: str, storage: Storage) -> bytes:
    try:
        return storage.read_uri(uri)
    except NotFound:
        raise InputError(f"{field}: {uri} does not exist") from None
    except (UnsupportedURI, UnsafePathError, LimitError) as exc:
        raise InputError(f"{field}: {exc}") from None
    except OSError as exc:
        raise InputError(f"{field}: cannot read {uri}: {exc.strerror}") from None


def resolve(spec: InputSpec, storage: Storage, where: str = "input") -> Inputs:
    """``where``: the spec field named in errors (``input``, or ``inputs[2]``)."""
    session = spec.session_paths()
    if session is not None:
        image_path, mask_path = session
        out: list[bytes] = []
        for field, path in (("image", image_path), ("mask", mask_path)):
            try:
                out.append(storage.read_bytes(path))
            except NotFound:
                raise InputError(
                    f"{where}: session {spec.user_id}/{spec.session_id} has no {field} at {path} in {storage.description}"
                ) from None
        return Inputs(out[0], out[1], spec.prompt, image_path, mask_path)
    assert spec.image is not None and spec.mask is not None
    return Inputs(
        _read_uri(spec.image, f"{where}.image", storage),
        _read_uri(spec.mask, f"{where}.mask", storage),
        spec.prompt,
        spec.image,
        spec.mask,
    )
