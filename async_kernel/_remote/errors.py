"""The one error the launcher reports to its user: a message, and the exit code it ends with."""

from __future__ import annotations

__all__ = ["BAD_INPUT", "FAILED", "LaunchError"]

BAD_INPUT = 2
"""Exit code for bad input (arguments, environment, public key, port range): nothing started."""

FAILED = 1
"""Exit code for a launch that could not be carried out (response address unreachable, no free
port, a missing library)."""


class LaunchError(Exception):
    """The launch cannot go on; `str(error)` says why and what to do, `exit_code` is the code
    the launcher exits with (`BAD_INPUT` or `FAILED`). Printed on stderr, never as a traceback.
    """

    def __init__(self, message: str, exit_code: int = FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
