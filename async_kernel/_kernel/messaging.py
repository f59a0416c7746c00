"""Building, signing and parsing Jupyter messages with `jupyter_client.session.Session`.

A [Messenger][async_kernel._kernel.messaging.Messenger] turns content into signed frames in whichever
thread produces a message, so the threads that own zmq sockets only move bytes. Each receiving
thread gets its own Session (`Messenger.receiver()`): Session keeps a replay-protection history
that must not be mutated from two threads at once.
"""

from __future__ import annotations

import contextvars
import hmac
import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from jupyter_client.session import Session, utcnow
from traitlets import observe

from async_kernel.wire import PROTOCOL_VERSION

__all__ = ["Idents", "KernelSession", "Message", "Messenger", "current_parent"]

logger = logging.getLogger("async_kernel.messaging")

Message = dict[str, Any]
"""A deserialized Jupyter message: header, parent_header, metadata, content, buffers."""

Idents = list[bytes]
"""The routing identities of a message received on a ROUTER socket: its reply goes back to them."""

current_parent: contextvars.ContextVar[Message | None] = contextvars.ContextVar(
    "async_kernel_parent", default=None
)
"""The request whose handling is running in this context: output is addressed to it.

It follows work wherever the Caller system carries the context (call_soon, to_thread, queues)
and into threads started from a cell, so output reaches the cell that started the work.
"""


class KernelSession(Session):
    """jupyter_client's Session, minus the date parsing on receipt.

    `Session.deserialize` turns every ISO date string in the header and parent header into a
    datetime with dateutil, which costs more than the rest of receiving a message together
    (measured: about 60% of it). The kernel never reads those dates; it echoes the parent
    header back, and the ISO strings serialise to the same JSON. Signature checks, replay
    protection and unpacking are Session's own.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._identity_changed()

    @observe("session", "username")
    def _identity_changed(self, change: Any = None) -> None:
        # Header fields cached as plain attributes: traitlets reads cost more than building
        # the rest of a header (measured on the per-message hot path).
        self._header_session = self.session
        self._header_username = self.username
        self._msg_id_prefix = f"{self.session}_{os.getpid()}_"
        self._msg_numbers = itertools.count()

    def msg_header(self, msg_type: str) -> dict[str, Any]:
        """The header Session builds, from cached identity fields."""
        return {
            "msg_id": f"{self._msg_id_prefix}{next(self._msg_numbers)}",
            "msg_type": msg_type,
            "username": self._header_username,
            "session": self._header_session,
            "date": utcnow(),
            "version": PROTOCOL_VERSION,
        }

    def deserialize(  # type: ignore[override]
        self, msg_list: list[bytes], content: bool = True, copy: bool = True
    ) -> dict[str, Any]:
        if len(msg_list) < 5:
            raise ValueError(f"malformed message: {len(msg_list)} frames, at least 5 needed")
        if self.auth is not None:
            signature = msg_list[0]
            if not signature:
                raise ValueError("Unsigned Message")
            if not hmac.compare_digest(signature, self.sign(msg_list[1:5])):
                raise ValueError(f"Invalid Signature: {signature!r}")
            if signature in self.digest_history:
                raise ValueError(f"Duplicate Signature: {signature!r}")
            self._add_digest(signature)
        header = self.unpack(msg_list[1])
        return {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": header["msg_type"],
            "parent_header": self.unpack(msg_list[2]),
            "metadata": self.unpack(msg_list[3]),
            "content": self.unpack(msg_list[4]) if content else msg_list[4],
            "buffers": [memoryview(b) for b in msg_list[5:]],
        }


class Messenger:
    """Signs and serialises outgoing messages; parses and verifies incoming ones."""

    def __init__(self, *, key: bytes, signature_scheme: str, username: str = "kernel") -> None:
        self._key = key
        self._signature_scheme = signature_scheme
        self._username = username
        self.session = self._new_session()

    def _new_session(self, session_id: str | None = None) -> Session:
        # orjson packs and unpacks the same JSON several times faster than the json module.
        extra = {} if session_id is None else {"session": session_id}  # one id on every channel
        return KernelSession(
            **extra,
            key=self._key,
            signature_scheme=self._signature_scheme,
            username=self._username,
            packer="orjson",
            unpacker="orjson",
        )

    def receiver(self) -> Messenger:
        """A Messenger with its own Session (and replay history), for one receiving thread."""
        twin = Messenger.__new__(Messenger)
        twin._key = self._key
        twin._signature_scheme = self._signature_scheme
        twin._username = self._username
        twin.session = self._new_session(session_id=self.session.session)
        return twin

    def parse(self, frames: Sequence[bytes]) -> tuple[list[bytes], Message]:
        """Split routing identities from a message and verify and deserialise it.

        Raises:
            ValueError: bad signature, replayed signature, malformed frames or JSON.
        """
        try:
            idents, msg_list = self.session.feed_identities(list(frames), copy=True)
            msg = self.session.deserialize(msg_list, content=True, copy=True)
        except ValueError:
            raise
        except Exception as e:  # KeyError, TypeError, JSONDecodeError, UnicodeDecodeError ...
            raise ValueError(f"malformed message: {type(e).__name__}: {e}") from e
        if not isinstance(msg.get("content"), dict) or not isinstance(msg.get("header"), dict):
            raise ValueError("malformed message: header and content must be JSON objects")
        return idents, msg

    def build(
        self,
        msg_type: str,
        content: Mapping[str, Any],
        parent: Message | None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """A new message addressed to `parent` (a request) or to nobody."""
        # Session.msg only stores the mapping (typed dict there, read as a mapping).
        return self.session.msg(msg_type, content=content, parent=parent or {}, metadata=metadata)  # type: ignore[arg-type]

    def frames(
        self,
        msg: Message,
        idents: Sequence[bytes] | None = None,
        buffers: Sequence[bytes | memoryview] | None = None,
    ) -> list[Any]:
        """Signed wire frames for `msg`, routing identities first and buffers last."""
        frames: list[Any] = self.session.serialize(msg, ident=list(idents) if idents else None)
        if buffers:
            frames.extend(buffers)
        return frames

    def reply_frames(
        self,
        msg_type: str,
        content: Mapping[str, Any],
        parent: Message,
        idents: Sequence[bytes],
        *,
        metadata: dict[str, Any] | None = None,
    ) -> list[Any]:
        """Signed frames of a reply to `parent`, routed back to `idents`."""
        return self.frames(self.build(msg_type, content, parent, metadata=metadata), idents)
