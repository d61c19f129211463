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


def _read_uri(uri: str, field: str, storage: Storage) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise AssetError(f"input.{field}: {uri} does not exist") from None
        except OSError as exc:
            raise AssetError(f"input.{field}: cannot read {uri}: {exc.strerror}") from None
    if parsed.scheme == "gs":
        from .layout import UnsafePathError
        from .storage.firebase import FirebaseStorage, object_name

        if not isinstance(storage, FirebaseStorage):
            raise AssetError(
                f"input.{field}: {uri} needs Firebase storage: set spec.storage.bucket and run without --out"
            )
        source = storage if parsed.netloc == storage.bucket_name else storage.with_bucket(parsed.netloc)
        try:
            return source.read_bytes(object_name(parsed.path))
        except NotFound:
            raise AssetError(f"input.{field}: {uri} does not exist") from None
        except UnsafePathError as exc:
            raise AssetError(f"input.{field}: {exc}") from None
    raise AssetError(f"input.{field}: unsupported URI scheme {parsed.scheme!r}: use gs:// or file://")


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
    return Assets(
        _read_uri(spec.image, "image", storage),
        _read_uri(spec.mask, "mask", storage),
        spec.prompt,
        spec.image,
        spec.mask,
    )
