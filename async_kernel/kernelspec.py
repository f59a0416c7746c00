"""Install, remove and list async-kernel kernelspecs.

A kernelspec is a directory `KERNELS_DIR/NAME/` holding a `kernel.json` that tells Jupyter how to
start a kernel. async-kernel ships two: `async` (asyncio) and `async-trio` (trio). Each names the
`async-kernel-provisioner` in `metadata.kernel_provisioner`, with the backend in its `config`, and
asks for message-mode interrupts (see the CLI page of the docs for every field).

The work is done by `jupyter_client.kernelspec.KernelSpecManager`, so the kernelspecs land where
`jupyter kernelspec list` finds them. [install][async_kernel.kernelspec.install] validates
everything first and writes `kernel.json` into a temporary directory, which is then copied into
place in one step: bad input leaves nothing behind, and a copy that fails half-way is removed.

Nothing here is thread-safe against concurrent installs of the same name (neither is Jupyter's
own `jupyter kernelspec install`); every function is synchronous and blocks on file I/O.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Final

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.paths import SYSTEM_JUPYTER_PATH

from async_kernel.wire import PROVISIONER_NAME, Backend, validate_backend

__all__ = [
    "DEFAULT_DISPLAY_NAMES",
    "DEFAULT_NAMES",
    "KernelSpecInfo",
    "KernelSpecNotFoundError",
    "NotAsyncKernelSpecError",
    "default_name",
    "install",
    "list_specs",
    "make_kernel_spec",
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
    manager = KernelSpecManager()
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
    manager = KernelSpecManager()
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
    specs = KernelSpecManager().get_all_specs()
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


def _kernels_dir(manager: KernelSpecManager, *, user: bool, prefix: str | None) -> str:
    # Where KernelSpecManager.install_kernel_spec puts kernelspecs (the same rule).
    if user:
        return str(manager.user_kernel_dir)
    if prefix:
        return os.path.join(os.path.abspath(prefix), "share", "jupyter", "kernels")
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


def _is_async_spec(spec: dict[str, Any]) -> bool:
    return _provisioner(spec).get("provisioner_name") == PROVISIONER_NAME


def _spec_backend(spec: dict[str, Any]) -> str:
    config = _provisioner(spec).get("config")
    backend = config.get("backend") if isinstance(config, dict) else None
    # The provisioner's own default when the spec names none.
    return str(backend) if backend is not None else "asyncio"
