"""``fluxaudit operator``: kopf with our handlers, standalone, JSON logs, a liveness endpoint."""

from __future__ import annotations

import logging

import kopf

from .config import OperatorConfig


def run(namespaces: tuple[str, ...], liveness: str | None, log_format: str, verbose: bool) -> None:
    config = OperatorConfig.from_env()  # fail at start, with the variable's name, not at the first audit
    from . import handlers  # noqa: F401  (registers the handlers)

    logging.getLogger().handlers.clear()  # the CLI's console handler: kopf's JSON handler replaces it
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat[log_format.upper()])
    watched = namespaces or config.namespaces
    kopf.run(
        standalone=True,  # one replica (Recreate strategy): no peering objects to install or clean up
        clusterwide=not watched,
        namespaces=watched,
        liveness_endpoint=liveness,
    )
