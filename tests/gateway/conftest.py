"""Tests against a real Kernel Gateway on loopback, with a Jupyter server in front of it.

Run with ``python -m pytest tests/gateway`` or with every suite by plain ``pytest`` from the
repository root. jupyter-kernel-gateway comes from the ``test`` extra (PyPI). Synchronous
throughout (urllib, websocket-client), like tests/jupyterhub.

- ``gateway`` (session): a Kernel Gateway with an auth token and the snapshot-hygiene setting.
- ``server`` (session): a Jupyter server forwarding its kernels to ``gateway``, with the token.
- ``kernels`` (per test): start kernels through ``server``; all are shut down afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_harness import GatewayedServer, KernelGateway, Kernels

GATEWAY_TEST_TIMEOUT = 180
"""pytest-timeout seconds per test here (the first one also starts the gateway and server)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give this folder's tests a longer pytest-timeout than the project default."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(GATEWAY_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def gateway() -> Iterator[KernelGateway]:
    """A Kernel Gateway requiring a token, configured as docs/remote-kernels.md says."""
    gw = KernelGateway(token=secrets.token_hex(16))
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def server(gateway: KernelGateway) -> Iterator[GatewayedServer]:
    """A Jupyter server with ``--gateway-url`` and the gateway's token."""
    srv = GatewayedServer(gateway, gateway_token=gateway.token)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def kernels() -> Iterator[Kernels]:
    """Kernels a test starts; shut down afterwards."""
    started = Kernels()
    try:
        yield started
    finally:
        started.close()
