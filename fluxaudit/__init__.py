"""FluxAudit: reproducible audits of GGUF-quantized FLUX.1-Fill.

This package is the contract the runner and the operator share — spec model,
result schema, storage backends, report builder — and the ``fluxaudit`` CLI.
It never imports torch or diffusers at module level: the operator image stays small.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fluxaudit")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
