"""The public API of async_kernel, pinned so that contract names cannot drift (like trio's)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import async_kernel
from async_kernel import Caller, Pending

PUBLIC_NAMES = {
    "Caller",
    "CallerStoppedError",
    "InvalidStateError",
    "Pending",
    "PendingCancelled",
    "ThreadsafeEvent",
    "__version__",
}

CALLER_METHODS = [
    "get",
    "stop",
    "call_soon",
    "call_later",
    "call_direct",
    "to_thread",
    "queue_call",
    "queue_close",
    "current_pending",
    "all_callers",
    "as_completed",
    "wait",
    "snapshot",
]

CALLER_PROPERTIES = [
    "stopped",
    "name",
    "thread",
    "backend",
    "running",
    "protected",
    "children",
    "parent",
]

PENDING_MEMBERS = [
    "__await__",
    "wait_sync",
    "result",
    "exception",
    "done",
    "cancel",
    "cancelled",
    "add_done_callback",
    "remove_done_callback",
    "set_result",
    "set_exception",
]


def test_all_is_the_expected_set_of_names() -> None:
    assert set(async_kernel.__all__) == PUBLIC_NAMES
    assert len(async_kernel.__all__) == len(PUBLIC_NAMES)


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES))
def test_every_public_name_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from async_kernel import {name}", namespace)
    assert namespace[name] is getattr(async_kernel, name)


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from async_kernel import *", namespace)
    assert set(namespace) - {"__builtins__"} == PUBLIC_NAMES


def test_no_private_names_are_exported() -> None:
    private = [n for n in async_kernel.__all__ if n.startswith("_") and not n.endswith("__")]
    assert private == []


@pytest.mark.parametrize("member", CALLER_METHODS)
def test_caller_has_contract_method(member: str) -> None:
    assert callable(getattr(Caller, member, None))


@pytest.mark.parametrize("member", CALLER_PROPERTIES)
def test_caller_has_contract_property(member: str) -> None:
    assert isinstance(inspect.getattr_static(Caller, member, None), property)


@pytest.mark.parametrize("member", PENDING_MEMBERS)
def test_pending_has_contract_member(member: str) -> None:
    assert callable(getattr(Pending, member, None))


def test_caller_stopped_error_is_a_runtime_error() -> None:
    assert issubclass(async_kernel.CallerStoppedError, RuntimeError)


def test_importing_async_kernel_does_not_import_ipython_or_zmq() -> None:
    code = (
        "import async_kernel, sys; "
        "assert 'IPython' not in sys.modules and 'zmq' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('IPython', 'zmq')))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
