"""The launcher's command line and the environment variables it falls back on.

The flags are those of gateway_provisioners' Python launcher (`launch_ipykernel.py`), in both
spellings their kernelspecs use (`--kernel-id` and the older Enterprise Gateway
`--RemoteProcessProxy.kernel-id`), plus the kernel options of `async-kernel launch`. A flag
left out, empty, or still holding its kernelspec placeholder (`{kernel_id}`, from a server that
did not substitute it) falls back on the environment the provisioners' bootstrap sets in a
container (`KERNEL_ID`, `RESPONSE_ADDRESS`, `PUBLIC_KEY`, `PORT_RANGE`, and their `EG_` forms).

Everything is validated here, before anything is started or written.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from async_kernel.cli import add_kernel_options, kernel_option_argv

from .errors import BAD_INPUT, LaunchError

__all__ = ["ENV", "LaunchOptions", "PortRange", "build_parser", "parse_options", "parse_port_range"]

PROG = "python -m async_kernel.launch"

DEFAULT_IP = "0.0.0.0"
"""Where the kernel and the comm port listen by default: every interface, as their launcher."""

ENV: dict[str, tuple[str, ...]] = {
    "kernel_id": ("KERNEL_ID",),
    "response_address": ("RESPONSE_ADDRESS", "EG_RESPONSE_ADDRESS"),
    "public_key": ("PUBLIC_KEY", "EG_PUBLIC_KEY"),
    "port_range": ("PORT_RANGE", "EG_PORT_RANGE"),
    "ip": ("ASYNC_KERNEL_IP",),
    "kernel_class_name": ("KERNEL_CLASS_NAME",),
    "spark_context_initialization_mode": ("KERNEL_SPARK_CONTEXT_INIT_MODE",),
    "transport_encryption": ("TRANSPORT_ENCRYPTION",),
    "backend": ("ASYNC_KERNEL_BACKEND",),
    "log_level": ("ASYNC_KERNEL_LOG_LEVEL",),
}
"""For each option, the environment variables consulted (in order) when the flag gives none."""

_PLACEHOLDER = re.compile(r"^\{[A-Za-z0-9_]+\}$")

logger = logging.getLogger("async_kernel.launch")


@dataclass(frozen=True)
class PortRange:
    """The ports the kernel may listen on, `lower..upper` inclusive; equal bounds (`0..0`)
    mean any free port, as for gateway_provisioners."""

    lower: int
    upper: int

    @property
    def unrestricted(self) -> bool:
        """Any free port will do (the range has size 0)."""
        return self.lower == self.upper

    def __str__(self) -> str:
        return f"{self.lower}..{self.upper}"


@dataclass(frozen=True)
class LaunchOptions:
    """Everything the launch needs, validated.

    Attributes:
        kernel_id: The kernel's id, sent back with the connection info.
        response_host: Where the provisioner waits for the connection info...
        response_port: ...and on which port.
        public_key: The provisioner's RSA public key (base64 DER, or PEM), not yet parsed.
        port_range: The ports the kernel's channels and the comm port may use.
        ip: The address the kernel and the comm port listen on.
        log_level: The launcher's (and the kernel's) logging level.
        kernel_argv: The options for `async-kernel launch` (backend, log level, ...).
    """

    kernel_id: str
    response_host: str
    response_port: int
    public_key: str
    port_range: PortRange
    ip: str
    log_level: str
    kernel_argv: list[str]

    @property
    def response_address(self) -> str:
        """`host:port`, as given."""
        return f"{self.response_host}:{self.response_port}"


def parse_port_range(text: str) -> PortRange:
    """Parse `LOWER..UPPER` (e.g. `40000..40100`; `0..0` for any port).

    Raises:
        ValueError: not of that form, a bound outside 0..65535, the lower above the upper, or a
            range too small for the launcher's six ports.
    """
    lower_text, sep, upper_text = text.strip().partition("..")
    try:
        if not sep:
            raise ValueError
        lower, upper = int(lower_text), int(upper_text)
    except ValueError:
        raise ValueError(
            f"Invalid port range {text!r}: use LOWER..UPPER, e.g. 40000..40100 (0..0 for any port)."
        ) from None
    if not (0 <= lower <= 65535 and 0 <= upper <= 65535):
        raise ValueError(f"Invalid port range {text!r}: ports go from 0 to 65535.")
    if lower > upper:
        raise ValueError(f"Invalid port range {text!r}: the lower port is above the upper one.")
    if lower != upper and (lower == 0 or upper - lower + 1 < 6):
        raise ValueError(
            f"Invalid port range {text!r}: it must hold at least 6 ports (5 kernel channels and "
            "the comm port), from port 1 up."
        )
    return PortRange(lower, upper)


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The launcher's argument parser; kernel option defaults come from `environ`
    (`ASYNC_KERNEL_BACKEND`, `ASYNC_KERNEL_LOG_LEVEL`)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Launch an async kernel for a gateway_provisioners remote provisioner (Kubernetes, "
            "Docker, YARN, SSH): pick its ports, send its connection info (encrypted) to the "
            "response address, serve the comm port, run the kernel. Each remote option falls "
            "back on the environment variable in brackets."
        ),
    )

    def remote(name: str, metavar: str, help: str, *, old_spelling: bool = True) -> None:
        flags = [f"--{name}"] + ([f"--RemoteProcessProxy.{name}"] if old_spelling else [])
        dest = name.replace("-", "_")
        envs = ", ".join(ENV.get(dest, ()))
        parser.add_argument(
            *flags,
            dest=dest,
            nargs="?",
            metavar=metavar,
            help=f"{help} [{envs}]" if envs else help,
        )

    remote("kernel-id", "ID", "the kernel's id, as the provisioner knows it")
    remote("response-address", "HOST:PORT", "where the provisioner waits for the connection info")
    remote("public-key", "KEY", "the provisioner's RSA public key that encrypts it")
    remote(
        "port-range",
        "LOWER..UPPER",
        "ports the kernel may listen on (default 0..0: any free port)",
    )
    parser.add_argument(
        "--ip",
        nargs="?",
        metavar="ADDRESS",
        help=f"address the kernel and the comm port listen on (default {DEFAULT_IP}: every "
        "interface, so the provisioner can reach a kernel in a pod) [ASYNC_KERNEL_IP]",
    )
    # Accepted so their kernelspecs and bootstrap scripts work unchanged; see the docs.
    parser.add_argument(
        "--kernel-class-name",
        dest="kernel_class_name",
        nargs="?",
        metavar="CLASS",
        help="ignored: the kernel is always async-kernel's [KERNEL_CLASS_NAME]",
    )
    remote(
        "spark-context-initialization-mode",
        "MODE",
        "ignored (no Spark context is made); a value other than 'none' is warned about",
    )
    remote("cluster-type", "TYPE", "ignored (no Spark or Dask cluster is set up)")
    parser.add_argument(
        "--transport-encryption",
        dest="transport_encryption",
        nargs="?",
        metavar="POLICY",
        help="CurveZMQ is not supported: 'required' is refused, 'auto' warned about "
        "[TRANSPORT_ENCRYPTION]",
    )
    add_kernel_options(
        parser,
        backend_default=env.get("ASYNC_KERNEL_BACKEND") or "asyncio",
        log_level_default=(env.get("ASYNC_KERNEL_LOG_LEVEL") or "WARNING").upper(),
    )
    return parser


def parse_options(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> LaunchOptions:
    """Parse and validate the launcher's arguments, falling back on `environ` (default
    `os.environ`).

    Raises:
        SystemExit: argparse's own exit (bad flag or kernel option: code 2; `--help`: 0).
        LaunchError: a required value is missing or invalid (exit code `BAD_INPUT`).
    """
    env = os.environ if environ is None else environ
    args = build_parser(env).parse_args(list(argv))

    def value(dest: str) -> str | None:
        given: str | None = getattr(args, dest, None)
        if given is not None and given.strip() and not _PLACEHOLDER.match(given.strip()):
            return given.strip()
        for name in ENV.get(dest, ()):
            from_env = env.get(name, "").strip()
            if from_env and not _PLACEHOLDER.match(from_env):
                return from_env
        return None

    def required(dest: str, flag: str) -> str:
        found = value(dest)
        if found is None:
            names = " or ".join(ENV[dest])
            raise LaunchError(f"Missing {flag} (or {names} in the environment).", BAD_INPUT)
        return found

    kernel_id = required("kernel_id", "--kernel-id")
    host, port = _parse_address(required("response_address", "--response-address"))
    public_key = required("public_key", "--public-key")
    try:
        port_range = parse_port_range(value("port_range") or "0..0")
    except ValueError as e:
        raise LaunchError(str(e), BAD_INPUT) from None
    _check_transport_encryption(value("transport_encryption"))
    _warn_ignored(
        value("kernel_class_name"),
        value("spark_context_initialization_mode"),
        value("cluster_type"),
    )
    return LaunchOptions(
        kernel_id=kernel_id,
        response_host=host,
        response_port=port,
        public_key=public_key,
        port_range=port_range,
        ip=value("ip") or DEFAULT_IP,
        log_level=args.log_level,
        kernel_argv=kernel_option_argv(args),
    )


def _parse_address(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")  # [::1]:8877
    try:
        if not sep or not host:
            raise ValueError
        port = int(port_text)
        if not 0 < port <= 65535:
            raise ValueError
    except ValueError:
        raise LaunchError(
            f"Invalid response address {text!r}: use HOST:PORT, e.g. 10.0.0.5:8877.", BAD_INPUT
        ) from None
    return host, port


def _check_transport_encryption(policy: str | None) -> None:
    normalized = (policy or "").lower()
    if normalized in ("", "disabled"):
        return
    if normalized == "required":
        raise LaunchError(
            "Transport encryption is 'required', but async-kernel does not support CurveZMQ "
            "connections: remove 'curve' from the kernelspec's metadata.supported_encryption.",
            BAD_INPUT,
        )
    logger.warning(
        "Transport encryption %r requested: async-kernel does not support CurveZMQ, so the "
        "kernel's connection is not encrypted.",
        policy,
    )


def _warn_ignored(
    kernel_class: str | None, spark_init_mode: str | None, cluster_type: str | None
) -> None:
    if kernel_class:
        logger.info("Ignoring --kernel-class-name %s: the kernel is async-kernel's.", kernel_class)
    if spark_init_mode and spark_init_mode.lower() != "none":
        logger.warning(
            "Ignoring --spark-context-initialization-mode %s: async-kernel makes no Spark context.",
            spark_init_mode,
        )
    if cluster_type and cluster_type.lower() == "dask":
        logger.warning("Ignoring --cluster-type dask: async-kernel sets up no Dask cluster.")
