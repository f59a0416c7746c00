"""`python -m async_kernel.launch`: the kernel launcher for gateway_provisioners' remote
provisioners (Kubernetes, Docker, YARN, SSH).

It speaks the protocol of their Python launcher (`launch_ipykernel.py`): it takes
`--kernel-id`, `--response-address`, `--public-key` and `--port-range` (or the `KERNEL_ID`,
`RESPONSE_ADDRESS`, `PUBLIC_KEY`, `PORT_RANGE` environment variables their images get), sends
the kernel's connection info encrypted to the response address, serves the comm port for the
provisioner's signals and shutdown request, and runs an async kernel with the usual kernel
options (`--backend`, `--log-level`, ...). See the "Remote kernels" page of the docs.

Exit codes: the kernel's once it has run; 2 for bad input (arguments, environment, public key,
port range) and 1 for a launch that failed (unreachable response address, no free port,
pycryptodomex missing), each with one line on stderr and nothing left running.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the launcher; return its exit code (see the module doc).

    Args:
        argv: The arguments after the program name; defaults to `sys.argv[1:]`.
    """
    from async_kernel._remote.errors import FAILED, LaunchError
    from async_kernel._remote.launcher import launch
    from async_kernel._remote.options import PROG, parse_options

    logging.basicConfig(
        level="WARNING",
        stream=sys.stderr,
        format="[%(levelname)s %(asctime)s async-kernel launcher] %(message)s",
    )
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
        logging.getLogger("async_kernel.launch").setLevel(options.log_level)
        return launch(options)
    except SystemExit as exit_:  # argparse: bad input (2) or --help (0)
        return exit_.code if isinstance(exit_.code, int) else 2
    except LaunchError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.exit_code
    except Exception as e:
        logging.getLogger("async_kernel.launch").debug("Launch failed", exc_info=True)
        print(f"{PROG}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return FAILED


if __name__ == "__main__":
    raise SystemExit(main())
