"""Snapshots of kernels at an Enterprise Gateway (3.3, in a venv of its own) through a server.

Enterprise Gateway 3.3 pins jupyter_server<2, jupyter_client<7 and pyzmq<25, so
``scripts/ensure-enterprise-gateway.sh`` installs it into .venv/enterprise-gateway; the async
kernels it starts run with the project's Python.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from gateway_harness import EnterpriseGateway, GatewayedServer, Kernels


@pytest.fixture(scope="module")
def eg_server() -> Iterator[GatewayedServer]:
    """A Jupyter server in front of an Enterprise Gateway that requires a token."""
    gateway = EnterpriseGateway(token=secrets.token_hex(16))
    gateway.start()
    server = GatewayedServer(gateway, gateway_token=gateway.token)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        gateway.stop()


@pytest.mark.parametrize(("name", "backend"), [("async", "asyncio"), ("async-trio", "trio")])
def test_list_and_detail_answer_behind_enterprise_gateway(
    eg_server: GatewayedServer, kernels: Kernels, name: str, backend: str
) -> None:
    kernel_id, channel = kernels.start(eg_server, name)
    reply = channel.reply(
        channel.execute("from async_kernel import Caller\nCaller.get(name='eg-worker')\n")
    )
    assert reply["content"]["status"] == "ok", reply["content"]

    answer = eg_server.api("GET", f"api/async-kernel/kernels/{kernel_id}")
    assert answer.status == 200, answer.text
    state = answer.json()
    assert state["kernel_name"] == name
    assert state["backend"] == backend
    assert "eg-worker" in [c["name"] for c in state["callers"]]

    listed = eg_server.api("GET", "api/async-kernel/kernels")
    assert listed.status == 200, listed.text
    row = next(r for r in listed.json()["kernels"] if r["kernel_id"] == kernel_id)
    assert "error" not in row, row
    assert (row["async_kernel"], row["kernel_name"], row["backend"]) == (True, name, backend)

    answer = eg_server.api("GET", "api/async-kernel/kernels/no-such-kernel")
    assert (answer.status, answer.json()["reason"]) == (404, "UnknownKernel")
