"""``fluxaudit operator``: kopf with our handlers, JSON logs, a liveness endpoint; one replica standalone,
or several sharing a kopf peering object (``FLUXAUDIT_PEERING``): each picks a random priority at start,
the highest serves, the others wait and take over within the peering lifetime when it stops."""

from __future__ import annotations

import logging
import secrets

import kopf

from .config import OperatorConfig


def run(namespaces: tuple[str, ...], liveness: str | None, log_format: str, verbose: bool) -> None:
    config = OperatorConfig.from_env()  # fail at start, with the variable's name, not at the first audit
    from . import handlers  # noqa: F401  (registers the handlers)

    logging.getLogger().handlers.clear()  # the CLI's console handler: kopf's JSON handler replaces it
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat[log_format.upper()])
    watched = namespaces or config.namespaces
    peering: dict[str, object] = (
        # kopf freezes every operator of equal priority: a random one of 2**31 makes a tie negligible.
        {"standalone": False, "peering_name": config.peering, "priority": 1 + secrets.randbelow(2**31 - 2)}
        if config.peering
        else {"standalone": True}  # one replica (Recreate strategy): no peering objects needed
    )
    kopf.run(clusterwide=not watched, namespaces=watched, liveness_endpoint=liveness, **peering)  # type: ignore[arg-type]
