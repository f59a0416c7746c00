"""Install, remove and list async-kernel kernelspecs.

A kernelspec is a directory `KERNELS_DIR/NAME/` holding a `kernel.json` that tells Jupyter how to
start a kernel. async-kernel ships two: `async` (asyncio) and `async-trio` (trio). Each names the
`async-kernel-provisioner` in `metadata.kernel_provisioner`, with the backend in its `config`, and
asks for message-mode interrupts (see the CLI page of the docs for every field).

The work is done by `jupyter_client.kernelspec.KernelSpecManager`, so the kernelspecs land where
`jupyter kernelspec list` finds them. [install][async_kernel.kernelspec.install] validates
everything first and writes `kernel.json` into a temporary directory, which is then copied into
place in one step: bad input leaves nothing behind, and a copy that fails half-way is removed.

[install_remote][async_kernel.kernelspec.install_remote] writes kernelspecs for
gateway_provisioners' container provisioners (Kubernetes, Docker, Docker Swarm): the kernel runs
in a container from an image that starts `python -m async_kernel.launch`, and the kernelspec
holds the provisioner's own launch script, copied from the installed gateway_provisioners.

Nothing here is thread-safe against concurrent installs of the same name (neither is Jupyter's
own `jupyter kernelspec install`); every function is synchronous and blocks on file I/O.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from async_kernel.wire import PROVISIONER_NAME, Backend, validate_backend

if TYPE_CHECKING:
    from jupyter_client.kernelspec import KernelSpecManager

__all__ = [
    "BACKEND_ENV",
    "DEFAULT_DISPLAY_NAMES",
    "DEFAULT_NAMES",
    "REMOTES",
    "GatewayProvisionersMissingError",
    "KernelSpecInfo",
    "KernelSpecNotFoundError",
    "NotAsyncKernelSpecError",
    "default_name",
    "default_remote_name",
    "install",
    "install_remote",
    "list_specs",
    "make_kernel_spec",
    "make_remote_kernel_spec",
    "remote_launcher_files",
    "remove",
    "validate_name",
]


DEFAULT_NAMES: Final[dict[Backend, str]] = {"asyncio": "async", "trio": "async-trio"}
"""The kernelspec name installed for each backend when no name is given."""

DEFAULT_DISPLAY_NAMES: Final[dict[Backend, str]] = {
    "asyncio": "Python 3 (async)",
    "trio": "Python 3 (async, trio)",
}
"""The display name (shown in launchers and kernel pickers) for each backend's default spec."""


@dataclass(frozen=True)
class _Remote:
    provisioner: str  # gateway_provisioners' entry-point name
    launcher_dir: str  # under gateway_provisioners/kernel-launchers/
    files: tuple[str, ...]  # copied from its scripts/ into the kernelspec's scripts/
    title: str  # for display names


_REMOTES: Final[dict[str, _Remote]] = {
    "kubernetes": _Remote(
        "kubernetes-provisioner",
        "kubernetes",
        ("launch_kubernetes.py", "kernel-pod.yaml.j2"),
        "Kubernetes",
    ),
    "docker": _Remote("docker-provisioner", "docker", ("launch_docker.py",), "Docker"),
    "docker-swarm": _Remote(
        "docker-swarm-provisioner", "docker", ("launch_docker.py",), "Docker Swarm"
    ),
}

REMOTES: Final[tuple[str, ...]] = tuple(_REMOTES)
"""The remote kinds [install_remote][async_kernel.kernelspec.install_remote] writes
kernelspecs for: `kubernetes`, `docker`, `docker-swarm`."""

BACKEND_ENV: Final = "ASYNC_KERNEL_BACKEND"
"""The environment variable that carries a remote kernelspec's backend into the container,
where `python -m async_kernel.launch` reads it."""

# jupyter_client's rule (kernelspec._kernel_name_pat), after lower-casing.
_NAME_PATTERN: Final = re.compile(r"^[a-z0-9._-]+$")


class KernelSpecNotFoundError(LookupError):
    """No kernelspec with the given name exists where [remove][async_kernel.kernelspec.remove] looked.

    Check the name with `async-kernel list`, or widen the search (drop `--user`/`--prefix`).
    """


class NotAsyncKernelSpecError(ValueError):
    """The kernelspec exists but was not written by async-kernel, so it is left alone.

    Pass `force=True` (`async-kernel remove --force`) to remove it anyway.
    """


class GatewayProvisionersMissingError(LookupError):
    """A remote kernelspec needs gateway_provisioners' launch scripts, and gateway_provisioners
    is not installed in this environment (or lacks them).

    Install it where the Jupyter server runs, with the extra of the provisioner:
    `pip install 'gateway_provisioners[k8s]'` (or `[docker]`), then install the kernelspec there.
    """


@dataclass(frozen=True)
class KernelSpecInfo:
    """One installed kernelspec, as reported by [list_specs][async_kernel.kernelspec.list_specs].

    Attributes:
        name: The kernelspec name (what `--kernel NAME` and the notebook metadata use).
        display_name: The name shown to users.
        path: The kernelspec's resource directory.
        is_async: Whether the spec launches async-kernel through its provisioner.
        backend: The anyio backend of an async kernelspec, else None.
    """

    name: str
    display_name: str
    path: str
    is_async: bool
    backend: str | None


def default_name(backend: str) -> str:
    """The default kernelspec name for a backend: `async` for asyncio, `async-trio` for trio.

    Raises:
        ValueError: `backend` is not a supported backend (the message names the valid ones).
    """
    return DEFAULT_NAMES[validate_backend(backend)]


def validate_name(name: str) -> str:
    """Return `name` lower-cased if it is a valid kernelspec name, else raise ValueError.

    Jupyter treats kernelspec names case-insensitively and stores them lower-cased; a valid
    name holds only ASCII letters, digits and the separators `-`, `.` and `_`.

    Raises:
        ValueError: the name is empty or holds other characters.
    """
    lowered = name.lower()
    if not _NAME_PATTERN.match(lowered):
        msg = (
            f"Invalid kernelspec name {name!r}: use only ASCII letters, digits "
            "and the separators '-', '.' and '_'."
        )
        raise ValueError(msg)
    return lowered


def make_kernel_spec(backend: str = "asyncio", display_name: str | None = None) -> dict[str, Any]:
    """Build the `kernel.json` content for an async kernel.

    The kernel runs with the Python that calls this function (`sys.executable`), so install
    kernelspecs from the environment the kernel should run in.

    Args:
        backend: `"asyncio"` or `"trio"`: the event loop the kernel's shell thread runs.
        display_name: The name shown to users; defaults to the backend's default display name.

    Returns:
        A JSON-serialisable dict (`argv`, `display_name`, `language`, `interrupt_mode`,
        `metadata`).

    Raises:
        ValueError: `backend` is not a supported backend.
    """
    valid = validate_backend(backend)
    return {
        "argv": [
            sys.executable,
            "-m",
            "async_kernel",
            "-f",
            "{connection_file}",
            "--backend",
            valid,
        ],
        "display_name": display_name or DEFAULT_DISPLAY_NAMES[valid],
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {
            "debugger": True,
            "kernel_provisioner": {
                "provisioner_name": PROVISIONER_NAME,
                "config": {"backend": valid},
            },
        },
    }


def default_remote_name(remote: str, backend: str = "asyncio") -> str:
    """The default name of a remote kernelspec: `async-kubernetes`, `async-docker-trio`, ...

    Raises:
        ValueError: unknown `remote` or `backend`.
    """
    _remote(remote)
    valid = validate_backend(backend)
    return f"async-{remote}" + ("-trio" if valid == "trio" else "")


def _default_remote_display_name(remote: str, backend: str) -> str:
    title = _remote(remote).title
    return f"Python 3 (async, trio, {title})" if backend == "trio" else f"Python 3 (async, {title})"


def _remote(remote: str) -> _Remote:
    try:
        return _REMOTES[remote]
    except KeyError:
        valid = ", ".join(repr(r) for r in REMOTES)
        raise ValueError(f"Unknown remote {remote!r}: use one of {valid}.") from None


def remote_launcher_files(remote: str) -> list[str]:
    """The paths of gateway_provisioners' launch files a `remote` kernelspec holds (for
    `kubernetes`, `launch_kubernetes.py` and the pod template `kernel-pod.yaml.j2`; for
    `docker` and `docker-swarm`, `launch_docker.py`), found without importing it.

    Raises:
        ValueError: unknown `remote`.
        GatewayProvisionersMissingError: gateway_provisioners is not installed, or lacks them.
    """
    spec = _remote(remote)
    try:
        found = importlib.util.find_spec("gateway_provisioners")
    except (ImportError, ValueError):
        found = None
    locations = list(found.submodule_search_locations or []) if found is not None else []
    if not locations:
        raise GatewayProvisionersMissingError(
            f"A {spec.title} kernelspec needs gateway_provisioners (its provisioner and launch "
            "script), which is not installed here: pip install 'gateway_provisioners"
            f"[{'k8s' if remote == 'kubernetes' else 'docker'}]' where the Jupyter server runs."
        )
    scripts = os.path.join(locations[0], "kernel-launchers", spec.launcher_dir, "scripts")
    paths = [os.path.join(scripts, name) for name in spec.files]
    if missing := [path for path in paths if not os.path.isfile(path)]:
        raise GatewayProvisionersMissingError(
            f"gateway_provisioners in {locations[0]} lacks {', '.join(missing)}: reinstall it."
        )
    return paths


def make_remote_kernel_spec(
    remote: str,
    image_name: str,
    resource_dir: str,
    backend: str = "asyncio",
    display_name: str | None = None,
) -> dict[str, Any]:
    """Build the `kernel.json` content for a kernel run by a gateway_provisioners container
    provisioner.

    `argv` runs the provisioner's launch script from the kernelspec's `scripts/` directory
    (with the Python calling this function), which starts a container of `image_name`; the
    image runs `python -m async_kernel.launch`, which gets the backend from the kernelspec's
    `env` ([BACKEND_ENV][async_kernel.kernelspec.BACKEND_ENV]) and the kernel id, response
    address and public key from the environment the launch script gives the container.

    Args:
        remote: `"kubernetes"`, `"docker"` or `"docker-swarm"`.
        image_name: The kernel image (e.g. `registry.example.com/async-kernel:1.0`).
        resource_dir: The kernelspec's installed directory (the script's location).
        backend: `"asyncio"` or `"trio"`.
        display_name: The name shown to users; defaults to e.g. `Python 3 (async, Kubernetes)`.

    Raises:
        ValueError: unknown `remote` or `backend`, or an empty `image_name`.
    """
    spec = _remote(remote)
    valid = validate_backend(backend)
    image = image_name.strip()
    if not image or any(c.isspace() for c in image):
        raise ValueError(
            f"Invalid image name {image_name!r}: give the kernel image, e.g. "
            "registry.example.com/async-kernel:1.0."
        )
    return {
        "argv": [
            sys.executable,
            os.path.join(resource_dir, "scripts", spec.files[0]),
            *("--kernel-id", "{kernel_id}"),
            *("--port-range", "{port_range}"),
            *("--response-address", "{response_address}"),
            *("--public-key", "{public_key}"),
        ],
        "display_name": display_name or _default_remote_display_name(remote, valid),
        "language": "python",
        "interrupt_mode": "message",
        "env": {BACKEND_ENV: valid},
        "metadata": {
            "debugger": True,
            "kernel_provisioner": {
                "provisioner_name": spec.provisioner,
                "config": {"image_name": image},
            },
            "async_kernel": {"remote": remote, "backend": valid},
        },
    }


def install_remote(
    remote: str,
    image_name: str,
    name: str | None = None,
    display_name: str | None = None,
    backend: str = "asyncio",
    user: bool = False,
    prefix: str | None = None,
) -> str:
    """Install (or replace) a kernelspec for a gateway_provisioners container provisioner.

    The kernelspec directory gets `kernel.json` (see
    [make_remote_kernel_spec][async_kernel.kernelspec.make_remote_kernel_spec]) and, in
    `scripts/`, the provisioner's launch files copied from the installed gateway_provisioners
    (see [remote_launcher_files][async_kernel.kernelspec.remote_launcher_files]). Where it goes
    is as for [install][async_kernel.kernelspec.install]; so is the all-or-nothing write.

    Args:
        remote: `"kubernetes"`, `"docker"` or `"docker-swarm"`.
        image_name: The kernel image the provisioner starts.
        name: The kernelspec name; defaults to e.g. `async-kubernetes` (`-trio` for trio).
        display_name: The name shown to users.
        backend: `"asyncio"` or `"trio"`.
        user: Install for the current user only.
        prefix: Install under this prefix instead.

    Returns:
        The path of the installed kernelspec directory.

    Raises:
        ValueError: unknown remote or backend, invalid name or image, or both `user` and
            `prefix` given; nothing is written.
        GatewayProvisionersMissingError: gateway_provisioners is not installed; nothing is
            written.
        OSError: the destination cannot be written; no partial kernelspec is left behind.
    """
    valid = validate_backend(backend)
    kernel_name = validate_name(name) if name is not None else default_remote_name(remote, valid)
    if user and prefix:
        raise ValueError("Give either user=True or a prefix, not both.")
    sources = remote_launcher_files(remote)
    manager = _spec_manager()
    destination = os.path.join(_kernels_dir(manager, user=user, prefix=prefix), kernel_name)
    spec = make_remote_kernel_spec(remote, image_name, destination, valid, display_name)
    with tempfile.TemporaryDirectory(prefix="async-kernel-spec-") as staging:
        source = os.path.join(staging, kernel_name)
        os.makedirs(os.path.join(source, "scripts"))
        for path in sources:
            shutil.copy(path, os.path.join(source, "scripts", os.path.basename(path)))
        _write_json(os.path.join(source, "kernel.json"), spec)
        try:
            installed = manager.install_kernel_spec(source, kernel_name, user=user, prefix=prefix)
            if os.path.realpath(installed) != os.path.realpath(destination):
                # The script's path in argv must be where the kernelspec really went.
                spec = make_remote_kernel_spec(remote, image_name, installed, valid, display_name)
                _write_json(os.path.join(installed, "kernel.json"), spec)
            return installed
        except BaseException:
            shutil.rmtree(destination, ignore_errors=True)
            raise


def _write_json(path: str, content: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(content, indent=2) + "\n")


def install(
    name: str | None = None,
    display_name: str | None = None,
    backend: str = "asyncio",
    user: bool = False,
    prefix: str | None = None,
) -> str:
    """Install (or replace) an async-kernel kernelspec.

    Where it goes, as with `jupyter kernelspec install`: with `user`, the user's Jupyter data
    directory; with `prefix`, `PREFIX/share/jupyter/kernels/NAME` (pass `sys.prefix` for the
    current environment); otherwise the system-wide Jupyter data directory. An existing
    kernelspec of the same name there is replaced.

    Args:
        name: The kernelspec name; defaults to `async` (asyncio) or `async-trio` (trio).
        display_name: The name shown to users; defaults to the backend's default display name.
        backend: `"asyncio"` or `"trio"`.
        user: Install for the current user only.
        prefix: Install under this prefix instead.

    Returns:
        The path of the installed kernelspec directory.

    Raises:
        ValueError: unknown backend, invalid name, or both `user` and `prefix` given; nothing
            is written.
        OSError: the destination cannot be written (for the system-wide directory, usually a
            permission error: use `user` or `prefix`); no partial kernelspec is left behind.
    """
    valid = validate_backend(backend)
    kernel_name = validate_name(name) if name is not None else DEFAULT_NAMES[valid]
    if user and prefix:
        raise ValueError("Give either user=True or a prefix, not both.")
    content = json.dumps(make_kernel_spec(valid, display_name), indent=2) + "\n"
    manager = _spec_manager()
    destination = os.path.join(_kernels_dir(manager, user=user, prefix=prefix), kernel_name)
    with tempfile.TemporaryDirectory(prefix="async-kernel-spec-") as staging:
        source = os.path.join(staging, kernel_name)
        os.mkdir(source)
        with open(os.path.join(source, "kernel.json"), "w", encoding="utf-8") as f:
            f.write(content)
        try:
            return manager.install_kernel_spec(source, kernel_name, user=user, prefix=prefix)
        except BaseException:
            # A copy that failed half-way must not leave a broken kernelspec behind.
            shutil.rmtree(destination, ignore_errors=True)
            raise


def remove(
    name: str,
    user: bool = False,
    prefix: str | None = None,
    force: bool = False,
) -> str:
    """Remove an installed kernelspec by name.

    With `user` or `prefix` only that location is searched; otherwise every directory Jupyter
    searches, and the kernelspec Jupyter would use (the first found) is removed.

    Args:
        name: The kernelspec name (case-insensitive).
        user: Look only in the user's Jupyter data directory.
        prefix: Look only in `PREFIX/share/jupyter/kernels`.
        force: Remove it even if it is not an async-kernel kernelspec.

    Returns:
        The path of the removed kernelspec directory.

    Raises:
        ValueError: both `user` and `prefix` given.
        KernelSpecNotFoundError: no kernelspec of that name where we looked.
        NotAsyncKernelSpecError: the kernelspec does not launch async-kernel and `force` is
            false; nothing is removed.
        OSError: the directory cannot be removed.
    """
    if user and prefix:
        raise ValueError("Give either user=True or a prefix, not both.")
    manager = _spec_manager()
    if user or prefix:
        manager.kernel_dirs = [_kernels_dir(manager, user=user, prefix=prefix)]
    manager.ensure_native_kernel = False
    lowered = name.lower()
    found = manager.find_kernel_specs()
    if lowered not in found:
        where = ", ".join(manager.kernel_dirs)
        msg = f"No kernelspec named {name!r} in {where}."
        raise KernelSpecNotFoundError(msg)
    path = found[lowered]
    if not force and not _is_async_spec(_read_spec(path)):
        msg = (
            f"Kernelspec {lowered!r} in {path} is not an async-kernel kernelspec; "
            "use force to remove it anyway."
        )
        raise NotAsyncKernelSpecError(msg)
    return manager.remove_kernel_spec(lowered)


def list_specs() -> list[KernelSpecInfo]:
    """Every kernelspec Jupyter can find, async-kernel's and others, sorted by name.

    Kernelspecs whose `kernel.json` cannot be read are skipped (jupyter_client logs them).
    """
    specs = _spec_manager().get_all_specs()
    rows = []
    for name, entry in specs.items():
        spec = entry.get("spec", {})
        is_async = _is_async_spec(spec)
        rows.append(
            KernelSpecInfo(
                name=name,
                display_name=str(spec.get("display_name", "")),
                path=str(entry.get("resource_dir", "")),
                is_async=is_async,
                backend=_spec_backend(spec) if is_async else None,
            )
        )
    return sorted(rows, key=lambda row: row.name)


def _spec_manager() -> KernelSpecManager:
    # Imported here: the kernel process imports this module (for its command line) and never
    # needs jupyter_client, whose package import costs megabytes and tens of milliseconds.
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager()


def _kernels_dir(manager: KernelSpecManager, *, user: bool, prefix: str | None) -> str:
    # Where KernelSpecManager.install_kernel_spec puts kernelspecs (the same rule).
    if user:
        return str(manager.user_kernel_dir)
    if prefix:
        return os.path.join(os.path.abspath(prefix), "share", "jupyter", "kernels")
    from jupyter_core.paths import SYSTEM_JUPYTER_PATH

    return os.path.join(SYSTEM_JUPYTER_PATH[0], "kernels")


def _read_spec(path: str) -> dict[str, Any]:
    try:
        with open(os.path.join(path, "kernel.json"), encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return {}
    return spec if isinstance(spec, dict) else {}


def _provisioner(spec: dict[str, Any]) -> dict[str, Any]:
    metadata = spec.get("metadata")
    provisioner = metadata.get("kernel_provisioner") if isinstance(metadata, dict) else None
    return provisioner if isinstance(provisioner, dict) else {}


def _remote_marker(spec: dict[str, Any]) -> dict[str, Any]:
    # A remote kernelspec names gateway_provisioners' provisioner; this marks it as ours.
    metadata = spec.get("metadata")
    marker = metadata.get("async_kernel") if isinstance(metadata, dict) else None
    return marker if isinstance(marker, dict) and "remote" in marker else {}


def _is_async_spec(spec: dict[str, Any]) -> bool:
    return _provisioner(spec).get("provisioner_name") == PROVISIONER_NAME or bool(
        _remote_marker(spec)
    )


def _spec_backend(spec: dict[str, Any]) -> str:
    config = _remote_marker(spec) or _provisioner(spec).get("config")
    backend = config.get("backend") if isinstance(config, dict) else None
    # The provisioner's own default when the spec names none.
    return str(backend) if backend is not None else "asyncio"
