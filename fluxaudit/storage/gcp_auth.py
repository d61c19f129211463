"""Google credentials for Firebase Storage, and URL signing with or without a key.

Where credentials come from, first match wins:
  1. ``FIREBASE_CREDENTIALS``: base64 of a service-account JSON (the original
     service's Secret Manager convention);
  2. ``GOOGLE_APPLICATION_CREDENTIALS``: a key file (or any ADC file);
  3. Application Default Credentials: on GKE with Workload Identity, the metadata
     server.

V4 signed URLs need an RSA signature.  A service-account key signs locally; the
metadata server's credentials cannot, so ``IamSigner`` asks the IAM Credentials
API (``signBlob``) to sign with the service account's Google-managed key — which
needs ``roles/iam.serviceAccountTokenCreator`` on that account.  Nothing here
logs or returns token or key material.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

import google.auth
import google.auth.credentials
import google.auth.transport.requests
import requests
from google.api_core import retry as api_retry
from google.oauth2 import service_account

from ..contract import Env
from .base import CredentialsError

SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
IAM_ENDPOINT = "https://iamcredentials.googleapis.com"


def _from_file(path: str) -> str:
    """A mounted Secret's content as base64: it may hold the key JSON itself or, as the original
    service stored it, its base64."""
    try:
        raw = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(f"{Env.FIREBASE_CREDENTIALS_FILE}={path}: cannot read it ({exc.strerror})") from None
    return base64.b64encode(raw.encode()).decode() if raw.startswith("{") else raw


def load_credentials() -> google.auth.credentials.Credentials:
    path = os.environ.get(Env.FIREBASE_CREDENTIALS_FILE)
    encoded = _from_file(path) if path else os.environ.get(Env.FIREBASE_CREDENTIALS)
    if encoded:
        try:
            info = json.loads(base64.b64decode(encoded, validate=True))
            return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        except (binascii.Error, ValueError, KeyError) as exc:
            raise CredentialsError(
                f"FIREBASE_CREDENTIALS is not base64 of a service-account JSON ({type(exc).__name__}); "
                "create it with: base64 -w0 key.json"
            ) from None
    try:
        credentials, _ = google.auth.default(scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise CredentialsError(
            "no Google credentials: set FIREBASE_CREDENTIALS or GOOGLE_APPLICATION_CREDENTIALS, "
            f"or run with Workload Identity ({exc.__class__.__name__})"
        ) from None
    return credentials


def _transient_http(exc: BaseException) -> bool:
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    return isinstance(exc, IamSignError) and exc.status in {429, 500, 502, 503, 504}


class IamSignError(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


class IamSigner(google.auth.credentials.Signing):
    """Signs bytes through ``projects/-/serviceAccounts/{email}:signBlob``.

    ``endpoint`` is configurable (``FLUXAUDIT_IAM_ENDPOINT``) so tests can stand in
    for the IAM API on 127.0.0.1; production uses the default.
    """

    def __init__(
        self,
        credentials: google.auth.credentials.Credentials,
        email: str,
        endpoint: str | None = None,
        deadline_seconds: float = 60.0,
    ):
        self._credentials = credentials
        self._email = email
        self._endpoint = (endpoint or os.environ.get(Env.IAM_ENDPOINT) or IAM_ENDPOINT).rstrip("/")
        self._retry = api_retry.Retry(
            predicate=_transient_http, initial=0.2, maximum=4.0, multiplier=2.0, timeout=deadline_seconds
        )
        self._session = requests.Session()

    @property
    def signer_email(self) -> str:
        return self._email

    @property
    def signer(self) -> Any:
        return self

    def _token(self) -> str:
        if not self._credentials.valid:
            self._credentials.refresh(google.auth.transport.requests.Request(self._session))
        return str(self._credentials.token)

    def _sign_once(self, message: bytes) -> bytes:
        url = f"{self._endpoint}/v1/projects/-/serviceAccounts/{self._email}:signBlob"
        resp = self._session.post(
            url,
            json={"payload": base64.b64encode(message).decode()},
            headers={"Authorization": f"Bearer {self._token()}"},
            timeout=30,
        )
        if resp.status_code != 200:
            hint = (
                " (grant roles/iam.serviceAccountTokenCreator on the service account to itself)"
                if resp.status_code == 403
                else ""
            )
            raise IamSignError(resp.status_code, f"IAM signBlob for {self._email} answered {resp.status_code}{hint}")
        return base64.b64decode(resp.json()["signedBlob"])

    def sign_bytes(self, message: bytes) -> bytes:
        return self._retry(self._sign_once)(message)

    # google.auth.crypt.Signer interface (key_id is not needed for V4 URLs)
    @property
    def key_id(self) -> str | None:
        return None


def signing_credentials(
    credentials: google.auth.credentials.Credentials, iam_endpoint: str | None = None
) -> google.auth.credentials.Signing:
    """The credentials themselves when they hold a private key; an IAM signer otherwise."""
    if isinstance(credentials, service_account.Credentials):
        return credentials
    email = os.environ.get(Env.SIGNER_EMAIL) or getattr(credentials, "service_account_email", None)
    if not email or email == "default":
        if not credentials.valid:
            credentials.refresh(google.auth.transport.requests.Request())
        email = getattr(credentials, "service_account_email", None)
    if not email or email == "default":
        raise CredentialsError(
            "cannot sign URLs: the credentials hold no key and name no service account; "
            "set FLUXAUDIT_SIGNER_EMAIL to the Workload Identity service account"
        )
    return IamSigner(credentials, email, iam_endpoint)
