"""The extension's REST endpoints through JupyterHub's proxy, as a dashboard reaches them:
``{proxy}/user/NAME/api/async-kernel/kernels[/{id}]``, authenticated by hub tokens.

alice's server runs as jupyterhub-singleuser does by default: its identity provider lets through
only tokens with ``access:servers`` for that server, and then every permission is granted.
"""

from __future__ import annotations

from typing import Any

from hub_harness import ALICE, BOB, Hub, Kernels
from loopback import http


def _list_url(hub: Hub) -> str:
    return hub.user_url(ALICE, "api/async-kernel/kernels")


def test_a_token_with_access_to_the_server_reads_both_endpoints(
    hub: Hub, tokens: dict[str, str], kernels: Kernels
) -> None:
    """A token with just ``access:servers!user=alice`` gets 200 and JSON from both endpoints
    of alice's server through the proxy, and they describe the async kernel running there: the
    extension is loaded in the single-user server and its endpoints are reachable behind the
    hub, under the server's base URL ``/user/alice/``."""
    token = tokens[ALICE]
    kernel_id = kernels.start(ALICE, token)

    listed = http("GET", _list_url(hub), token=token)
    assert listed.status == 200, listed.text
    assert listed.headers["Content-Type"].startswith("application/json")
    rows: dict[str, dict[str, Any]] = {row["kernel_id"]: row for row in listed.json()["kernels"]}
    assert rows[kernel_id]["kernel_name"] == "async"
    assert rows[kernel_id]["async_kernel"] is True
    assert rows[kernel_id]["backend"] == "asyncio"

    detail = http("GET", f"{_list_url(hub)}/{kernel_id}", token=token)
    assert detail.status == 200, detail.text
    assert detail.headers["Content-Type"].startswith("application/json")
    state = detail.json()
    assert state["kernel_id"] == kernel_id
    assert state["status"] == "ok"
    assert state["backend"] == "asyncio"
    assert {c["name"] for c in state["callers"]} >= {"MainThread", "ControlThread"}


def test_another_users_token_is_refused(hub: Hub, tokens: dict[str, str]) -> None:
    """bob's token (``access:servers!user=bob``) is a valid hub token, but not for alice's
    server: the single-user server answers 403 (not 404) on both endpoints, and no data."""
    for url in (_list_url(hub), f"{_list_url(hub)}/no-such-kernel"):
        answer = http("GET", url, token=tokens[BOB])
        assert answer.status == 403, (url, answer.status, answer.text)
        assert "kernels" not in answer.json()


def test_without_a_token_the_request_is_refused_not_redirected(hub: Hub) -> None:
    """Without any credentials the endpoints answer 403, not a 302 redirect to the hub's OAuth
    login, whatever the client accepts. That is what actually happens, and why: jupyter_server's
    ``APIHandler.get_login_url`` raises 403 instead of redirecting an unauthenticated API
    request, and JupyterHub's identity provider keeps that rule (it only redirects handlers
    that would redirect to a login page anyway)."""
    for accept in ("application/json", "text/html"):
        answer = http("GET", _list_url(hub), headers={"Accept": accept})
        assert answer.status == 403, (accept, answer.status, answer.headers)
        assert "Location" not in answer.headers
        assert "kernels" not in answer.json()


def test_a_token_in_the_url_is_not_accepted_by_rest_requests(
    hub: Hub, tokens: dict[str, str]
) -> None:
    """``?token=...`` in the URL does not authenticate a REST request (403), even with a token
    that works in the Authorization header: since JupyterHub 5 the single-user server ignores
    URL tokens (``HubAuth.allow_token_in_url``, ``$JUPYTERHUB_ALLOW_TOKEN_IN_URL``, False by
    default) except on websocket requests. Dashboards must send ``Authorization: token ...``."""
    url = f"{_list_url(hub)}?token={tokens[ALICE]}"
    assert http("GET", url).status == 403
    assert http("GET", _list_url(hub), token=tokens[ALICE]).status == 200
