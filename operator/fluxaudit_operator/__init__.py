"""The FluxAudit operator: CRD, FluxAudit → Jobs, observations → status (pure core)."""
