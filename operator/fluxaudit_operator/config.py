"""The operator's installation settings, from its environment (the Helm chart sets them).

Settings that belong to the cluster — which Secrets hold credentials, which service
account runs the pods, whether results go to a shared volume — live here rather than in
the FluxAudit, so an audit's author can neither read nor redirect them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fluxaudit.contract import API_VERSION, KIND
from fluxaudit.spec import SpecError, parse_document

from .defaults import merge_defaults
from .jobs import JobOptions
from .policy import Policy, PolicyError

ENV_PREFIX = "FLUXAUDIT_"


class ConfigError(ValueError):
    """An operator setting that cannot work; the message names the variable."""


def _optional(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = env.get(ENV_PREFIX + name, default)
    return value or None  # an empty value switches the feature off


def _seconds(env: Mapping[str, str], name: str, default: float, low: float) -> float:
    raw = env.get(ENV_PREFIX + name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name}={raw!r}: expected a number of seconds") from None
    if value < low:
        raise ConfigError(f"{ENV_PREFIX}{name}={raw!r}: must be at least {low:g} s")
    return value


@dataclass(frozen=True)
class OperatorConfig:
    jobs: JobOptions = field(default_factory=JobOptions)
    #: namespaces to watch; empty = all (needs the ClusterRole variant of the RBAC).
    namespaces: tuple[str, ...] = ()
    #: the slow timer: reads partials for progress, re-signs report URLs.
    reconcile_seconds: float = 60.0
    #: re-sign the report URL once less than this share of its lifetime is left.
    resign_fraction: float = 0.25
    #: installation defaults under every FluxAudit's spec (runner image, pool, bucket, …).
    spec_defaults: dict[str, Any] = field(default_factory=dict)
    #: what an audit's author may choose instead of those defaults (allow-lists; empty: nothing).
    policy: Policy = field(default_factory=Policy)
    #: kopf peering object shared by the replicas (one serves, the others wait); None: one replica, standalone.
    peering: str | None = None
    #: port of the Prometheus metrics endpoint; None: not served.
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        storage_root = _optional(env, "STORAGE_ROOT", None)
        storage_claim = _optional(env, "STORAGE_CLAIM", None)
        if storage_claim and not storage_root:
            raise ConfigError(
                f"{ENV_PREFIX}STORAGE_CLAIM is set but {ENV_PREFIX}STORAGE_ROOT is not: "
                "set the path where the claim is mounted"
            )
        if storage_root and not storage_root.startswith("/"):
            raise ConfigError(f"{ENV_PREFIX}STORAGE_ROOT={storage_root!r}: must be an absolute path")
        jobs = JobOptions(
            service_account=_optional(env, "RUNNER_SERVICE_ACCOUNT", "fluxaudit-runner") or "fluxaudit-runner",
            hf_token_secret=_optional(env, "HF_TOKEN_SECRET", "fluxaudit-hf-token"),
            firebase_secret=_optional(env, "FIREBASE_SECRET", None),
            storage_root=storage_root,
            storage_claim=storage_claim,
            model_cache_claim=_optional(env, "MODEL_CACHE_CLAIM", None),
        )
        namespaces = tuple(n.strip() for n in env.get(ENV_PREFIX + "NAMESPACES", "").split(",") if n.strip())
        return cls(
            jobs=jobs,
            namespaces=namespaces,
            reconcile_seconds=_seconds(env, "RECONCILE_SECONDS", 60.0, 0.2),
            spec_defaults=_spec_defaults(env.get(ENV_PREFIX + "SPEC_DEFAULTS", "")),
            policy=_policy(env.get(ENV_PREFIX + "POLICY", "")),
            peering=_optional(env, "PEERING", None),
            metrics_port=_port(env, "METRICS_PORT"),
        )


def _port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(ENV_PREFIX + name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{ENV_PREFIX}{name}={raw!r}: must be a port number (1-65535), or unset for none")
    return int(raw)


def _policy(raw: str) -> Policy:
    try:
        return Policy.from_json(raw, f"{ENV_PREFIX}POLICY")
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None


def _spec_defaults(raw: str) -> dict[str, Any]:
    """Parse and check the defaults now: a typo in a Helm value fails the operator's start, naming it."""
    name = f"{ENV_PREFIX}SPEC_DEFAULTS"
    if not raw.strip():
        return {}
    try:
        defaults = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}: not JSON ({exc})") from None
    if not isinstance(defaults, dict):
        raise ConfigError(f'{name}: expected a JSON object of spec fields, e.g. {{"runner": {{"image": ...}}}}')
    probe = merge_defaults({"input": {"userId": "u", "sessionId": "s"}}, defaults)
    try:
        parse_document({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "defaults"}, "spec": probe}, name)
    except SpecError as exc:
        details = "; ".join(f"{path.replace('spec', name, 1)}: {msg}" for path, msg in exc.errors)
        raise ConfigError(details) from None
    return defaults
