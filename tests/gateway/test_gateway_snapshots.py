"""Snapshots of kernels that live at a Kernel Gateway (a Jupyter server with ``--gateway-url``).

Everything is real: jupyter-kernel-gateway 3 with the async kernelspecs and a token, a Jupyter
server forwarding to it with this project's extension, async kernels over ZMQ at the gateway.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import time
from typing import Any

import psutil
import pytest
from gateway_harness import GatewayedServer, KernelGateway, Kernels
from jupyter_server.gateway.gateway_client import GatewayClient
from loopback import free_ports, http, wait_for

from async_kernel_provisioner.errors import AsyncKernelError, GatewayError, GatewayRefused
from async_kernel_server.gateway import GatewayAsker
from async_kernel_server.handlers import http_error

WAIT = 30.0
"""Seconds any awaited change may take (generous for loaded machines)."""

CALLER_CELL = (
    "from async_kernel import Caller\nw = Caller.get(name='gw-worker', backend='asyncio')\n"
)


def _detail(server: GatewayedServer, kernel_id: str) -> tuple[int, Any]:
    answer = server.api("GET", f"api/async-kernel/kernels/{kernel_id}")
    return answer.status, answer.json()


def _row(server: GatewayedServer, kernel_id: str) -> dict[str, Any]:
    answer = server.api("GET", "api/async-kernel/kernels")
    assert answer.status == 200, answer.text
    rows = {row["kernel_id"]: row for row in answer.json()["kernels"]}
    return rows[kernel_id]


def _run(channel: Any, code: str) -> None:
    reply = channel.reply(channel.execute(code))
    assert reply["content"]["status"] == "ok", reply["content"]


@pytest.mark.parametrize(("name", "backend"), [("async", "asyncio"), ("async-trio", "trio")])
def test_list_and_detail_answer_for_async_kernels_behind_the_gateway(
    server: GatewayedServer, kernels: Kernels, name: str, backend: str
) -> None:
    kernel_id, channel = kernels.start(server, name)
    _run(channel, CALLER_CELL)

    status, state = _detail(server, kernel_id)
    assert status == 200, state
    assert state["kernel_id"] == kernel_id
    assert state["kernel_name"] == name  # the gateway's model, not jupyter_server's "python3"
    assert state["backend"] == backend
    assert "gw-worker" in [c["name"] for c in state["callers"]]
    assert state["execution_state"] == "idle"

    row = _row(server, kernel_id)
    assert "error" not in row, row
    assert row["async_kernel"] is True
    assert row["kernel_name"] == name
    assert row["backend"] == backend
    assert row["callers"] == len(state["callers"])


def test_snapshots_hold_no_gateway_connection_and_are_no_activity_there(
    server: GatewayedServer, gateway: KernelGateway, kernels: Kernels
) -> None:
    kernel_id, channel = kernels.start(server)
    _run(channel, CALLER_CELL)
    channel.close()
    wait_for(
        lambda: (gateway.kernel_model(kernel_id) or {}).get("connections") == 0,
        WAIT,
        "the gateway still counts the closed websocket",
    )
    before = gateway.kernel_model(kernel_id)
    assert before is not None

    for _ in range(5):
        status, state = _detail(server, kernel_id)
        assert status == 200, state
        assert _row(server, kernel_id)["async_kernel"] is True

    after = wait_for(
        lambda: (m := gateway.kernel_model(kernel_id)) and m["connections"] == 0 and m,
        WAIT,
        "a snapshot left a websocket open at the gateway",
    )
    assert after["last_activity"] == before["last_activity"]
    assert after["execution_state"] == before["execution_state"] == "idle"


def test_a_snapshot_while_a_cell_runs_leaves_the_gateway_busy(
    server: GatewayedServer, gateway: KernelGateway, kernels: Kernels
) -> None:
    kernel_id, channel = kernels.start(server)
    content = {
        "code": "answer = input('go? ')",
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": True,
        "stop_on_error": True,
    }
    msg_id = channel.send("execute_request", content)
    request = channel.receive(lambda m: m["header"]["msg_type"] == "input_request", timeout=WAIT)
    wait_for(
        lambda: (gateway.kernel_model(kernel_id) or {}).get("execution_state") == "busy",
        WAIT,
        "the gateway never saw the cell run",
    )
    try:
        status, state = _detail(server, kernel_id)
        assert status == 200, state
        assert state["execution_state"] == "busy"
        assert state["shell"]["queues"][0]["running"] is True
        model = gateway.kernel_model(kernel_id)
        assert model is not None
        assert model["execution_state"] == "busy"
    finally:
        channel.send("input_reply", {"value": "yes"}, channel="stdin", parent=request["header"])
    assert channel.reply(msg_id)["content"]["status"] == "ok"


def test_a_stopped_remote_kernel_answers_504_while_the_server_stays_idle(
    server: GatewayedServer, kernels: Kernels
) -> None:
    kernel_id, _ = kernels.start(server)
    status, state = _detail(server, kernel_id)
    assert status == 200, state
    pid = int(state["pid"])
    server_process = psutil.Process(server.pid)

    os.kill(pid, signal.SIGSTOP)
    try:
        cpu = server_process.cpu_times()
        started = time.monotonic()
        answer = server.api("GET", f"api/async-kernel/kernels/{kernel_id}")
        waited = time.monotonic() - started
        used = sum(server_process.cpu_times()[:2]) - sum(cpu[:2])
        assert answer.status == 504, answer.text
        assert answer.json()["reason"] == "NoAnswerInTime"
        assert waited < 3.0 + 10.0  # the configured timeout, plus slack for a loaded machine
        # Waiting sleeps in the websocket: a busy-wait would burn about `waited` seconds.
        assert used < 0.5 * waited, f"the server used {used:.2f} s CPU in {waited:.2f} s"

        row = _row(server, kernel_id)
        assert "NoAnswerInTime" in row["error"]
    finally:
        os.kill(pid, signal.SIGCONT)

    # The failure is not kept: once the kernel runs again it answers.
    wait_for(lambda: _detail(server, kernel_id)[0] == 200, WAIT, "no answer after SIGCONT")


def test_errors_behind_the_gateway_are_json(
    server: GatewayedServer, gateway: KernelGateway, kernels: Kernels
) -> None:
    answer = server.api("GET", "api/async-kernel/kernels/no-such-kernel")
    assert answer.status == 404
    assert answer.json()["reason"] == "UnknownKernel"

    # Shut down at the gateway behind the server's back: the server still lists it.
    kernel_id, channel = kernels.start(server)
    channel.close()
    assert gateway.api("DELETE", f"api/kernels/{kernel_id}").status == 204
    answer = server.api("GET", f"api/async-kernel/kernels/{kernel_id}")
    assert answer.status == 404, answer.text
    assert answer.json()["reason"] == "UnknownKernel"
    assert answer.headers["Content-Type"].startswith("application/json")


def _ask(gateway_client: GatewayClient, kernel_id: str) -> BaseException:
    async def ask() -> BaseException:
        asker = GatewayAsker(kernel_id, gateway=gateway_client)
        try:
            await asker.caller_state(timeout=10)
        except AsyncKernelError as exc:
            return exc
        finally:
            asker.close()
        raise AssertionError("the gateway answered")

    # In a thread of its own: an earlier suite of the session may leave a loop running here.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, ask()).result()


def test_a_gateway_that_refuses_the_token_is_502_gateway_refused(
    server: GatewayedServer, gateway: KernelGateway, kernels: Kernels
) -> None:
    kernel_id, _ = kernels.start(server)
    wrong = GatewayClient(url=gateway.url.rstrip("/"), auth_token="not-the-token")
    exc = _ask(wrong, kernel_id)
    assert isinstance(exc, GatewayRefused), exc
    error = http_error(exc)
    assert (error.status_code, error.reason) == (502, "GatewayRefused")

    unreachable = GatewayClient(url=f"http://127.0.0.1:{free_ports(1)[0]}")
    exc = _ask(unreachable, kernel_id)
    assert type(exc) is GatewayError, exc
    assert http_error(exc).status_code == 502


def test_the_servers_own_requests_need_its_token(server: GatewayedServer) -> None:
    url = f"{server.url.rstrip('/')}{server.base_url}api/async-kernel/kernels"
    assert http("GET", url).status == 403
    assert http("GET", url, token="wrong").status == 403
