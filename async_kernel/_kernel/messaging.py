"""Building, signing and parsing Jupyter messages: the wire format of the messaging spec.

A [Messenger][async_kernel._kernel.messaging.Messenger] turns content into signed frames in whichever
thread produces a message, so the threads that own zmq sockets only move bytes. Each receiving
thread gets its own [WireSession][async_kernel._kernel.messaging.WireSession]
(`Messenger.receiver()`): its replay-protection history must not be mutated from two threads at
once.

The format is `jupyter_client.session.Session`'s, byte for byte (the frames, the HMAC over
header, parent header, metadata and content, the JSON with dates as ISO strings ending in `Z`,
the digest history against replays), but not its code: importing `jupyter_client.session` runs
`jupyter_client/__init__`, which imports the clients, the kernel managers, tornado and dateutil,
none of which a kernel uses; measured, that was about 7 MiB of each kernel's memory and about
40 ms of its start-up. The tests check the frames against `Session`'s in both directions.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import itertools
import json
import numbers
import os
import random
from binascii import b2a_base64, b2a_hex
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson

from async_kernel.wire import PROTOCOL_VERSION

__all__ = ["DELIM", "Idents", "Message", "Messenger", "WireSession", "current_parent"]

Message = dict[str, Any]
"""A deserialized Jupyter message: header, parent_header, metadata, content, buffers."""

Idents = list[bytes]
"""The routing identities of a message received on a ROUTER socket: its reply goes back to them."""

DELIM = b"<IDS|MSG>"
"""The frame between a message's routing identities and its signature."""

current_parent: contextvars.ContextVar[Message | None] = contextvars.ContextVar(
    "async_kernel_parent", default=None
)
"""The request whose handling is running in this context: output is addressed to it.

It follows work wherever the Caller system carries the context (call_soon, to_thread, queues)
and into threads started from a cell, so output reaches the cell that started the work.
"""


def new_session_id() -> str:
    """A random session id, in jupyter_client's form (16 random bytes, hex, one dash)."""
    buf = os.urandom(16)
    return f"{b2a_hex(buf[:4]).decode()}-{b2a_hex(buf[4:]).decode()}"


def _json_default(obj: Any) -> Any:
    """What jupyter_client's packer makes of what JSON has no type for."""
    if isinstance(obj, datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=UTC)
        return obj.isoformat().replace("+00:00", "Z")
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return b2a_base64(obj, newline=False).decode("ascii")
    if isinstance(obj, Iterable):
        return list(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    raise TypeError(f"{obj!r} is not JSON serializable")


_ORJSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def pack(obj: Any) -> bytes:
    """JSON bytes, as jupyter_client's orjson packer writes them (the json module for what
    orjson refuses, such as keys that are not strings).

    Raises:
        TypeError, ValueError: `obj` has no JSON form.
    """
    try:
        return orjson.dumps(obj, default=_json_default, option=_ORJSON_OPTIONS)
    except TypeError:
        return json.dumps(obj, default=_json_default, ensure_ascii=False, allow_nan=False).encode(
            "utf8", errors="surrogateescape"
        )


def unpack(data: bytes) -> Any:
    """Parse JSON bytes (invalid UTF-8 replaced, as jupyter_client does)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(bytes(data).decode("utf8", "replace"))


class WireSession:
    """Signs, serialises and parses messages for one session id; remembers the signatures it
    has accepted (replay protection). One thread's: the digest history is not locked.

    Not a traitlets object: its fields are plain attributes, read on every message.
    """

    digest_history_size = 2**16
    """Signatures remembered; past it, a tenth of them (at random) are forgotten."""

    def __init__(
        self,
        *,
        key: bytes,
        signature_scheme: str = "hmac-sha256",
        username: str = "kernel",
        session_id: str | None = None,
    ) -> None:
        """A session signing with `key` by `signature_scheme` (no signatures if `key` is empty).

        Raises:
            ValueError: `signature_scheme` is not `hmac-` and a hashlib algorithm.
        """
        scheme, _, hash_name = signature_scheme.partition("-")
        digest = getattr(hashlib, hash_name, None) if scheme == "hmac" else None
        if digest is None:
            raise ValueError(
                f"signature_scheme must be 'hmac-' and a hashlib algorithm, got {signature_scheme!r}"
            )
        self.key = key
        self.signature_scheme = signature_scheme
        self.username = username
        self.session = new_session_id() if session_id is None else session_id
        """The session id every message's header carries."""
        self.auth: hmac.HMAC | None = hmac.HMAC(key, digestmod=digest) if key else None
        self.digest_history: set[bytes] = set()
        self._msg_id_prefix = f"{self.session}_{os.getpid()}_"
        self._msg_numbers = itertools.count()

    # --- outgoing ------------------------------------------------------------------------------

    def msg_header(self, msg_type: str) -> dict[str, Any]:
        """A new header: a msg_id unique in this process, the date now (UTC)."""
        return {
            "msg_id": f"{self._msg_id_prefix}{next(self._msg_numbers)}",
            "msg_type": msg_type,
            "username": self.username,
            "session": self.session,
            "date": datetime.now(UTC),
            "version": PROTOCOL_VERSION,
        }

    def msg(
        self,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        parent: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Message:
        """A new message addressed to `parent` (a message or a header; nobody if empty)."""
        header = self.msg_header(msg_type)
        return {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": msg_type,
            "parent_header": _header_of(parent),
            "content": {} if content is None else content,
            "metadata": {} if metadata is None else dict(metadata),
        }

    def sign(self, parts: Iterable[bytes]) -> bytes:
        """The hex HMAC of `parts` (b"" without a key)."""
        if self.auth is None:
            return b""
        h = self.auth.copy()
        for part in parts:
            h.update(part)
        return h.hexdigest().encode()

    def serialize(self, msg: Message, ident: Sequence[bytes] | None = None) -> list[Any]:
        """`[*idents, DELIM, signature, header, parent_header, metadata, content]`.

        Content may also be bytes already packed (a relayed message).
        """
        content = msg.get("content")
        if content is None:
            packed_content = b"{}"
        elif isinstance(content, bytes):
            packed_content = content
        else:
            packed_content = pack(content)
        parts = [
            pack(msg["header"]),
            pack(msg["parent_header"]),
            pack(msg["metadata"]),
            packed_content,
        ]
        frames: list[Any] = list(ident) if ident else []
        frames.append(DELIM)
        frames.append(self.sign(parts))
        frames.extend(parts)
        return frames

    # --- incoming ------------------------------------------------------------------------------

    @staticmethod
    def feed_identities(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
        """Split the routing identities from the rest of the message, at DELIM.

        Raises:
            ValueError: there is no DELIM.
        """
        idx = frames.index(DELIM)
        return frames[:idx], frames[idx + 1 :]

    def deserialize(self, msg_list: list[bytes]) -> Message:
        """Verify (signature, replay) and parse `[signature, header, parent, metadata,
        content, *buffers]`. Dates stay the ISO strings they are on the wire: the kernel never
        reads them, and echoes the parent header as it came.

        Raises:
            ValueError: too few frames, unsigned, bad or replayed signature.
        """
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
        header = unpack(msg_list[1])
        return {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": header["msg_type"],
            "parent_header": unpack(msg_list[2]),
            "metadata": unpack(msg_list[3]),
            "content": unpack(msg_list[4]),
            "buffers": [memoryview(b) for b in msg_list[5:]],
        }

    def _add_digest(self, signature: bytes) -> None:
        history = self.digest_history
        history.add(signature)
        if len(history) > self.digest_history_size:
            forget = max(len(history) // 10, len(history) - self.digest_history_size)
            history.difference_update(random.sample(sorted(history), forget))


def _header_of(parent: Mapping[str, Any] | None) -> dict[str, Any]:
    """The header of `parent`, a message or a header itself; {} for none."""
    if not parent:
        return {}
    header = parent.get("header")
    if header is None:
        if "msg_id" not in parent:
            raise KeyError("msg_id")
        header = parent
    return dict(header)


class Messenger:
    """Signs and serialises outgoing messages; parses and verifies incoming ones."""

    def __init__(self, *, key: bytes, signature_scheme: str, username: str = "kernel") -> None:
        self._key = key
        self._signature_scheme = signature_scheme
        self._username = username
        self.session = self._new_session()

    def _new_session(self, session_id: str | None = None) -> WireSession:
        return WireSession(
            key=self._key,
            signature_scheme=self._signature_scheme,
            username=self._username,
            session_id=session_id,  # one id on every channel
        )

    def receiver(self) -> Messenger:
        """A Messenger with its own WireSession (and replay history), for one receiving thread."""
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
            idents, msg_list = self.session.feed_identities(list(frames))
            msg = self.session.deserialize(msg_list)
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
        return self.session.msg(msg_type, content=content, parent=parent, metadata=metadata)

    def frames(
        self,
        msg: Message,
        idents: Sequence[bytes] | None = None,
        buffers: Sequence[bytes | memoryview] | None = None,
    ) -> list[Any]:
        """Signed wire frames for `msg`, routing identities first and buffers last."""
        frames = self.session.serialize(msg, idents)
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
