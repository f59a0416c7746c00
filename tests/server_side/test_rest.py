"""The REST endpoints against real kernels: what they report, and how they fail."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest

BACKENDS = [("async", "asyncio"), ("async-trio", "trio")]


@pytest.mark.parametrize(("kernel_name", "backend"), BACKENDS)
async def test_list_row_reports_backend_pid_callers_and_pending(
    kernels: Any, api: Any, kernel_name: str, backend: str
) -> None:
    kernel_id = await kernels.start(kernel_name)

    row = (await api.rows())[kernel_id]

    assert row["kernel_name"] == kernel_name
    assert row["async_kernel"] is True
    assert row["backend"] == backend
    assert row["pid"] == kernels.pid(kernel_id)
    assert row["callers"] >= 2  # MainThread and ControlThread at least
    assert isinstance(row["pending"], int)
    assert row["pending"] >= 0
    assert isinstance(row["execution_state"], str)
    assert "error" not in row


@pytest.mark.parametrize(("kernel_name", "backend"), BACKENDS)
async def test_snapshot_is_the_caller_state_reply_plus_kernel_fields(
    kernels: Any, api: Any, kernel_name: str, backend: str
) -> None:
    kernel_id = await kernels.start(kernel_name)

    status, state = await api.snapshot(kernel_id)

    assert status == 200, state
    assert state["status"] == "ok"
    assert state["version"] == 1
    assert state["backend"] == backend
    assert state["pid"] == kernels.pid(kernel_id)
    assert state["kernel_id"] == kernel_id
    assert state["kernel_name"] == kernel_name
    assert isinstance(state["execution_state"], str)
    fetched_at = datetime.datetime.fromisoformat(state["fetched_at"])
    assert fetched_at.utcoffset() == datetime.timedelta(0)
    names = {caller["name"] for caller in state["callers"]}
    assert {"MainThread", "ControlThread"} <= names
    assert [q["msg_type"] for q in state["shell"]["queues"]][:1] == ["execute_request"]


async def test_snapshot_shows_a_user_caller_and_its_queue(kernels: Any, api: Any) -> None:
    kernel_id = await kernels.start("async")
    client = await kernels.client(kernel_id)
    code = """
import threading
from async_kernel import Caller

started, release = threading.Event(), threading.Event()

def slow(i):
    started.set()
    release.wait(60)

w = Caller.get(name="worker", backend="asyncio")
for i in range(5):
    w.queue_call(slow, i)
assert started.wait(30)
"""
    reply = await kernels.run_cell(client, code)
    assert reply["status"] == "ok", reply
    try:
        status, state = await api.snapshot(kernel_id)
        row = (await api.rows())[kernel_id]
    finally:
        await kernels.run_cell(client, "release.set()")

    assert status == 200, state
    worker = next(c for c in state["callers"] if c["name"] == "worker")
    assert worker["backend"] == "asyncio"
    assert len(worker["queues"]) == 1
    queue = worker["queues"][0]
    assert queue["running"] is True
    assert queue["pending"] == 4
    assert "slow" in queue["function"]
    assert row["pending"] >= 4


async def test_snapshot_answers_while_a_cell_blocks_the_shell_thread(
    kernels: Any, api: Any, tmp_path: Any
) -> None:
    kernel_id = await kernels.start("async")
    client = await kernels.client(kernel_id)
    flag = tmp_path / "release"
    # The cell blocks the shell thread until the test releases it.
    msg_id = client.execute(
        f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.005)"
    )
    await kernels.wait_for_iopub(client, msg_id, "execute_input")
    try:
        status, state = await api.snapshot(kernel_id)
    finally:
        flag.touch()

    assert status == 200, state
    execute_queue = state["shell"]["queues"][0]
    assert execute_queue["msg_type"] == "execute_request"
    assert execute_queue["running"] is True
    reply = await kernels.wait_for_reply(client, msg_id)  # the cell ran until released
    assert reply["content"]["status"] == "ok"


async def test_snapshot_after_restart_has_the_new_process_and_same_backend(
    kernels: Any, api: Any
) -> None:
    kernel_id = await kernels.start("async-trio")
    old_pid = kernels.pid(kernel_id)
    assert (await api.snapshot(kernel_id))[0] == 200  # the connection is cached from here

    status, _ = await api("api", "kernels", kernel_id, "restart", method="POST", body="{}")
    assert status == 200
    await kernels.client(kernel_id)  # ready again
    status, state = await api.snapshot(kernel_id)

    assert status == 200, state
    assert state["backend"] == "trio"
    assert state["pid"] == kernels.pid(kernel_id) != old_pid


async def test_killed_kernel_gives_503_without_waiting_for_the_timeout(
    kernels: Any, api: Any, snapshot_timeout: float
) -> None:
    kernel_id = await kernels.start("async")
    await kernels.kill(kernel_id)

    started = time.monotonic()
    status, body = await api.snapshot(kernel_id)
    elapsed = time.monotonic() - started

    assert status == 503, body
    assert body["reason"] == "KernelNotAlive"
    assert "not alive" in body["message"]
    assert elapsed < snapshot_timeout / 2
    row = (await api.rows())[kernel_id]
    assert row["async_kernel"] is True
    assert row["error"].startswith("KernelNotAlive")


async def test_unknown_kernel_id_gives_404_json(api: Any) -> None:
    status, body = await api.snapshot("00000000-0000-0000-0000-000000000000")

    assert status == 404
    assert body["reason"] == "UnknownKernel"
    assert "00000000-0000-0000-0000-000000000000" in body["message"]


async def test_ipykernel_gives_409_at_once_and_is_listed_as_not_async(
    kernels: Any, api: Any, snapshot_timeout: float
) -> None:
    kernel_id = await kernels.start("python3")

    started = time.monotonic()
    status, body = await api.snapshot(kernel_id)
    elapsed = time.monotonic() - started

    assert status == 409, body
    assert body["reason"] == "NotAnAsyncKernel"
    assert elapsed < snapshot_timeout / 2
    row = (await api.rows())[kernel_id]
    assert row == {
        "kernel_id": kernel_id,
        "kernel_name": "python3",
        "execution_state": row["execution_state"],
        "last_activity": row["last_activity"],
        "async_kernel": False,
        "working": False,
    }


async def test_async_kernel_without_the_provisioner_is_recognised_by_kernel_info(
    kernels: Any, api: Any
) -> None:
    kernel_id = await kernels.start("async-plain")
    manager = kernels.manager.get_kernel(kernel_id)
    assert type(manager.provisioner).__name__ == "LocalProvisioner"

    status, state = await api.snapshot(kernel_id)

    assert status == 200, state
    assert state["backend"] == "asyncio"
    assert (await api.rows())[kernel_id]["async_kernel"] is True


async def test_list_rows_cover_every_running_kernel(kernels: Any, api: Any) -> None:
    async_id = await kernels.start("async")
    ipy_id = await kernels.start("python3")

    rows = await api.rows()

    assert set(rows) == {async_id, ipy_id}
    assert rows[async_id]["async_kernel"] is True
    assert rows[ipy_id]["async_kernel"] is False


async def test_list_is_empty_without_kernels(api: Any) -> None:
    status, body = await api("api", "async-kernel", "kernels")

    assert status == 200
    assert body == {"kernels": []}


@pytest.fixture
def jp_base_url() -> str:
    return "/user/alice%40example.org/"


async def test_endpoints_live_under_the_base_url(
    http_server_client: Any, jp_auth_header: dict[str, str], api: Any
) -> None:
    with_prefix = await http_server_client.fetch(
        "/user/alice%40example.org/api/async-kernel/kernels", headers=jp_auth_header
    )
    without_prefix = await http_server_client.fetch(
        "/api/async-kernel/kernels", headers=jp_auth_header, raise_error=False
    )

    assert with_prefix.code == 200
    assert json.loads(with_prefix.body) == {"kernels": []}
    assert without_prefix.code == 404


async def test_snapshot_messages_are_not_tracked_as_user_activity(jp_serverapp: Any) -> None:
    manager = jp_serverapp.kernel_manager

    assert not manager.track_message_type("caller_state_request")
    assert not manager.track_message_type("caller_state_reply")


async def test_snapshots_do_not_refresh_a_kernels_last_activity(kernels: Any, api: Any) -> None:
    kernel_id = await kernels.start("async")
    client = await kernels.client(kernel_id)
    manager = kernels.manager.get_kernel(kernel_id)
    while await client.iopub_channel.msg_ready():  # what the kernel published so far
        await client.get_iopub_msg()
    before = manager.last_activity

    for _ in range(3):
        assert (await api.snapshot(kernel_id))[0] == 200
    seen = 0
    while seen < 3:  # the kernel's status messages for the three requests reached the server
        msg = await client.get_iopub_msg(timeout=10)
        parent_type = msg["parent_header"].get("msg_type")
        if parent_type == "caller_state_request" and msg["content"] == {"execution_state": "idle"}:
            seen += 1

    assert manager.last_activity == before
    assert manager.execution_state == "idle"
