"""A read-only dashboard token: JupyterHub custom scopes checked per jupyter_server permission.

grace's server runs with the granular authorizer (`hub_granular_authorizer`): a request needs,
besides ``access:servers`` for the server, the custom scope
``custom:jupyter_server:{action}:{resource}`` of its permission, filtered to the server
(``!user=grace``). The hub defines the scopes (``JupyterHub.custom_scopes``; ``write:kernels``
implies ``read:kernels``, ``execute:kernels`` implies both) and its ``user`` role grants every
user those of their own server (``custom:jupyter_server:execute:kernels!user``), so they may
mint tokens holding any of them. The extension's endpoints ask for ``read`` on ``kernels``,
like ``GET /api/kernels``.
"""

from __future__ import annotations

import pytest
import websocket
from hub_harness import GRACE, Hub, Kernels
from loopback import KernelChannel, http

ACCESS = f"access:servers!user={GRACE}"
READ_KERNELS = f"custom:jupyter_server:read:kernels!user={GRACE}"
EXECUTE_KERNELS = f"custom:jupyter_server:execute:kernels!user={GRACE}"
READ_CONTENTS = f"custom:jupyter_server:read:contents!user={GRACE}"


@pytest.fixture(scope="module")
def full_token(hub: Hub) -> str:
    """May read, start and stop kernels and open their websockets on grace's server."""
    return hub.token(GRACE, [ACCESS, EXECUTE_KERNELS])


@pytest.fixture(scope="module")
def read_token(hub: Hub) -> str:
    """The dashboard's token: may only read kernels on grace's server."""
    return hub.token(GRACE, [ACCESS, READ_KERNELS])


@pytest.fixture
def kernel_id(kernels: Kernels, full_token: str) -> str:
    """An async kernel on grace's server, started with the full token."""
    return kernels.start(GRACE, full_token)


def test_the_full_token_starts_kernels_and_opens_their_websockets(
    hub: Hub, full_token: str, kernel_id: str
) -> None:
    """The control: with ``execute:kernels`` the same server lets a token start a kernel (the
    fixture did, ``POST /api/kernels``) and talk to it over its websocket, so the refusals of
    the read-only token below come from its scopes, not from the server."""
    channel = KernelChannel(hub.ws_url(GRACE, kernel_id, "full"), full_token).open()
    try:
        assert channel.wait_ready()["content"]["status"] == "ok"
    finally:
        channel.close()


def test_the_read_only_token_reads_the_endpoints_and_the_kernel_list(
    hub: Hub, read_token: str, kernel_id: str
) -> None:
    """With ``read:kernels`` a token gets 200 from both async-kernel endpoints and from
    ``GET /api/kernels``, and they show the running kernel."""
    listed = http("GET", hub.user_url(GRACE, "api/async-kernel/kernels"), token=read_token)
    assert listed.status == 200, listed.text
    assert kernel_id in {row["kernel_id"] for row in listed.json()["kernels"]}

    detail = http(
        "GET", hub.user_url(GRACE, f"api/async-kernel/kernels/{kernel_id}"), token=read_token
    )
    assert detail.status == 200, detail.text
    assert detail.json()["kernel_id"] == kernel_id

    models = http("GET", hub.user_url(GRACE, "api/kernels"), token=read_token)
    assert models.status == 200, models.text
    assert kernel_id in {model["id"] for model in models.json()}


def test_the_read_only_token_cannot_start_stop_or_connect_to_kernels(
    hub: Hub, read_token: str, kernel_id: str
) -> None:
    """Without ``write`` and ``execute`` on ``kernels`` the same token gets 403 when it starts
    a kernel (``POST /api/kernels``) or shuts one down, and its websocket upgrade on the
    kernel's channels is refused with 403."""
    started = http(
        "POST", hub.user_url(GRACE, "api/kernels"), token=read_token, body={"name": "async"}
    )
    assert started.status == 403, started.text

    stopped = http("DELETE", hub.user_url(GRACE, f"api/kernels/{kernel_id}"), token=read_token)
    assert stopped.status == 403, stopped.text

    channel = KernelChannel(hub.ws_url(GRACE, kernel_id, "read-only"), read_token)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        channel.open()
    assert refused.value.status_code == 403


def test_the_endpoints_need_read_on_kernels_not_just_access(hub: Hub, kernel_id: str) -> None:
    """A token with ``access:servers`` alone, or with read access to another resource
    (``read:contents``), reaches grace's server but gets 403 from the async-kernel endpoints:
    they are authorized as ``read`` on ``kernels``, nothing less, nothing else. (The contents
    token does read contents, so it is refused for what it lacks, not for being invalid.)"""
    access_only = hub.token(GRACE, [ACCESS])
    contents = hub.token(GRACE, [ACCESS, READ_CONTENTS])
    for token in (access_only, contents):
        for path in ("api/async-kernel/kernels", f"api/async-kernel/kernels/{kernel_id}"):
            answer = http("GET", hub.user_url(GRACE, path), token=token)
            assert answer.status == 403, (path, answer.status, answer.text)

    files = http("GET", hub.user_url(GRACE, "api/contents"), token=contents)
    assert files.status == 200, files.text
