"""SocketChannel in-process, over real zmq sockets: a thread sends while the socket is free
without its owner, or leaves it to the owner (`hand_over`); frames handed over while another thread holds the socket are sent by that
thread, in order; concurrent senders lose nothing; the owner still reads every request when
other threads' sends take the edge of its notification fd."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from async_kernel import Caller
from async_kernel._kernel.channels import SocketChannel

TIMEOUT_MS = 10_000


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(saved)


@pytest.fixture
def pushing(
    caller: Caller, context: zmq.Context[Any], request: pytest.FixtureRequest
) -> Iterator[tuple[SocketChannel, zmq.Socket[Any]]]:
    """A channel on a PUSH socket owned by `caller`, and the PULL peer that receives what it
    sends; the channel is closed in its owner afterwards."""
    address = f"inproc://{request.node.name}"
    push = context.socket(zmq.PUSH)
    push.bind(address)
    pull = context.socket(zmq.PULL)
    pull.connect(address)
    channel = SocketChannel("test", push, caller, None)
    yield channel, pull
    _close_in_owner(channel)
    pull.close()


def _recv(socket: zmq.Socket[Any]) -> list[bytes]:
    assert socket.poll(TIMEOUT_MS), "nothing arrived"
    return socket.recv_multipart()


@contextlib.contextmanager
def _owner_blocked(caller: Caller) -> Iterator[Any]:
    """Block the caller's thread for the `with` block (entered once it is blocked); yield the
    blocking call's Pending."""
    started, release = threading.Event(), threading.Event()

    def wait() -> None:
        started.set()
        release.wait(TIMEOUT_MS / 1000)

    blocked = caller.call_soon(wait)
    assert started.wait(TIMEOUT_MS / 1000)
    try:
        yield blocked
    finally:
        release.set()
    blocked.wait_sync(TIMEOUT_MS / 1000)


def _close_in_owner(channel: SocketChannel) -> None:
    channel.owner.call_soon(channel.close).wait_sync(TIMEOUT_MS / 1000)


def test_a_send_goes_out_while_the_owner_is_blocked(
    caller: Caller, pushing: tuple[SocketChannel, zmq.Socket[Any]]
) -> None:
    channel, pull = pushing
    with _owner_blocked(caller) as blocked:
        channel.send([b"from", b"the test thread"])
        assert _recv(pull) == [b"from", b"the test thread"]
        assert not blocked.done()


def test_a_hand_over_send_is_left_to_the_owner(
    caller: Caller, pushing: tuple[SocketChannel, zmq.Socket[Any]]
) -> None:
    channel, pull = pushing
    with _owner_blocked(caller):
        channel.send([b"handed", b"over"], hand_over=True)
        assert not pull.poll(100), "sent by the handing thread"
    assert _recv(pull) == [b"handed", b"over"]


def test_frames_handed_over_while_another_thread_holds_the_socket_are_sent_by_it(
    pushing: tuple[SocketChannel, zmq.Socket[Any]],
) -> None:
    channel, pull = pushing
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:  # an outbox item: runs holding the socket
        channel.send_now([b"first"])
        holding.set()
        release.wait(TIMEOUT_MS / 1000)

    holder = threading.Thread(target=channel.run_with_socket, args=(hold,))
    holder.start()
    try:
        assert holding.wait(TIMEOUT_MS / 1000)
        channel.send([b"second"])  # returns at once: the holder sends it
        assert _recv(pull) == [b"first"]
        assert not pull.poll(0), "sent while another thread held the socket"
    finally:
        release.set()
    holder.join(TIMEOUT_MS / 1000)
    assert _recv(pull) == [b"second"]


def test_send_now_outside_an_outbox_item_is_refused(
    pushing: tuple[SocketChannel, zmq.Socket[Any]],
) -> None:
    channel, _ = pushing
    with pytest.raises(RuntimeError, match="not held"):
        channel.send_now([b"x"])


def test_concurrent_senders_lose_nothing_and_keep_their_order(
    caller: Caller, pushing: tuple[SocketChannel, zmq.Socket[Any]], fast_switching: None
) -> None:
    channel, pull = pushing
    senders, count = 6, 2000
    start = threading.Barrier(senders + 1)

    def send(sender: int, wait: bool = True) -> None:
        if wait:
            start.wait()
        for i in range(count):
            channel.send([str(sender).encode(), str(i).encode()])

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    start.wait()
    caller.call_soon(send, senders, False)  # the owner sends too
    last = dict.fromkeys(range(senders + 1), -1)
    for _ in range((senders + 1) * count):
        sender, i = (int(part) for part in _recv(pull))
        assert i == last[sender] + 1, f"sender {sender}: {i} after {last[sender]}"
        last[sender] = i
    for thread in threads:
        thread.join(TIMEOUT_MS / 1000)
    assert not pull.poll(100)


def test_the_owner_reads_every_request_while_other_threads_reply(
    caller: Caller, context: zmq.Context[Any], fast_switching: None
) -> None:
    router = context.socket(zmq.ROUTER)
    router.bind("inproc://router")
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, b"client")
    dealer.connect("inproc://router")
    requests = 500
    received: list[bytes] = []
    first_received = threading.Event()
    all_received = threading.Event()
    readers: set[int] = set()

    def on_message(frames: list[bytes]) -> None:
        readers.add(threading.get_ident())
        received.append(frames[1])
        first_received.set()
        if len(received) == requests:
            all_received.set()

    channel = SocketChannel("test", router, caller, on_message)
    serving = caller.call_soon(channel.serve)
    # The first reply waits for the router to know the peer.
    dealer.send(b"hello")
    assert first_received.wait(TIMEOUT_MS / 1000)
    for i in range(1, requests):
        dealer.send(str(i).encode())
        channel.send([b"client", b"reply %d" % i])  # from this thread, racing the owner's reads
    assert all_received.wait(TIMEOUT_MS / 1000), f"{len(received)} of {requests} read"
    assert received == [b"hello", *(str(i).encode() for i in range(1, requests))]
    assert readers == {caller.thread.ident if caller.thread else None}
    for i in range(1, requests):
        assert dealer.poll(TIMEOUT_MS)
        assert dealer.recv() == b"reply %d" % i
    serving.cancel()
    _close_in_owner(channel)
    dealer.close()
