"""What moves the hub's ``last_activity`` of a user's server, measured on a real hub.

What JupyterHub's idle culler reads is the hub's per-server ``last_activity``
(``GET /hub/api/users/NAME`` -> ``servers[""].last_activity``). It has exactly two sources, and
these tests watch both separately:

1. **the server's own reports**: every ``JUPYTERHUB_ACTIVITY_INTERVAL`` seconds (1 s here)
   jupyterhub-singleuser posts its ``last_activity`` (what its ``/api/status`` says: web requests
   that track activity, kernel messages, and what our activity monitor records) to
   ``/hub/api/users/NAME/activity``. Each report is authenticated with the server's own token,
   whose ``last_activity`` the hub records (``activity_resolution = 0``), so a test can wait for
   "a report sent after this moment" without any time window (`Hub.wait_report_after`).
2. **the proxy's route activity**: configurable-http-proxy stamps a user's route on every 2xx
   response and on websocket data it relays, whatever the request was; the hub copies that
   stamp into the server's ``last_activity`` (and the user's) every ``last_activity_interval``
   seconds (2 s here). The route's stamp is readable at once (``GET /hub/api/proxy``), so a test
   can tell whether a harvest could have moved the value.

The user-level ``last_activity`` also moves whenever the hub authenticates one of the user's
tokens (a single-user server asks the hub about each new token), so it says nothing about the
server's work; the tests read the per-server value.

Requests that must not count as proxy traffic go to the server itself, at the route's target
(as a process inside the server would), never through the proxy. Cells run over the kernel's
websocket through the proxy; the websocket is closed before the measurement starts, so no
proxy traffic follows. Work is held and released by a flag file the test creates.

carol's server is used by these tests only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hub_harness import CAROL, Hub, Kernels
from loopback import KernelChannel, http, parse_time, utcnow, wait_for

ADVANCE = timedelta(seconds=3)
"""How far past the end of all message and proxy traffic the server's last_activity must get
for the tests to count it as moved by work in flight (a few monitor passes and reports)."""

POLLS = 10
"""Requests of each endpoint a polling test makes."""

WAIT = 30.0
"""Seconds any awaited change may take (generous for loaded machines)."""


def _status_activity(hub: Hub, token: str) -> datetime:
    """The server's own ``last_activity`` (``/api/status``, which does not count as activity),
    asked at the server itself: what its next report will carry."""
    answer = http("GET", hub.direct_url(CAROL, "api/status"), token=token)
    assert answer.status == 200, answer.text
    value = parse_time(answer.json()["last_activity"])
    assert value is not None
    return value


def _settle(hub: Hub, token: str) -> datetime:
    """Wait until the hub's value for carol's server holds everything either source has: it is
    no older than the server's own last_activity nor the proxy's route stamp. Return it."""

    def settled() -> datetime | None:
        sources = max(_status_activity(hub, token), hub.route_activity(CAROL))
        value = hub.server_activity(CAROL)
        return value if value >= sources else None

    return wait_for(settled, WAIT, "the hub did not catch up with the server and the proxy")


def _advanced_past(hub: Hub, moment: datetime) -> datetime:
    """Wait until the hub's last_activity of carol's server is at least ``moment``."""
    return wait_for(
        lambda: (value := hub.server_activity(CAROL)) >= moment and value,
        WAIT,
        f"the server's last_activity in the hub did not reach {moment.isoformat()}",
    )


def _background_job(flag: Path) -> str:
    """A cell that starts a to_thread job waiting for ``flag`` and returns at once."""
    return (
        "import os, time\n"
        "from async_kernel import Caller\n"
        "def job():\n"
        f"    while not os.path.exists({str(flag)!r}):\n"
        "        time.sleep(0.05)\n"
        "background = Caller.get().to_thread(job)\n"
    )


def _blocking_cell(flag: Path) -> str:
    """A cell that blocks, printing nothing, until ``flag`` exists."""
    return f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.05)\n"


@pytest.fixture
def flag(tmp_path: Path) -> Iterator[Path]:
    """The file that releases a test's work; created at teardown whatever happened."""
    path = tmp_path / "release"
    try:
        yield path
    finally:
        path.touch()


def test_the_user_level_last_activity_moves_with_a_token_the_servers_does_not(
    hub: Hub, tokens: dict[str, str]
) -> None:
    """Using a new token of carol's at her server moves her *user-level* last_activity (the
    server asked the hub who the token is, and the hub records activity of the token's owner),
    but not her server's: a report after that still carries the same value. So the per-server
    value is the one that says whether a server is working."""
    token = tokens[CAROL]
    baseline = _settle(hub, token)
    fresh = hub.token(CAROL, [f"access:servers!user={CAROL}"])

    used = utcnow()
    answer = http("GET", hub.direct_url(CAROL, "api/async-kernel/kernels"), token=fresh)
    assert answer.status == 200, answer.text
    assert hub.user_activity(CAROL) >= used

    hub.wait_report_after(CAROL, utcnow())
    assert hub.server_activity(CAROL) == baseline


def test_polling_through_the_proxy_is_route_activity_that_the_hub_harvests(
    hub: Hub, tokens: dict[str, str]
) -> None:
    """Polling the endpoints *through the proxy* does not move the server's own last_activity
    (the endpoints opt out of activity tracking), yet it moves the hub's: configurable-http-proxy
    stamps the route on every 2xx answer, and the hub harvests the stamp into the server's
    last_activity. This is the caveat of docs/jupyterhub.md (poll from inside the server, or
    accept it), measured: the route's stamp passes the polling's start at once, and the hub's
    per-server value follows within a harvest interval."""
    token = tokens[CAROL]
    _settle(hub, token)
    own_before = _status_activity(hub, token)

    polled = utcnow()
    for _ in range(3):
        answer = http("GET", hub.user_url(CAROL, "api/async-kernel/kernels"), token=token)
        assert answer.status == 200, answer.text

    assert _status_activity(hub, token) == own_before
    assert hub.route_activity(CAROL) >= polled
    _advanced_past(hub, polled)


def test_polling_the_endpoints_is_not_server_activity(
    hub: Hub, tokens: dict[str, str], kernels: Kernels
) -> None:
    """Polling both endpoints of an idle async kernel, at the server itself, moves neither the
    server's own last_activity nor the hub's: after a report sent once the polling was done,
    the hub's value is what it was before, and the proxy's route stamp (what a harvest would
    bring) is not newer either. Tracking these requests, or counting the kernel's answers to
    the snapshot requests as kernel activity, would move both."""
    token = tokens[CAROL]
    kernel_id = kernels.start(CAROL, token, direct=True)
    baseline = _settle(hub, token)
    own_before = _status_activity(hub, token)

    for _ in range(POLLS):
        listed = http("GET", hub.direct_url(CAROL, "api/async-kernel/kernels"), token=token)
        assert listed.status == 200, listed.text
        assert kernel_id in {row["kernel_id"] for row in listed.json()["kernels"]}
        assert kernels.snapshot(CAROL, token, kernel_id)["working"] is False
    assert _status_activity(hub, token) == own_before

    hub.wait_report_after(CAROL, utcnow())
    assert hub.server_activity(CAROL) == baseline
    assert hub.route_activity(CAROL) <= baseline


def test_background_work_moves_the_servers_last_activity(
    hub: Hub, tokens: dict[str, str], kernels: Kernels, flag: Path
) -> None:
    """A cell that starts ``Caller.to_thread(job)`` and returns leaves the kernel idle by every
    message: after its reply and idle status, and the websocket closed, no message and no
    proxy traffic follow. The hub's last_activity of the server still moves well past that
    point, because the extension's activity monitor finds the kernel working and the server
    reports it; the proxy's route stamp stays behind, so the move is the server's report.
    Without the monitor it would stay at the cell's last message."""
    token = tokens[CAROL]
    kernel_id = kernels.start(CAROL, token)
    channel = KernelChannel(hub.ws_url(CAROL, kernel_id, "background"), token).open()
    try:
        channel.wait_ready()
        msg_id = channel.execute(_background_job(flag))
        reply = channel.reply(msg_id)
        assert reply["content"]["status"] == "ok", reply["content"]
        channel.iopub(msg_id, "status")
    finally:
        channel.close()
    quiet = utcnow()

    state = kernels.snapshot(CAROL, token, kernel_id)
    assert state["execution_state"] == "idle"
    assert state["working"] is True

    _advanced_past(hub, quiet + ADVANCE)
    assert hub.route_activity(CAROL) < quiet + ADVANCE

    flag.touch()
    wait_for(
        lambda: not kernels.snapshot(CAROL, token, kernel_id)["working"],
        WAIT,
        "the kernel still worked after its job was released",
    )


def test_a_cell_blocking_without_output_moves_the_servers_last_activity(
    hub: Hub, tokens: dict[str, str], kernels: Kernels, flag: Path
) -> None:
    """A cell that blocks and prints nothing sends no message after its ``execute_input``:
    message-based activity stays where the cell started. The hub's last_activity of the server
    still moves well past the end of all traffic while the cell runs (the monitor finds the
    kernel working, the server reports it), and not by the proxy (its route stamp stays
    behind)."""
    token = tokens[CAROL]
    kernel_id = kernels.start(CAROL, token)
    channel = KernelChannel(hub.ws_url(CAROL, kernel_id, "blocking"), token).open()
    try:
        channel.wait_ready()
        msg_id = channel.execute(_blocking_cell(flag))
        channel.iopub(msg_id, "execute_input")
    finally:
        channel.close()
    quiet = utcnow()

    state = kernels.snapshot(CAROL, token, kernel_id)
    assert state["execution_state"] == "busy"
    assert state["working"] is True

    _advanced_past(hub, quiet + ADVANCE)
    assert hub.route_activity(CAROL) < quiet + ADVANCE

    flag.touch()
    wait_for(
        lambda: (
            (s := kernels.snapshot(CAROL, token, kernel_id))["execution_state"] == "idle"
            and not s["working"]
        ),
        WAIT,
        "the cell did not end after it was released",
    )
