"""Tests against a real JupyterHub on loopback: hub, configurable-http-proxy, single-user servers
running the ``async_kernel_server`` extension, async kernels. No mocks.

Run with ``python -m pytest tests/jupyterhub`` (``scripts/test.sh`` does, after
``scripts/ensure-chp.sh``), or with every suite by plain ``pytest`` from the repository root.
The proxy comes from ``$CONFIGURABLE_HTTP_PROXY``, else from PATH, else from where
``scripts/ensure-chp.sh`` installs it (``.venv/node``); without it every test here fails,
saying how to install it. Nothing is skipped.

This folder is configured on its own and is synchronous throughout (urllib, websocket-client):
no pytest-jupyter, no anyio or asyncio tests, so whatever event loop an earlier suite of the
session left behind does not matter.

- ``hub`` (session): one hub for the folder, with the users below and their default servers
  started (concurrently) and ready. Stopped, with everything it started, at the end.
- ``kernels`` (per test): start kernels; every kernel a test started is shut down afterwards.

Users:

- ``alice``: a server as jupyterhub-singleuser runs it by default (a token with
  ``access:servers`` for it may do everything there);
- ``bob``: no server; his token is "another user's token";
- ``carol``: a server of its own for the activity tests, so that no other test's traffic
  through the proxy moves its activity;
- ``grace``: a server with the granular authorizer (``hub_granular_authorizer``), where a
  token also needs the custom scope of each jupyter_server permission.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_harness import (
    ALICE,
    BOB,
    CAROL,
    CHP_ENV,
    CHP_MISSING,
    GRACE,
    GRANULAR_USERS,
    SERVER_USERS,
    Hub,
    Kernels,
    find_chp,
)

HUB_TEST_TIMEOUT = 240
"""pytest-timeout seconds per test here (the first one also starts the hub and the servers)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give this folder's tests a longer pytest-timeout than the project default."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(HUB_TEST_TIMEOUT))


def access_token(hub: Hub, name: str) -> str:
    """A token of ``name`` with just ``access:servers!user={name}``."""
    return hub.token(name, [f"access:servers!user={name}"])


@pytest.fixture(scope="session")
def chp() -> str:
    """The configurable-http-proxy executable; fails (never skips) when there is none."""
    explicit = os.environ.get(CHP_ENV)
    found = find_chp()
    if found is None and explicit:
        pytest.fail(f"{CHP_ENV}={explicit} is not an executable file. {CHP_MISSING}", pytrace=False)
    if found is None:
        pytest.fail(CHP_MISSING, pytrace=False)
    return found


@pytest.fixture(scope="session")
def hub(chp: str) -> Iterator[Hub]:
    """The session's hub, with every user created and the servers of SERVER_USERS ready."""
    hub = Hub(chp, granular_users=GRANULAR_USERS)
    try:
        hub.start()
        hub.create_users([ALICE, BOB, CAROL, GRACE])
        for name in SERVER_USERS:
            hub.start_server(name)
        for name in SERVER_USERS:
            hub.wait_server(name, access_token(hub, name))
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="session")
def tokens(hub: Hub) -> dict[str, str]:
    """One ``access:servers!user={name}`` token per user, for the whole session."""
    return {name: access_token(hub, name) for name in (ALICE, BOB, CAROL, GRACE)}


@pytest.fixture
def kernels(hub: Hub) -> Iterator[Kernels]:
    """Start kernels; each is shut down after the test."""
    helper = Kernels(hub)
    try:
        yield helper
    finally:
        helper.shutdown_all()
