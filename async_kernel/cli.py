"""The `async-kernel` command line: manage kernelspecs and launch a kernel.

```text
async-kernel install [--user | --sys-prefix | --prefix P] [--name N] [--display-name D] [--backend B]
                     [--remote {kubernetes,docker,docker-swarm} --image-name IMAGE]
async-kernel remove NAME [--user | --sys-prefix | --prefix P] [-f/--force]
async-kernel list [--json]
async-kernel [launch] -f CONNECTION_FILE [--backend B] [--log-level L] [--introspection-timeout S]
                      [--comms-in-subshells] [--no-debug-just-my-code]
```

`python -m async_kernel ...` is the same command. Without a subcommand the arguments are those
of `launch`, which is how a kernelspec's `argv` starts the kernel.

Exit codes: 0 on success, 1 when the command could not be carried out (kernelspec not found,
permission denied, gateway_provisioners missing for `--remote`), 2 for bad command-line input
(unknown flag or backend, missing connection file, `--remote` without `--image-name`); on 2
nothing has been written.

`python -m async_kernel.launch` (module `async_kernel.launch`) is the launcher that remote
kernelspecs' containers run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict

from async_kernel import __version__, kernelspec
from async_kernel.wire import BACKENDS, validate_backend

__all__ = ["main"]

PROG = "async-kernel"
COMMANDS = ("install", "remove", "list", "launch")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `async-kernel` command line.

    Args:
        argv: The arguments after the program name; defaults to `sys.argv[1:]`.

    Returns:
        The process exit code: 0 on success, 1 when the command failed, 2 for bad arguments
        (after argparse has printed the usage and a message on stderr).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help", "--version")):
        # No subcommand: launch a kernel (the kernelspec argv form `-f {connection_file} ...`).
        args.insert(0, "launch")
    parser = _build_parser()
    try:
        namespace = parser.parse_args(args)
    except SystemExit as exit_:
        # argparse exits 2 on bad input and 0 after --help/--version.
        return exit_.code if isinstance(exit_.code, int) else 2
    handler: Callable[[argparse.Namespace], int] = namespace.handler
    return handler(namespace)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "A Jupyter kernel for Python on anyio (asyncio or trio). Manage its kernelspecs, or "
            "launch a kernel: without a subcommand the arguments are those of 'launch'."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    install = commands.add_parser(
        "install",
        help="install a kernelspec",
        description=(
            "Install (or replace) an async-kernel kernelspec that runs this Python "
            f"({sys.executable}). Without a location option it goes to the system-wide "
            "Jupyter data directory."
        ),
    )
    _add_location_arguments(install, "install")
    install.add_argument(
        "--name",
        type=_name_argument,
        help="kernelspec name (default: 'async', or 'async-trio' with --backend trio)",
    )
    install.add_argument(
        "--display-name",
        help="name shown in kernel pickers (default: 'Python 3 (async)' or 'Python 3 (async, trio)')",
    )
    _add_backend_argument(install)
    install.add_argument(
        "--remote",
        choices=kernelspec.REMOTES,
        help="write a kernelspec for gateway_provisioners' provisioner of this kind instead: "
        "the kernel runs in a container of --image-name, which starts "
        "'python -m async_kernel.launch' (needs gateway_provisioners installed here)",
    )
    install.add_argument(
        "--image-name",
        metavar="IMAGE",
        help="with --remote (and required by it): the kernel image the provisioner starts",
    )
    install.set_defaults(handler=_install)

    remove = commands.add_parser(
        "remove",
        help="remove a kernelspec",
        description=(
            "Remove an installed kernelspec. Without a location option the one Jupyter would "
            "use is removed. Kernelspecs not written by async-kernel are kept unless --force."
        ),
    )
    remove.add_argument("name", metavar="NAME", help="kernelspec name")
    _add_location_arguments(remove, "remove")
    remove.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="remove it even if it is not an async-kernel kernelspec",
    )
    remove.set_defaults(handler=_remove)

    list_ = commands.add_parser(
        "list",
        help="list kernelspecs",
        description="List the kernelspecs Jupyter finds; async-kernel's are marked with '*'.",
    )
    list_.add_argument("--json", action="store_true", help="print JSON instead of a table")
    list_.set_defaults(handler=_list)

    launch = commands.add_parser(
        "launch",
        help="launch a kernel (the default when no subcommand is given)",
        description="Launch a kernel that serves the ports in a connection file.",
    )
    launch.add_argument(
        "-f",
        "--connection-file",
        required=True,
        metavar="PATH",
        help="the JSON connection file written by the launching Jupyter client",
    )
    add_kernel_options(launch)
    launch.set_defaults(handler=_launch)
    return parser


def add_kernel_options(
    parser: argparse.ArgumentParser,
    *,
    backend_default: str = "asyncio",
    log_level_default: str = "WARNING",
) -> None:
    """Add the options that configure a kernel process (shared by `launch` and
    `python -m async_kernel.launch`): `--backend`, `--log-level`, `--introspection-timeout`,
    `--comms-in-subshells`, `--no-debug-just-my-code`.

    [kernel_option_argv][async_kernel.cli.kernel_option_argv] turns the parsed values back into
    arguments for `async-kernel launch`.
    """
    _add_backend_argument(parser, default=backend_default)
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=log_level_default,
        metavar="LEVEL",
        help=f"logging level, one of {', '.join(LOG_LEVELS)} (default: {log_level_default})",
    )
    parser.add_argument(
        "--introspection-timeout",
        type=_positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds a completion or inspection may take before it gets an empty answer "
        "(default: 5)",
    )
    parser.add_argument(
        "--comms-in-subshells",
        action="store_true",
        help="run comm messages addressed to a subshell in that subshell's thread, as ipykernel "
        "does (default: every comm message runs on the main shell, so widget callbacks stay on "
        "one event loop)",
    )
    parser.add_argument(
        "--no-debug-just-my-code",
        dest="debug_just_my_code",
        action="store_false",
        help="let the debugger step and stop in library code too when the frontend does not "
        "say (JupyterLab does not; VS Code's justMyCode setting always wins)",
    )


def kernel_option_argv(args: argparse.Namespace) -> list[str]:
    """The arguments of `async-kernel launch` that reproduce the options parsed by
    [add_kernel_options][async_kernel.cli.add_kernel_options] (already validated)."""
    argv = [
        *("--backend", args.backend),
        *("--log-level", args.log_level),
        *("--introspection-timeout", repr(args.introspection_timeout)),
    ]
    if args.comms_in_subshells:
        argv.append("--comms-in-subshells")
    if not args.debug_just_my_code:
        argv.append("--no-debug-just-my-code")
    return argv


def _add_location_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--user", action="store_true", help=f"{verb} in the user's Jupyter data directory"
    )
    where.add_argument(
        "--sys-prefix",
        action="store_true",
        help=f"{verb} in this environment ({sys.prefix})",
    )
    where.add_argument("--prefix", metavar="PREFIX", help=f"{verb} in PREFIX/share/jupyter")


def _add_backend_argument(parser: argparse.ArgumentParser, default: str = "asyncio") -> None:
    parser.add_argument(
        "--backend",
        type=_backend_argument,
        default=default,
        metavar="{" + ",".join(BACKENDS) + "}",
        help=f"the event loop the kernel runs (default: {default})",
    )


def _backend_argument(value: str) -> str:
    try:
        return validate_backend(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {value!r}")
    return seconds


def _name_argument(value: str) -> str:
    try:
        return kernelspec.validate_name(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _prefix(args: argparse.Namespace) -> str | None:
    prefix: str | None = sys.prefix if args.sys_prefix else args.prefix
    return prefix


def _fail(command: str, message: str) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return 1


def _install(args: argparse.Namespace) -> int:
    if args.remote is not None:
        return _install_remote(args)
    if args.image_name is not None:
        return _usage_error("install", "--image-name needs --remote")
    try:
        path = kernelspec.install(
            name=args.name,
            display_name=args.display_name,
            backend=args.backend,
            user=args.user,
            prefix=_prefix(args),
        )
    except PermissionError as e:
        return _fail(
            "install",
            f"{e}. Installing system-wide needs write access there; "
            "use --user or --sys-prefix instead.",
        )
    except (OSError, ValueError) as e:
        return _fail("install", str(e))
    print(f"Installed kernelspec {args.name or kernelspec.default_name(args.backend)} in {path}")
    return 0


def _install_remote(args: argparse.Namespace) -> int:
    if not args.image_name:
        return _usage_error("install", f"--remote {args.remote} needs --image-name IMAGE")
    name = args.name or kernelspec.default_remote_name(args.remote, args.backend)
    try:
        path = kernelspec.install_remote(
            args.remote,
            args.image_name,
            name=name,
            display_name=args.display_name,
            backend=args.backend,
            user=args.user,
            prefix=_prefix(args),
        )
    except ValueError as e:
        return _usage_error("install", str(e))
    except kernelspec.GatewayProvisionersMissingError as e:
        return _fail("install", str(e.args[0]))
    except PermissionError as e:
        return _fail(
            "install",
            f"{e}. Installing system-wide needs write access there; "
            "use --user or --sys-prefix instead.",
        )
    except OSError as e:
        return _fail("install", str(e))
    print(f"Installed {args.remote} kernelspec {name} in {path}")
    return 0


def _usage_error(command: str, message: str) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return 2


def _remove(args: argparse.Namespace) -> int:
    try:
        path = kernelspec.remove(args.name, user=args.user, prefix=_prefix(args), force=args.force)
    except (kernelspec.KernelSpecNotFoundError, kernelspec.NotAsyncKernelSpecError) as e:
        return _fail("remove", str(e.args[0]))
    except (OSError, ValueError) as e:
        return _fail("remove", str(e))
    print(f"Removed kernelspec {args.name.lower()} from {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    specs = kernelspec.list_specs()
    if args.json:
        print(json.dumps([asdict(spec) for spec in specs], indent=2))
        return 0
    if not specs:
        print("No kernelspecs found.")
        return 0
    rows = [("", "NAME", "BACKEND", "PATH")]
    rows += [("*" if s.is_async else "", s.name, s.backend or "-", s.path) for s in specs]
    name_width = max(len(row[1]) for row in rows)
    backend_width = max(len(row[2]) for row in rows)
    for mark, name, backend, path in rows:
        print(f"{mark:1} {name:<{name_width}}  {backend:<{backend_width}}  {path}")
    print("\n* async-kernel kernelspec")
    return 0


def _launch(args: argparse.Namespace) -> int:
    # Imported here: the kernel runtime (zmq, IPython) is only needed to launch.
    from async_kernel._kernel.app import run_kernel

    result = run_kernel(
        connection_file=args.connection_file,
        backend=args.backend,
        log_level=args.log_level,
        introspection_timeout=args.introspection_timeout,
        comms_in_subshells=args.comms_in_subshells,
        debug_just_my_code=args.debug_just_my_code,
    )
    return result if isinstance(result, int) else 0
