"""Polling snapshots does not keep a kernel at the gateway from being culled.

The gateway culls kernels idle for ``cull_idle_timeout`` seconds that have no connection
(``cull_connected`` is False). Snapshots close their websocket after each burst, and with the
documented ``untracked_message_types`` they are no activity there: a kernel polled all along is
culled like an unpolled one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_harness import GatewayedServer, KernelGateway, Kernels
from loopback import wait_for

CULL_IDLE_TIMEOUT = 4
"""Seconds of inactivity after which this test's gateway culls a kernel."""


@pytest.fixture(scope="module")
def culling_server() -> Iterator[GatewayedServer]:
    """A server in front of a gateway that culls idle kernels (no token)."""
    gateway = KernelGateway(cull_idle_timeout=CULL_IDLE_TIMEOUT)
    gateway.start()
    server = GatewayedServer(gateway)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        gateway.stop()


def test_a_polled_kernel_is_culled_at_the_gateway(
    culling_server: GatewayedServer, kernels: Kernels
) -> None:
    server, gateway = culling_server, culling_server.gateway
    kernel_id, channel = kernels.start(server)
    channel.close()
    statuses: list[int] = []

    def culled() -> bool:
        statuses.append(server.api("GET", f"api/async-kernel/kernels/{kernel_id}").status)
        listed = server.api("GET", "api/async-kernel/kernels")
        assert listed.status == 200, listed.text
        return gateway.kernel_model(kernel_id) is None

    wait_for(culled, 60, "the polled kernel was never culled", interval=0.5)
    # Polled throughout, every half second: far more often than the idle timeout.
    assert statuses.count(200) >= 3, statuses
    assert set(statuses) <= {200, 404, 503, 504}, statuses
    # The server forgets it too, and the list says so.
    wait_for(
        lambda: server.api("GET", f"api/async-kernel/kernels/{kernel_id}").status == 404,
        30,
        "the server still knows the culled kernel",
    )
