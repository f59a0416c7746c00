"""The wire contract is one typed module that loads nothing of the kernel, and the test
validator reads it (so a renamed or retyped field fails on both sides of the boundary)."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
from wire_check import conform

from async_kernel import wire
from async_kernel.wire import CallerStateReply, pending_total

DOCUMENTED_REPLY: dict[str, Any] = {
    "status": "ok",
    "version": 1,
    "pid": 4242,
    "backend": "asyncio",
    "started": "2026-11-25T10:00:00.000000Z",
    "execution_count": 7,
    "shell": {
        "queues": [
            {
                "msg_type": "execute_request",
                "subshell_id": None,
                "pending": 2,
                "running": True,
                "running_for": 12.5,
            }
        ]
    },
    "callers": [
        {
            "name": "MainThread",
            "thread_id": 140000000000,
            "backend": "asyncio",
            "running": True,
            "protected": True,
            "parent": None,
            "children": ["ControlThread"],
            "worker": False,
            "idle_workers": 1,
            "scheduled": 0,
            "active": 1,
            "queues": [{"function": "mymodule.handler", "pending": 3, "running": True}],
        }
    ],
}
"""The example of the contract in DESIGN.md and docs/rest.md."""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def _loaded_after(statement: str, prefixes: tuple[str, ...]) -> list[str]:
    code = (
        f"{statement}\nimport sys\n"
        f"print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in {prefixes!r} "
        "or m.startswith('async_kernel.caller') or m.startswith('async_kernel._'))))"
    )
    completed = _run(code)
    assert completed.returncode == 0, completed.stderr
    return [m for m in completed.stdout.split() if m]


def test_the_documented_reply_conforms_to_the_contract() -> None:
    conform(DOCUMENTED_REPLY, CallerStateReply)


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        (("callers", 0, "scheduled"), True, "callers[0].scheduled: expected an integer"),
        (("backend",), "curio", "backend: 'curio' is not one of"),
        (("shell", "queues", 0, "running_for"), "12", "running_for"),
        (("callers", 0, "queues", 0, "function"), None, "queues[0].function"),
    ],
)
def test_a_field_of_the_wrong_type_fails_the_check(
    path: tuple[Any, ...], value: object, complaint: str
) -> None:
    reply = copy.deepcopy(DOCUMENTED_REPLY)
    target: Any = reply
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    with pytest.raises(AssertionError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        conform(reply, CallerStateReply)


def test_a_renamed_field_fails_the_check() -> None:
    reply = copy.deepcopy(DOCUMENTED_REPLY)
    reply["callers"][0]["pendng"] = reply["callers"][0].pop("scheduled")

    with pytest.raises(AssertionError, match="missing scheduled"):
        conform(reply, CallerStateReply)


def test_extra_fields_are_allowed() -> None:
    reply = copy.deepcopy(DOCUMENTED_REPLY)
    reply["working"] = True
    reply["callers"][0]["thread_name"] = "MainThread"

    conform(reply, CallerStateReply)


def test_pending_total_counts_every_kind_of_waiting_work() -> None:
    reply: CallerStateReply = copy.deepcopy(DOCUMENTED_REPLY)  # type: ignore[assignment]
    reply["callers"][0]["scheduled"] = 4

    assert pending_total(reply) == 2 + 4 + 3


def test_time_format_is_iso_utc_with_microseconds() -> None:
    assert wire.format_time(0.25) == "1970-01-01T00:00:00.250000Z"


def test_validate_backend_names_the_valid_backends() -> None:
    assert wire.validate_backend("trio") == "trio"
    with pytest.raises(ValueError, match="'asyncio', 'trio'"):
        wire.validate_backend("curio")


def test_importing_the_contract_loads_only_the_standard_library() -> None:
    loaded = _loaded_after("import async_kernel.wire", ("anyio", "sniffio", "IPython", "zmq"))

    assert loaded == ["async_kernel._version"]


def test_importing_the_server_extension_loads_nothing_of_the_kernel() -> None:
    loaded = _loaded_after("import async_kernel_server", ("IPython", "zmq", "jupyter_client"))

    assert loaded == ["async_kernel._version"]


def test_the_whole_server_side_never_imports_the_caller_or_ipython() -> None:
    statement = (
        "import async_kernel_server, async_kernel_server.app, async_kernel_server.handlers, "
        "async_kernel_server.snapshots, async_kernel_provisioner\n"
        "async_kernel_server._jupyter_server_extension_points()"
    )
    loaded = _loaded_after(statement, ("IPython",))

    assert loaded == ["async_kernel._version"]


def test_the_provisioner_and_the_server_share_one_control_connection_factory() -> None:
    from async_kernel_provisioner import async_provisioner, control
    from async_kernel_server import snapshots

    assert async_provisioner.connect_control is control.connect_control
    assert snapshots.connect_control is control.connect_control
