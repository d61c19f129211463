"""Resolve a spec's input to the bytes of its image and mask, and its prompt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from .spec import InputSpec
from .storage import NotFound, Storage


class AssetError(Exception):
    """An input the audit cannot read; the message names the field and the path."""


@dataclass(frozen=True)
class Assets:
    image: bytes
    mask: bytes
    prompt: str
    image_source: str
    mask_source: str


def _read_uri(uri: str, field: str) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise AssetError(f"input.{field}: {uri} does not exist") from None
        except OSError as exc:
            raise AssetError(f"input.{field}: cannot read {uri}: {exc.strerror}") from None
    raise AssetError(
        f"input.{field}: {parsed.scheme}:// URIs need the Firebase Storage backend, which this build lacks; "
        "use a file:// URI or a session (userId + sessionId) in local storage"
    )


def resolve(spec: InputSpec, storage: Storage) -> Assets:
    session = spec.session_paths()
    if session is not None:
        image_path, mask_path = session
        out: list[bytes] = []
        for field, path in (("image", image_path), ("mask", mask_path)):
            try:
                out.append(storage.read_bytes(path))
            except NotFound:
                raise AssetError(
                    f"input: session {spec.user_id}/{spec.session_id} has no {field} at {path} in {storage.description}"
                ) from None
        return Assets(out[0], out[1], spec.prompt, image_path, mask_path)
    assert spec.image is not None and spec.mask is not None
    return Assets(_read_uri(spec.image, "image"), _read_uri(spec.mask, "mask"), spec.prompt, spec.image, spec.mask)
