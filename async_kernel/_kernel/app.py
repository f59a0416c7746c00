"""Running a kernel process: read the connection file, set up logging and signals, serve."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

import anyio

from async_kernel.wire import validate_backend

__all__ = ["run_kernel"]


def run_kernel(
    *,
    connection_file: str,
    backend: str = "asyncio",
    log_level: str = "WARNING",
    introspection_timeout: float = 5.0,
    comms_in_subshells: bool = False,
    debug_just_my_code: bool = True,
) -> int:
    """Run a kernel for `connection_file` until it is shut down; return the exit code.

    Logging goes to the process's original stderr (the launcher's log), never to a cell.
    """
    chosen = validate_backend(backend)
    logging.basicConfig(
        level=log_level,
        stream=sys.__stderr__,
        format="[%(levelname)s %(asctime)s async-kernel %(name)s] %(message)s",
    )
    path = Path(connection_file)
    try:
        connection_info = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        print(f"async-kernel: cannot read connection file {path}: {e}", file=sys.stderr)
        return 1
    # Our handler before the loop starts: asyncio and trio then leave SIGINT to us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from async_kernel._kernel.kernel import Kernel

    try:
        kernel = Kernel(
            connection_info,
            chosen,
            introspection_time_limit=introspection_timeout,
            comms_in_subshells=comms_in_subshells,
            debug_just_my_code=debug_just_my_code,
        )
    except (TypeError, ValueError) as e:  # e.g. an unknown signature_scheme, a key not a string
        print(f"async-kernel: bad connection file {path}: {e}", file=sys.stderr)
        return 1
    anyio.run(kernel.run, backend=chosen)
    sys.stdout.flush()
    return 0
