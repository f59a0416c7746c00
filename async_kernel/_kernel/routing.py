"""Routing the requests that arrive on one socket, in the thread that owns it.

A [Router][async_kernel._kernel.routing.Router] parses each message it receives (one with a bad
signature or malformed frames is logged and dropped) and looks its type up in two tables the
kernel fills once, before serving:

- `routes`: message type → a function that hands the request on and returns at once (to a
  `queue_call` queue on the shell caller, to a task that awaits the introspection worker, or
  to the router thread's queue of requests answered in order, as `debug_request`s are);
- `handlers`: message type → a function that answers a request that runs no user code, right
  here, between the request's own `busy` and `idle`.

A request of any other type is answered with an `UnknownMessageType` error; an exception raised
by a handler becomes an error reply too. Routers run in the threads that own the shell and
control sockets (`ShellChannel`, `ControlThread`), which never run user code.

A shell request whose header names a subshell (`subshell_id`) goes first to the kernel's
`subshells` table, which hands it to that subshell's route for its type (an `execute_request`
runs in the subshell); a type the subshell has no route for is answered here as for the main
shell. A request naming an unknown (or deleted) subshell gets its own busy, an
`UnknownSubshellError` error reply and idle, never silence, except the types in
`main_if_unknown_subshell` (comm messages, which have no reply: a `comm_close` racing the
deletion of its subshell must still close the comm), which are logged and handled as the main
shell's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import zmq

from async_kernel._kernel.channels import SocketChannel
from async_kernel._kernel.iostream import IOPub
from async_kernel._kernel.messaging import Idents, Message, Messenger
from async_kernel._kernel.subshells import UnknownSubshellError
from async_kernel.caller import Caller
from async_kernel.wire import CALLER_STATE_REPLY, CALLER_STATE_REQUEST, USAGE_REPLY, USAGE_REQUEST

__all__ = [
    "AsyncHandler",
    "Handler",
    "Route",
    "Router",
    "SubshellRoutes",
    "error_content",
    "reply_type",
]

logger = logging.getLogger("async_kernel.routing")

Handler = Callable[[Message], Mapping[str, Any]]
"""Answers a request that runs no user code: request in, reply content out."""

AsyncHandler = Callable[[Message], Awaitable[Mapping[str, Any]]]
"""Answers a request by awaiting work done in another thread: request in, reply content out."""

Route = Callable[[Idents, Message], None]
"""Hands a request on to where it is answered, and returns at once."""


class SubshellRoutes(Protocol):
    """Where the requests addressed to subshells go (the kernel's subshell table)."""

    def route(
        self, subshell_id: object, msg_type: str, idents: Idents, msg: Message
    ) -> bool | None:
        """Hand the request on: True if handed on, False if the subshell has no route for
        `msg_type`, None if there is no such subshell."""


_REPLY_TYPES = {CALLER_STATE_REQUEST: CALLER_STATE_REPLY, USAGE_REQUEST: USAGE_REPLY}
"""Replies named by the wire contract rather than by the `x_request` → `x_reply` rule."""


def reply_type(msg_type: str) -> str:
    """The `msg_type` of the reply to a request of type `msg_type` (`x_request` → `x_reply`)."""
    return _REPLY_TYPES.get(msg_type) or msg_type.removesuffix("_request") + "_reply"


def error_content(ename: str, evalue: str) -> dict[str, Any]:
    """The content of an error reply for an error of the kernel's own (it has no traceback)."""
    return {"status": "error", "ename": ename, "evalue": evalue, "traceback": []}


class Router:
    """Routes the requests that arrive on one ROUTER socket, in the thread that owns it.

    The router makes the socket's [SocketChannel][async_kernel._kernel.channels.SocketChannel]
    (`channel`), whose owner calls `on_frames` for every message. The kernel sets `routes` and
    `handlers` once, before the channel is served; they are only read after that.
    """

    def __init__(
        self,
        name: str,
        socket: zmq.Socket[Any],
        owner: Caller,
        messenger: Messenger,
        iopub: IOPub,
    ) -> None:
        self._messenger = messenger
        self._iopub = iopub
        self.channel = SocketChannel(name, socket, owner, self.on_frames)
        self.routes: dict[str, Route] = {}
        """Requests handed on elsewhere, by message type."""
        self.handlers: dict[str, Handler] = {}
        """Requests answered in the router's thread, by message type."""
        self.subshells: SubshellRoutes | None = None
        """Where requests whose header names a subshell go (the shell channel's router)."""
        self.main_if_unknown_subshell: frozenset[str] = frozenset()
        """Message types handled as the main shell's when the subshell they name is unknown."""

    def on_frames(self, frames: list[bytes]) -> None:
        """Parse a message and route it, or answer it. Owner's thread (the channel calls it)."""
        try:
            idents, msg = self._messenger.parse(frames)
        except ValueError as e:
            logger.warning("Dropped a %s message: %s", self.channel.name, e)
            return
        header = msg["header"]
        msg_type: str = header.get("msg_type", "")
        subshell_id = header.get("subshell_id")
        if subshell_id is not None and self.subshells is not None:
            routed = self.subshells.route(subshell_id, msg_type, idents, msg)
            if routed:
                return
            if routed is None:
                if msg_type not in self.main_if_unknown_subshell:
                    self._refuse_unknown_subshell(subshell_id, msg_type, idents, msg)
                    return
                logger.warning(
                    "A %s names the unknown subshell %r: handled on the main shell",
                    msg_type,
                    subshell_id,
                )
        route = self.routes.get(msg_type)
        if route is None:
            self._answer(msg_type, idents, msg)
        else:
            route(idents, msg)

    def _refuse_unknown_subshell(
        self, subshell_id: object, msg_type: str, idents: Idents, msg: Message
    ) -> None:
        """Busy, an error reply (for a request) and idle: the client learns the request was
        not run, as it would for any other (a client tracks a request by its idle)."""
        logger.warning("A %s names the unknown subshell %r: refused", msg_type, subshell_id)
        self._iopub.status("busy", msg)
        try:
            if msg_type.endswith("_request"):
                error = UnknownSubshellError(subshell_id)
                content = error_content(type(error).__name__, str(error))
                self.reply(reply_type(msg_type), content, msg, idents)
        finally:
            self._iopub.status("idle", msg)

    def _answer(self, msg_type: str, idents: Idents, msg: Message) -> None:
        """Answer a request that runs no user code: busy, reply, idle."""
        reply_to = reply_type(msg_type)
        handler = self.handlers.get(msg_type)
        content: Mapping[str, Any]
        self._iopub.status("busy", msg)
        try:
            if handler is None:
                name = self.channel.name
                logger.warning("Unknown message type %r on the %s channel", msg_type, name)
                content = error_content(
                    "UnknownMessageType", f"{msg_type!r} is not handled on the {name} channel"
                )
            else:
                try:
                    content = handler(msg)
                except Exception as e:
                    logger.exception("Error handling %s", msg_type)
                    content = error_content(type(e).__name__, str(e))
            if msg_type.endswith("_request"):
                self.reply(reply_to, content, msg, idents)
        finally:
            self._iopub.status("idle", msg)

    def answered_in_task(self, handler: AsyncHandler) -> Route:
        """A route that answers each request in a task of its own in the owner's loop.

        The task publishes busy, awaits `handler(msg)`, replies and publishes idle, while the
        router goes on routing. Call it when filling `routes`, not per message.
        """
        call_soon = self.channel.owner.call_soon
        answer = self._answer_in_task

        def route(idents: Idents, msg: Message) -> None:
            call_soon(answer, handler, idents, msg)

        return route

    def answered_in_order(self, handler: AsyncHandler) -> Route:
        """A route that answers its requests one at a time, in arrival order, in the owner's
        loop: each gets busy, `await handler(msg)`, its reply and idle before the next starts,
        while the router goes on routing (and answering) every other type. Call it when
        filling `routes`, not per message; all such routes of one router share one queue."""
        queue = self.channel.owner._queue_bookkeeping
        answer = self._answer_in_task

        def route(idents: Idents, msg: Message) -> None:
            queue(answer, handler, idents, msg)

        return route

    async def _answer_in_task(self, handler: AsyncHandler, idents: Idents, msg: Message) -> None:
        msg_type: str = msg["header"].get("msg_type", "")
        content: Mapping[str, Any]
        self._iopub.status("busy", msg)
        try:
            try:
                content = await handler(msg)
            except Exception as e:
                logger.exception("Error handling %s", msg_type)
                content = error_content(type(e).__name__, str(e))
            self.reply(reply_type(msg_type), content, msg, idents)
        finally:
            self._iopub.status("idle", msg)

    def reply(
        self, msg_type: str, content: Mapping[str, Any], parent: Message, idents: Idents
    ) -> None:
        """Send a reply to `parent` back to `idents`. Owner's thread only (its Messenger is)."""
        self.channel.send(self._messenger.reply_frames(msg_type, content, parent, idents))
