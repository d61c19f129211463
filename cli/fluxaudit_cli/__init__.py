"""``fluxaudit``, the command line: the one layer allowed to import the runner and the operator.

The contract package (``fluxaudit``) sits below both; this package sits above all
three and only wires them to a terminal: parse arguments, call one function, turn
its typed errors into an exit code (``fluxaudit.contract.ExitCode``).
"""

from .main import main

__all__ = ["main"]
