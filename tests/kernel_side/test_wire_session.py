"""The kernel's WireSession against jupyter_client's Session: the same frames, byte for byte,
read by each other in both directions; signatures, replays and odd JSON handled the same way."""

from __future__ import annotations

import datetime
import fractions
import sys
from typing import Any

import pytest
from jupyter_client.session import Session

from async_kernel._kernel.messaging import DELIM, WireSession, pack

KEY = b"a-secret-key"


def client_session(scheme: str = "hmac-sha256") -> Session:
    return Session(key=KEY, signature_scheme=scheme, packer="orjson", unpacker="orjson")


def test_the_frames_are_jupyter_clients_byte_for_byte() -> None:
    ours = WireSession(key=KEY)
    theirs = client_session()
    parent = theirs.msg("execute_request", {"code": "1"})
    msg = ours.msg("execute_reply", {"status": "ok", "execution_count": 1}, parent, {"m": 1})
    expected = theirs.serialize(
        theirs.msg(
            "execute_reply",
            msg["content"],
            parent=parent,
            header=msg["header"],
            metadata=msg["metadata"],
        ),
        ident=[b"client-id"],
    )
    assert ours.serialize(msg, [b"client-id"]) == expected


@pytest.mark.parametrize("scheme", ["hmac-sha256", "hmac-sha1", "hmac-sha512"])
def test_jupyter_client_reads_what_it_writes(scheme: str) -> None:
    ours = WireSession(key=KEY, signature_scheme=scheme, username="kernel")
    theirs = client_session(scheme)
    parent = theirs.msg("kernel_info_request", {})
    msg = ours.msg("kernel_info_reply", {"status": "ok", "text": "é ✓"}, parent)
    idents, parts = theirs.feed_identities(ours.serialize(msg, [b"peer"]))
    got = theirs.deserialize(parts)
    assert idents == [b"peer"]
    assert got["content"] == {"status": "ok", "text": "é ✓"}
    assert got["parent_header"]["msg_id"] == parent["header"]["msg_id"]
    assert got["header"]["msg_id"] == msg["header"]["msg_id"]
    assert got["header"]["session"] == ours.session
    assert got["header"]["username"] == "kernel"
    assert got["header"]["version"] == "5.4"
    assert got["header"]["date"] == msg["header"]["date"]  # an aware UTC datetime, both ways


def test_it_reads_what_jupyter_client_writes_and_refuses_a_replay() -> None:
    ours = WireSession(key=KEY)
    theirs = client_session()
    sent = theirs.msg("execute_request", {"code": "x = 1", "silent": False})
    frames = theirs.serialize(sent, ident=[b"peer"])
    idents, parts = ours.feed_identities(frames)
    got = ours.deserialize(parts)
    assert idents == [b"peer"]
    assert got["content"] == {"code": "x = 1", "silent": False}
    assert got["msg_type"] == "execute_request"
    assert got["header"]["date"] == sent["header"]["date"].isoformat().replace("+00:00", "Z")
    with pytest.raises(ValueError, match="Duplicate Signature"):
        ours.deserialize(parts)


def test_bad_unsigned_and_short_messages_are_refused() -> None:
    ours = WireSession(key=KEY)
    frames = client_session().serialize(client_session().msg("kernel_info_request", {}))
    _, parts = ours.feed_identities(frames)
    with pytest.raises(ValueError, match="Invalid Signature"):
        ours.deserialize([b"0" * 64, *parts[1:]])
    with pytest.raises(ValueError, match="Unsigned Message"):
        ours.deserialize([b"", *parts[1:]])
    with pytest.raises(ValueError, match="at least 5"):
        ours.deserialize(parts[:3])
    with pytest.raises(ValueError):
        ours.feed_identities([b"no", b"delimiter"])
    other_key = Session(key=b"another key", packer="orjson", unpacker="orjson")
    _, foreign = ours.feed_identities(other_key.serialize(other_key.msg("x", {})))
    with pytest.raises(ValueError, match="Invalid Signature"):
        ours.deserialize(foreign)


def test_without_a_key_nothing_is_signed_or_checked() -> None:
    ours = WireSession(key=b"")
    theirs = Session(key=b"", packer="orjson", unpacker="orjson")
    frames = ours.serialize(ours.msg("status", {"execution_state": "idle"}))
    assert frames[frames.index(DELIM) + 1] == b""
    assert theirs.deserialize(theirs.feed_identities(frames)[1])["content"] == {
        "execution_state": "idle"
    }


@pytest.mark.parametrize("scheme", ["md5", "hmac-", "hmac-nosuchhash", "sha256"])
def test_an_unknown_signature_scheme_is_refused(scheme: str) -> None:
    with pytest.raises(ValueError, match="signature_scheme must be"):
        WireSession(key=KEY, signature_scheme=scheme)


@pytest.mark.parametrize(
    "value",
    [
        {"when": datetime.datetime(2026, 12, 3, 9, 0, 0, 123456)},  # naive: taken as UTC
        {"when": datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC)},
        {"day": datetime.date(2026, 12, 3)},
        {"raw": b"\x00\x01binary"},
        {"set": frozenset({3})},
        {"ratio": fractions.Fraction(1, 4)},
        {"nan": float("nan"), "inf": float("inf")},
        {1: "int key", "nested": {2: [1, 2]}},
        {"text": "é ✓ \U0001f600"},
    ],
    ids=lambda v: ",".join(map(str, v)),
)
def test_odd_json_packs_as_jupyter_client_packs_it(value: dict[Any, Any]) -> None:
    assert pack(value) == client_session().pack(value)


def test_unpackable_content_raises_type_error() -> None:
    with pytest.raises(TypeError):
        pack({"object": object()})


def test_the_digest_history_is_culled_past_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = WireSession(key=KEY)
    monkeypatch.setattr(ours, "digest_history_size", 50)
    theirs = client_session()
    for i in range(200):
        ours.deserialize(theirs.feed_identities(theirs.serialize(theirs.msg("m", {"i": i})))[1])
    assert 0 < len(ours.digest_history) <= 50


def test_importing_the_kernel_does_not_import_jupyter_client() -> None:
    import subprocess

    code = (
        "import sys, async_kernel.cli, anyio._backends._asyncio\n"
        "from async_kernel._kernel.kernel import Kernel\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'jupyter_client', 'tornado', 'dateutil'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout
