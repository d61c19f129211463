"""Stand-ins for Google Cloud on 127.0.0.1: a GCS emulator, a service-account key,
an IAM signBlob endpoint, and a V4 signed-URL verifier built from Google's spec."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlparse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.oauth2 import service_account

from fluxaudit.storage.gcp_auth import SCOPES

BUCKET = "fluxaudit-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServiceAccountKey:
    private: rsa.RSAPrivateKey
    info: dict[str, str]

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()

    def credentials(self) -> service_account.Credentials:
        """Key credentials with a token already in hand: nothing ever calls oauth2.googleapis.com."""
        # Scoped already, so the storage client uses this object (and its token) as is.
        creds = service_account.Credentials.from_service_account_info(self.info, scopes=SCOPES)
        creds.token = "test-token"
        creds.expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(tzinfo=None)
        return creds


def make_key(
    email: str = "auditor@fluxaudit-test.iam.gserviceaccount.com", token_uri: str = "http://127.0.0.1:9/token"
) -> ServiceAccountKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "fluxaudit-test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": email,
        "client_id": "1",
        "token_uri": token_uri,
    }
    return ServiceAccountKey(private, info)


def honour_generation_preconditions() -> None:
    """gcp-storage-emulator ignores ``ifGenerationMatch`` on uploads and sends no ``X-Goog-Generation``
    with a download; GCS answers 412 when the object's generation differs (0: the object must not
    exist) and names the generation it served.  Wrap its upload and download handlers to do the same,
    so the Firebase backend's one-writer guard is tested against the protocol, not assumed."""
    from http import HTTPStatus

    from gcp_storage_emulator import server
    from gcp_storage_emulator.exceptions import NotFound as EmulatorNotFound
    from gcp_storage_emulator.handlers import objects

    if getattr(objects.insert, "honours_preconditions", False):
        return
    original = objects.insert
    original_download = objects.download

    def download(request, response, storage, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
            response["X-Goog-Generation"] = str(obj.get("generation") or "")
        except EmulatorNotFound:
            pass
        return original_download(request, response, storage, *args, **kwargs)

    def insert(request, response, storage, *args, **kwargs):  # type: ignore[no-untyped-def]
        wanted = request.query.get("ifGenerationMatch")
        if wanted:
            name = (request.query.get("name") or [None])[0]
            if name is None and isinstance(request.data, dict):
                name = (request.data.get("meta") or {}).get("name")
            try:
                current = str(storage.get_file_obj(request.params["bucket_name"], name).get("generation") or "0")
            except EmulatorNotFound:
                current = "0"
            if current != wanted[0]:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "conditionNotMet"}})
                return None
        return original(request, response, storage, *args, **kwargs)

    insert.honours_preconditions = True  # type: ignore[attr-defined]
    objects.insert, objects.download = insert, download  # objects.get calls download by this name
    for _, handlers in server.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is original:
                handlers[method] = insert
            elif handler is original_download:
                handlers[method] = download


class Emulator:
    """gcp-storage-emulator on disk, so it can be stopped and started like an outage."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self._server = None

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, create_bucket: bool = False) -> None:
        from gcp_storage_emulator.server import create_server

        honour_generation_preconditions()

        self._server = create_server(
            "127.0.0.1",
            self.port,
            in_memory=False,
            data_dir=str(self.data_dir),
            default_bucket=BUCKET if create_bucket else None,
        )
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def content_type(self, bucket: str, name: str) -> str | None:
        """The stored object's Content-Type, read through the JSON API as any client would."""
        import urllib.parse

        import requests

        url = f"{self.host}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}"
        return requests.get(url, timeout=10).json().get("contentType")


@contextmanager
def _http_server(handler: type[BaseHTTPRequestHandler], port: int) -> Iterator[int]:
    """Serve ``handler`` on 127.0.0.1 (port 0: any free one) in a thread; yield the bound port."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SignBlobStandIn:
    """The IAM Credentials API's signBlob, signing with a test key; can fail on purpose."""

    key: ServiceAccountKey
    fail_next: list[int] = field(default_factory=list)
    calls: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    @contextmanager
    def serve(self) -> Iterator[str]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.calls.append({"path": self.path, "auth": self.headers.get("Authorization", "")})
                if stand_in.fail_next:
                    self.send_response(stand_in.fail_next.pop(0))
                    self.end_headers()
                    return
                expected = f"/v1/projects/-/serviceAccounts/{stand_in.key.info['client_email']}:signBlob"
                if self.path != expected or self.headers.get("Authorization") != "Bearer wi-token":
                    self.send_response(403)
                    self.end_headers()
                    return
                signature = stand_in.key.private.sign(
                    base64.b64decode(body["payload"]), padding.PKCS1v15(), hashes.SHA256()
                )
                out = json.dumps({"keyId": "k1", "signedBlob": base64.b64encode(signature).decode()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        with _http_server(Handler, 0) as self.port:
            yield f"http://127.0.0.1:{self.port}"


@dataclass
class TokenStandIn:
    """Google's OAuth token endpoint for a service-account key: checks the signed JWT
    assertion against the key and hands out an access token (offline, on 127.0.0.1)."""

    key: ServiceAccountKey
    token: str = "emulated-access-token"
    calls: int = 0
    port: int = 0
    #: answer as Google does for a revoked or deleted key: 400 invalid_grant.
    revoked: bool = False

    @contextmanager
    def serve(self) -> Iterator[str]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                form = dict(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                head, payload, signature = form["assertion"].split(".")
                pad = lambda part: part + "=" * (-len(part) % 4)  # noqa: E731
                try:
                    stand_in.key.public.verify(
                        base64.urlsafe_b64decode(pad(signature)),
                        f"{head}.{payload}".encode(),
                        padding.PKCS1v15(),
                        hashes.SHA256(),
                    )
                    claims = json.loads(base64.urlsafe_b64decode(pad(payload)))
                    ok = claims["iss"] == stand_in.key.info["client_email"]
                except (InvalidSignature, KeyError, ValueError):
                    ok = False
                stand_in.calls += 1
                if stand_in.revoked:
                    ok = False
                    out = json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).encode()
                else:
                    out = json.dumps(
                        {"access_token": stand_in.token, "expires_in": 3600, "token_type": "Bearer"}
                    ).encode()
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out) if ok or stand_in.revoked else 0))
                self.end_headers()
                if ok or stand_in.revoked:
                    self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        with _http_server(Handler, self.port) as self.port:
            yield f"http://127.0.0.1:{self.port}/token"


def verify_v4_url(url: str, public_key: rsa.RSAPublicKey, now: dt.datetime | None = None) -> dict[str, str]:
    """Rebuild the canonical request and string-to-sign of a V4 signed URL (Google's
    documented algorithm) and check its RSA-SHA256 signature; raises on any mismatch."""
    parsed = urlparse(url)
    params = dict(parse_qsl(parsed.query, keep_blank_values=True))
    signature = params.pop("X-Goog-Signature")
    if params["X-Goog-Algorithm"] != "GOOG4-RSA-SHA256":
        raise ValueError("not a GOOG4-RSA-SHA256 URL")
    canonical_query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(params.items()))
    signed_headers = params["X-Goog-SignedHeaders"]
    canonical_headers = f"host:{parsed.netloc}\n"
    canonical_request = "\n".join(
        [
            "GET",
            quote(unquote(parsed.path), safe="/~"),
            canonical_query,
            canonical_headers,
            signed_headers,
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = params["X-Goog-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            params["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    try:
        public_key.verify(bytes.fromhex(signature), string_to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ValueError("signature does not match the URL") from None
    issued = dt.datetime.strptime(params["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    expires = issued + dt.timedelta(seconds=int(params["X-Goog-Expires"]))
    if (now or dt.datetime.now(dt.UTC)) > expires:
        raise ValueError("URL expired")
    return params
