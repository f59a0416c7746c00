"""OutStream in-process: lock-free writes from many threads and contexts, against flushes from
another thread; every text published once, in each writer's order, to the writer's parent."""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from async_kernel._kernel import iostream
from async_kernel._kernel.iostream import OutStream
from async_kernel._kernel.messaging import Message, current_parent

WRITERS = 6
WRITES = 3000
DEFAULT: Message = {"header": {"msg_id": "default"}}


class FakeIOPub:
    def __init__(self) -> None:
        self.published: list[tuple[Message | None, str]] = []

    def publish(
        self, msg_type: str, content: dict[str, Any], parent: Message | None, **_: Any
    ) -> None:
        assert msg_type == "stream"
        self.published.append((parent, content["text"]))


class NoTimer:
    """The flusher: flushes come from the test's own thread instead."""

    def call_later(self, delay: float, func: Any) -> None:
        pass


class _SlowRun(iostream._Run):
    """A run whose append lets other threads in first: a flush then often takes the run
    between a writer's read of it and its append, the case the rescue handles."""

    __slots__ = ()

    def append(self, s: str) -> None:
        time.sleep(0)
        super().append(s)


@pytest.fixture(params=["fast", "slow append"])
def stream(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "slow append":
        monkeypatch.setattr(iostream, "_Run", _SlowRun)
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    iopub = FakeIOPub()
    out = OutStream("stdout", iopub, NoTimer(), lambda: DEFAULT)  # type: ignore[arg-type]
    out.max_buffered = 50
    try:
        yield out, iopub
    finally:
        sys.setswitchinterval(saved)


def test_concurrent_writes_and_flushes_lose_nothing(stream: Any) -> None:
    out, iopub = stream
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            out.flush()

    def writer(k: int) -> None:
        if k % 3:  # others write with no parent in their context: the default parent's
            current_parent.set({"header": {"msg_id": f"p{k}"}})
        for i in range(WRITES):
            out.write(f"{k}:{i};")

    flushing = threading.Thread(target=flusher)
    writers = [
        threading.Thread(target=contextvars.Context().run, args=(writer, k)) for k in range(WRITERS)
    ]
    flushing.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    flushing.join()
    out.flush()

    seen: dict[int, list[int]] = {k: [] for k in range(WRITERS)}
    for parent, text in iopub.published:
        assert text
        for item in text.split(";")[:-1]:
            k, i = map(int, item.split(":"))
            assert parent["header"]["msg_id"] == (f"p{k}" if k % 3 else "default"), item
            seen[k].append(i)
    for k in range(WRITERS):
        assert seen[k] == list(range(WRITES)), f"writer {k}"


def test_write_checks_its_argument_and_returns_its_length(stream: Any) -> None:
    out, iopub = stream
    with pytest.raises(TypeError, match="must be str, not bytes"):
        out.write(b"x")
    assert out.write("abc") == 3
    assert OutStream.write(out, "de") == 2
    out.writelines(["f", "g"])
    print("h", file=out)
    out.flush()
    assert iopub.published == [(DEFAULT, "abcdefgh\n")]


def test_a_full_run_is_published_by_the_write_that_fills_it(stream: Any) -> None:
    out, iopub = stream
    for i in range(out.max_buffered):
        out.write(str(i % 10))
    assert len(iopub.published) == 1
    assert len(iopub.published[0][1]) == out.max_buffered
