"""Activity and culling with a real jupyter_server: user work in threads keeps a kernel, idle
kernels are culled as before, reading state is never activity, and /metrics shows the kernels.

The server culls kernels idle for `CULL_IDLE_TIMEOUT` seconds, checking every second; the
activity monitor passes every `ACTIVITY_INTERVAL` seconds. The background job of a cell waits
for a flag file the test creates (no sleeps decide when work ends); only "the kernel survives
past the cull timeout" needs the test to let that much time go by.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CULL_IDLE_TIMEOUT = 3
ACTIVITY_INTERVAL = 0.5
CULLED_WITHIN = 30.0
"""Seconds a culled kernel may take to disappear (generous for loaded machines)."""

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def busy_is_activity() -> bool:
    return True


@pytest.fixture
def extra_server_config(busy_is_activity: bool) -> dict[str, Any]:
    return {
        "AsyncKernelServer": {
            "activity_interval": ACTIVITY_INTERVAL,
            "busy_is_activity": busy_is_activity,
        },
        "MappingKernelManager": {"cull_idle_timeout": CULL_IDLE_TIMEOUT, "cull_interval": 1},
    }


@pytest.fixture
def monitor(jp_serverapp: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """Start the extensions as the server does once its loop runs (`_post_start`), on the loop
    the tests run on; stop the monitor afterwards."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    extension = jp_serverapp.extension_manager.extension_points["async_kernel_server"].app
    assert extension.monitor.running
    yield extension.monitor
    jp_asyncio_loop.run_until_complete(extension.monitor.stop())


def _job(flag: Path) -> str:
    """A cell that starts a to_thread job waiting for `flag`, and returns at once."""
    return (
        "import os, time\n"
        "from async_kernel import Caller\n"
        "def job():\n"
        f"    while not os.path.exists({str(flag)!r}):\n"
        "        time.sleep(0.05)\n"
        "background = Caller.get().to_thread(job)\n"
    )


async def _culled(kernels: Any, kernel_id: str, within: float = CULLED_WITHIN) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if kernel_id not in kernels.manager.list_kernel_ids():
            return True
        await asyncio.sleep(0.2)
    return False


async def _passes(monitor: Any, count: int) -> None:
    """Wait until the monitor has made `count` more passes."""
    target = monitor.passes + count
    deadline = time.monotonic() + 30
    while monitor.passes < target:
        assert time.monotonic() < deadline, "the activity monitor made no pass"
        await asyncio.sleep(0.05)


async def test_an_idle_async_kernel_is_culled(kernels: Any, monitor: Any) -> None:
    kernel_id = await kernels.start("async")

    assert await _culled(kernels, kernel_id)


async def test_background_work_keeps_the_kernel_until_it_ends(
    kernels: Any, monitor: Any, tmp_path: Path
) -> None:
    kernel_id = await kernels.start("async")
    client = await kernels.client(kernel_id)
    flag = tmp_path / "done"
    reply = await kernels.run_cell(client, _job(flag))
    assert reply["status"] == "ok", reply

    # Idle by every message-based measure, working by its caller state: it survives twice the
    # cull timeout.
    assert not await _culled(kernels, kernel_id, within=2 * CULL_IDLE_TIMEOUT + 2)
    assert kernels.manager.get_kernel(kernel_id).execution_state == "idle"

    flag.touch()
    assert await _culled(kernels, kernel_id)


@pytest.mark.parametrize("busy_is_activity", [False])
async def test_without_busy_is_activity_background_work_is_culled(
    kernels: Any, monitor: Any, tmp_path: Path
) -> None:
    kernel_id = await kernels.start("async")
    client = await kernels.client(kernel_id)
    flag = tmp_path / "done"
    try:
        reply = await kernels.run_cell(client, _job(flag))
        assert reply["status"] == "ok", reply

        assert await _culled(kernels, kernel_id)
    finally:
        flag.touch()


async def test_polling_the_rest_endpoints_is_not_activity(
    kernels: Any, api: Any, monitor: Any
) -> None:
    kernel_id = await kernels.start("async")
    await _passes(monitor, 1)
    status, before = await api("api", "status")
    assert status == 200, before

    for _ in range(5):
        assert (await api.snapshot(kernel_id))[0] == 200
        await api.rows()
    await _passes(monitor, 2)

    status, after = await api("api", "status")
    assert after["last_activity"] == before["last_activity"]


async def test_rows_and_snapshots_say_working_and_last_activity(
    kernels: Any, api: Any, tmp_path: Path
) -> None:
    kernel_id = await kernels.start("async")
    client = await kernels.client(kernel_id)
    flag = tmp_path / "done"
    try:
        await kernels.run_cell(client, _job(flag))
        status, state = await api.snapshot(kernel_id)
        assert status == 200, state
        assert state["working"] is True
        assert state["last_activity"].endswith("Z")
        row = (await api.rows())[kernel_id]
        assert row["working"] is True
        assert row["last_activity"] == state["last_activity"]
    finally:
        flag.touch()


async def test_metrics_show_a_running_async_kernel_and_drop_it_when_it_shuts_down(
    kernels: Any, api: Any, monitor: Any, jp_fetch: Any
) -> None:
    kernel_id = await kernels.start("async-trio")
    await _passes(monitor, 1)

    text = (await jp_fetch("metrics")).body.decode()
    series = f'{{kernel_id="{kernel_id}",kernel_name="async-trio"}}'
    assert f"async_kernel_callers{series} 3.0" in text  # MainThread, ControlThread, ShellChannel
    assert f"async_kernel_working{series} 0.0" in text
    assert f"async_kernel_pending{series} 0.0" in text
    assert f"async_kernel_cell_running_seconds{series} 0.0" in text

    status, _ = await api("api", "kernels", kernel_id, method="DELETE")
    assert status == 204
    await _passes(monitor, 1)

    text = (await jp_fetch("metrics")).body.decode()
    assert kernel_id not in text


def _ws_msg(msg_type: str, content: dict[str, Any], channel: str = "shell") -> dict[str, Any]:
    import uuid

    msg_id = uuid.uuid4().hex
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": "test",
            "session": "ws-test",
            "date": "",
            "version": "5.4",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": channel,
        "buffers": [],
    }


async def test_a_completion_through_the_websocket_leaves_an_awaiting_kernel_busy(
    kernels: Any, api: Any, jp_ws_fetch: Any, tmp_path: Path
) -> None:
    """The kernel's status truth, as jupyter_server tracks it: after the busy/idle of a
    completion answered while a cell awaits, `GET /api/kernels/{id}` still says busy."""
    import json

    kernel_id = await kernels.start("async")
    ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
    flag = tmp_path / "release"
    try:
        cell = _ws_msg(
            "execute_request",
            {
                "code": (
                    "import os, anyio\n"
                    f"while not os.path.exists({str(flag)!r}):\n"
                    "    await anyio.sleep(0.05)\n"
                ),
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )
        await ws.write_message(json.dumps(cell))
        complete = _ws_msg("complete_request", {"code": "impo", "cursor_pos": 4})

        async def statuses_until(predicate: Any) -> None:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                assert remaining > 0, "the expected message never came"
                raw = await asyncio.wait_for(ws.read_message(), remaining)
                assert raw is not None, "the websocket closed"
                if predicate(json.loads(raw)):
                    return

        def is_status(msg: dict[str, Any], state: str, parent: str) -> bool:
            return (
                msg.get("msg_type") == "status"
                and msg["content"].get("execution_state") == state
                and msg["parent_header"].get("msg_id") == parent
            )

        cell_id = cell["header"]["msg_id"]
        await statuses_until(lambda m: m.get("msg_type") == "execute_input")
        await ws.write_message(json.dumps(complete))
        complete_id = complete["header"]["msg_id"]
        await statuses_until(lambda m: is_status(m, "idle", complete_id))
        await statuses_until(lambda m: is_status(m, "busy", cell_id))

        # The server reads iopub on its own connection: give it the moment the websocket had.
        states = []
        for _ in range(10):
            status, model = await api("api", "kernels", kernel_id)
            assert status == 200, model
            states.append(model["execution_state"])
            await asyncio.sleep(0.1)
        assert states[-5:] == ["busy"] * 5, states
    finally:
        flag.touch()
        ws.close()
