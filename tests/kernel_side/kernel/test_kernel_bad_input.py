"""Bad input is logged and dropped, never fatal, and never executed: wrong signatures, garbage
frames, malformed JSON, unknown message types and requests sent to the wrong channel."""

from __future__ import annotations

import hmac
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from jupyter_client.session import DELIM, Session
from kernel_harness import KernelSession
from kernel_msgspec import check_message

pytestmark = pytest.mark.timeout(120)

Frames = list[bytes]


@pytest.fixture
def dealer(kernel: KernelSession) -> Iterator[Callable[[str], zmq.Socket[Any]]]:
    """Raw DEALER sockets connected to the kernel's shell or control port."""
    context = zmq.Context()
    sockets: list[zmq.Socket[Any]] = []
    info: dict[str, Any] = dict(kernel.manager.get_connection_info())

    def connect(channel: str) -> zmq.Socket[Any]:
        socket = context.socket(zmq.DEALER)
        socket.linger = 0
        socket.rcvhwm = socket.sndhwm = 0  # never drop what the kernel answers
        port = info[f"{channel}_port"]
        if info["transport"] == "tcp":
            socket.connect(f"tcp://{info['ip']}:{port}")
        else:
            socket.connect(f"ipc://{info['ip']}-{port}")
        sockets.append(socket)
        return socket

    yield connect
    for socket in sockets:
        socket.close(linger=0)
    context.term()


def _execute_content(code: str) -> dict[str, Any]:
    return {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": False,
    }


def _signed(session: Session, parts: list[bytes]) -> Frames:
    """Frames with a correct signature over whatever the four message parts are."""
    return [DELIM, session.sign(parts), *parts]


def _parts(
    session: Session, msg_type: str, content: dict[str, Any]
) -> tuple[dict[str, Any], list[bytes]]:
    msg = session.msg(msg_type, content)
    return msg, [
        session.pack(msg["header"]),
        session.pack(msg["parent_header"]),
        session.pack(msg["metadata"]),
        session.pack(msg["content"]),
    ]


class BadInput:
    """Builds the mix of bad messages, and remembers which ones deserve an (error) reply."""

    def __init__(self, session: Session, marker_dir: Path, rng: random.Random) -> None:
        self.session = session
        self.marker_dir = marker_dir
        self.rng = rng
        self.expect_error_reply: set[str] = set()
        self.kinds: Counter[str] = Counter()

    def make(self, i: int, channel: str) -> Frames:
        kinds = [
            self.wrong_hmac_execute,
            self.garbage,
            self.missing_delimiter,
            self.invalid_json,
            self.header_not_object,
            self.content_not_object,
            self.unknown_msg_type,
            self.wrong_channel,
            self.too_few_frames,
            self.missing_header_fields,
            self.not_utf8,
            self.empty_signature,
        ]
        make = kinds[i % len(kinds)]
        self.kinds[make.__name__] += 1
        return make(i, channel)

    def wrong_hmac_execute(self, i: int, channel: str) -> Frames:
        path = self.marker_dir / f"bad-hmac-{i}"
        _, parts = _parts(
            self.session, "execute_request", _execute_content(f"open({str(path)!r}, 'w').close()")
        )
        forged = hmac.new(b"not the key", b"".join(parts), "sha256").hexdigest().encode()
        return [DELIM, forged, *parts]

    def garbage(self, i: int, channel: str) -> Frames:
        return [self.rng.randbytes(self.rng.randint(0, 64)) for _ in range(self.rng.randint(1, 7))]

    def missing_delimiter(self, i: int, channel: str) -> Frames:
        _, parts = _parts(self.session, "kernel_info_request", {})
        return [self.session.sign(parts), *parts]

    def invalid_json(self, i: int, channel: str) -> Frames:
        _, parts = _parts(self.session, "kernel_info_request", {})
        parts[0] = b'{"msg_id": "x", "msg_type": '
        return _signed(self.session, parts)

    def header_not_object(self, i: int, channel: str) -> Frames:
        _, parts = _parts(self.session, "kernel_info_request", {})
        parts[0] = json.dumps([1, 2, i]).encode()
        return _signed(self.session, parts)

    def content_not_object(self, i: int, channel: str) -> Frames:
        _, parts = _parts(self.session, "kernel_info_request", {})
        parts[3] = b'"just a string"'
        return _signed(self.session, parts)

    def unknown_msg_type(self, i: int, channel: str) -> Frames:
        msg, parts = _parts(self.session, f"no_such_{i}_request", {"i": i})
        self.expect_error_reply.add(msg["header"]["msg_id"])
        return _signed(self.session, parts)

    def wrong_channel(self, i: int, channel: str) -> Frames:
        if channel == "control":  # user code never runs from the control channel
            path = self.marker_dir / f"control-execute-{i}"
            content = _execute_content(f"open({str(path)!r}, 'w').close()")
            msg, parts = _parts(self.session, "execute_request", content)
        else:  # control-only requests are not served on shell (usage and caller_state are)
            msg, parts = _parts(self.session, "create_subshell_request", {})
        self.expect_error_reply.add(msg["header"]["msg_id"])
        return _signed(self.session, parts)

    def too_few_frames(self, i: int, channel: str) -> Frames:
        _, parts = _parts(self.session, "kernel_info_request", {})
        return _signed(self.session, parts)[: self.rng.randint(1, 4)]

    def missing_header_fields(self, i: int, channel: str) -> Frames:
        _, parts = _parts(self.session, "kernel_info_request", {})
        parts[0] = json.dumps({"msg_id": f"no-type-{i}"}).encode()
        return _signed(self.session, parts)

    def not_utf8(self, i: int, channel: str) -> Frames:
        _, parts = _parts(self.session, "kernel_info_request", {})
        parts[self.rng.randint(0, 3)] = b"\xff\xfe\xfd"
        return _signed(self.session, parts)

    def empty_signature(self, i: int, channel: str) -> Frames:
        _, parts = _parts(self.session, "execute_request", _execute_content("1"))
        return [DELIM, b"", *parts]


def _drain_until(
    socket: zmq.Socket[Any], session: Session, marker_id: str, timeout: float
) -> list[dict[str, Any]]:
    """Every reply on `socket` up to and including the reply to `marker_id`, checked."""
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no reply to the marker after {len(replies)} replies"
        if not socket.poll(int(remaining * 1000)):
            continue
        frames = socket.recv_multipart()
        _, msg_list = session.feed_identities(frames)
        reply = check_message(session.deserialize(msg_list))
        replies.append(reply)
        if reply["parent_header"].get("msg_id") == marker_id:
            return replies


def test_two_thousand_bad_messages_are_dropped_and_the_kernel_keeps_working(
    kernel: KernelSession,
    dealer: Callable[[str], zmq.Socket[Any]],
    tmp_path: Path,
) -> None:
    session = Session(key=kernel.client.session.key, signature_scheme="hmac-sha256")
    bad = BadInput(session, tmp_path, random.Random(1234))
    sockets = {"shell": dealer("shell"), "control": dealer("control")}
    for i in range(2000):
        channel = "shell" if i % 2 else "control"
        sockets[channel].send_multipart(bad.make(i, channel))
    assert min(bad.kinds.values()) >= 100, bad.kinds
    # A good request last on each connection: its reply means everything before it was read.
    replies: list[dict[str, Any]] = []
    for socket in sockets.values():
        marker, parts = _parts(session, "kernel_info_request", {})
        socket.send_multipart(_signed(session, parts))
        replies += _drain_until(socket, session, marker["header"]["msg_id"], timeout=60)[:-1]

    answered = {r["parent_header"]["msg_id"] for r in replies}
    assert answered == bad.expect_error_reply, "replies to the wrong messages"
    assert len(replies) == len(bad.expect_error_reply), "more than one reply to a request"
    for reply in replies:
        assert reply["content"]["status"] == "error"
    assert list(tmp_path.iterdir()) == [], "a dropped or misrouted message executed"
    assert kernel.manager.is_alive()
    execution = kernel.execute("1 + 1")
    assert execution.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "2"
    assert kernel.request("kernel_info_request", channel="control")["content"]["status"] == "ok"


def test_nothing_runs_from_a_message_with_a_bad_signature(
    kernel: KernelSession, tmp_path: Path
) -> None:
    target = tmp_path / "created-by-a-forged-message"
    session = kernel.client.session
    _, parts = _parts(
        session, "execute_request", _execute_content(f"open({str(target)!r}, 'w').close()")
    )
    forged = hmac.new(b"guessed key", b"".join(parts), "sha256").hexdigest().encode()
    # Sent on the client's own shell connection, so the good request below is read after it.
    kernel.client.shell_channel.socket.send_multipart([DELIM, forged, *parts])
    after = kernel.execute(f"import os\nos.path.exists({str(target)!r})")
    assert after.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "False"
    assert not target.exists()


def test_a_replayed_message_runs_once(kernel: KernelSession) -> None:
    session = kernel.client.session
    kernel.execute("replays = []")
    msg, parts = _parts(session, "execute_request", _execute_content("replays.append(1)"))
    frames = _signed(session, parts)
    socket = kernel.client.shell_channel.socket
    socket.send_multipart(frames)
    socket.send_multipart(frames)
    assert kernel.collect(msg["header"]["msg_id"]).status == "ok"
    check = kernel.execute("len(replays)")
    assert check.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "1"


def test_a_message_signed_with_another_scheme_is_dropped(
    kernel: KernelSession, tmp_path: Path
) -> None:
    target = tmp_path / "sha1-signed"
    other = Session(key=kernel.client.session.key, signature_scheme="hmac-sha1")
    _, parts = _parts(
        other, "execute_request", _execute_content(f"open({str(target)!r}, 'w').close()")
    )
    kernel.client.shell_channel.socket.send_multipart(_signed(other, parts))
    assert kernel.execute("1").status == "ok"
    assert not target.exists()
    assert os.path.isdir(tmp_path)
