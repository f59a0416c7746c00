"""Checks that a Jupyter message follows the messaging spec 5.4 (and the caller_state contract).

Built on the content schemas of `jupyter_kernel_test.msgspec_v5` (spec 5.x),
with what it lacks or gets wrong for 5.4 added here: exact header fields and version, the
parent's msg_id, `aborted` execute replies, boolean `password` in `input_request`, comm
messages, the subshell replies of JEP 91, `usage_reply`, `debug_reply` and the project's own
`caller_state_reply`.
"""

from __future__ import annotations

import datetime
import functools
import re
from typing import Any

from jsonschema import Draft4Validator
from jupyter_kernel_test.msgspec_v5 import (
    get_error_reply_validator,
    get_msg_content_validator,
    reply_msgs_using_status,
)
from wire_check import conform

from async_kernel.wire import CALLER_STATE_VERSION, CallerStateReply, UsageReply

PROTOCOL_VERSION = "5.4"
"""The messaging protocol version every message from the kernel must carry."""

MINOR_VERSION = 4
"""Newer than jupyter_kernel_test's schemas (5.1): fields added since then are allowed."""

Message = dict[str, Any]

HEADER_FIELDS = ("msg_id", "username", "session", "date", "msg_type", "version")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def check_message(
    msg: Message, msg_type: str | None = None, parent_id: str | None = None
) -> Message:
    """Assert `msg` is a well-formed spec 5.4 message (of `msg_type`, answering `parent_id`).

    Returns `msg`, so a check can wrap the expression that produced it.
    """
    for part in ("header", "parent_header", "metadata", "content"):
        assert isinstance(msg.get(part), dict), f"{part} is not an object: {msg!r}"
    header = msg["header"]
    missing = [f for f in HEADER_FIELDS if f not in header]
    assert not missing, f"header lacks {missing}: {header!r}"
    for field in ("msg_id", "username", "session", "msg_type", "version"):
        assert isinstance(header[field], str), f"header.{field} is not a string: {header!r}"
    assert header["msg_id"], "empty msg_id"
    assert isinstance(header["date"], datetime.datetime | str), header
    assert header["version"] == PROTOCOL_VERSION, header
    assert msg.get("msg_id", header["msg_id"]) == header["msg_id"]
    assert msg.get("msg_type", header["msg_type"]) == header["msg_type"]
    actual_type = header["msg_type"]
    if msg_type is not None:
        assert actual_type == msg_type, f"expected {msg_type}, got {actual_type}: {msg!r}"
    if parent_id is not None:
        got = msg["parent_header"].get("msg_id")
        assert got == parent_id, f"{actual_type} answers {got!r}, not {parent_id!r}"
    check_content(actual_type, msg["content"])
    return msg


def check_content(msg_type: str, content: dict[str, Any]) -> None:
    """Assert `content` is valid for `msg_type`."""
    status = content.get("status")
    if msg_type.endswith("_reply") and status == "error":
        _check_error_reply(content)
        return
    if msg_type == "execute_reply" and status == "aborted":
        _check_aborted(content)
        return
    special = _CONTENT_CHECKS.get(msg_type)
    if special is not None:
        special(content)
        return
    if msg_type in reply_msgs_using_status:
        assert status == "ok", f"{msg_type} status {status!r} is not ok, error or aborted"
    _content_validator(msg_type).validate(content)
    if msg_type == "kernel_info_reply":
        _check_kernel_info(content)


@functools.cache
def _content_validator(msg_type: str) -> Draft4Validator:
    """jupyter_kernel_test's schema for `msg_type` (KeyError if it has none), built once."""
    return get_msg_content_validator(msg_type, MINOR_VERSION)


@functools.cache
def _error_reply_validator() -> Draft4Validator:
    return get_error_reply_validator(MINOR_VERSION)


def _check_error_reply(content: dict[str, Any]) -> None:
    _error_reply_validator().validate(content)
    assert all(isinstance(line, str) for line in content["traceback"])


def _check_aborted(content: dict[str, Any]) -> None:
    assert content["status"] == "aborted"
    if "execution_count" in content:
        assert _is_int(content["execution_count"])


def _check_kernel_info(content: dict[str, Any]) -> None:
    info = content["language_info"]
    for field in ("name", "version", "mimetype", "file_extension"):
        assert isinstance(info.get(field), str), f"language_info.{field}: {info!r}"
    features = content.get("supported_features", [])
    assert isinstance(features, list)
    assert all(isinstance(f, str) for f in features)
    for link in content.get("help_links", []):
        assert isinstance(link.get("text"), str)
        assert isinstance(link.get("url"), str)


def _check_input_request(content: dict[str, Any]) -> None:
    assert isinstance(content.get("prompt"), str), content
    assert isinstance(content.get("password"), bool), content


def _check_comm(content: dict[str, Any], *extra: str) -> None:
    assert isinstance(content.get("comm_id"), str), content
    assert isinstance(content.get("data"), dict), content
    for field in extra:
        assert isinstance(content.get(field), str), content


def _check_usage(content: dict[str, Any]) -> None:
    conform(content, UsageReply, "usage_reply")
    memory = content["host_virtual_memory"]
    for field in ("total", "available", "percent", "used", "free"):
        assert field in memory, memory


def check_caller_state(content: dict[str, Any]) -> None:
    """Assert `content` is a `caller_state_reply` exactly as the wire contract requires.

    The fields and their types come from `async_kernel.wire.CallerStateReply`; on top of them,
    what a type cannot say: the version, the time format, counters never negative, at least one
    caller, `running_for` set exactly while a shell queue runs, every caller named as a child
    having a row of its own, and `working` (optional in the contract) always given by this
    kernel.
    """
    conform(content, CallerStateReply, "caller_state_reply")
    assert content["version"] == CALLER_STATE_VERSION == 1, content
    assert ISO_UTC.match(content["started"]), content["started"]
    assert isinstance(content.get("working"), bool), "no `working` in the reply"
    assert content["callers"], "no callers"
    names = [caller["name"] for caller in content["callers"]]
    assert len(names) == len(set(names)), f"caller names repeat: {names}"
    for caller in content["callers"]:
        orphans = set(caller["children"]) - set(names)
        assert not orphans, f"{caller['name']} names children without a row: {orphans}"
    for row in content["shell"]["queues"]:
        assert row["pending"] >= 0, row
        if row["running"]:
            assert row["running_for"] is not None, row
            assert row["running_for"] >= 0, row
        else:
            assert row["running_for"] is None, row
    for caller in content["callers"]:
        for counter in ("idle_workers", "scheduled", "active"):
            assert caller[counter] >= 0, (counter, caller)
        for queue in caller["queues"]:
            assert queue["pending"] >= 0, queue


def _is_optional(kind: type, row: dict[str, Any], field: str) -> bool:
    """The field is present, and null or of `kind` (never a bool standing in for an int)."""
    if field not in row:
        return False
    value = row[field]
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _is_count(value: object) -> bool:
    return _is_int(value) and value >= 0  # type: ignore[operator]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_create_subshell(content: dict[str, Any]) -> None:
    assert content.get("status") == "ok", content
    assert isinstance(content.get("subshell_id"), str), content
    assert content["subshell_id"], content


def _check_delete_subshell(content: dict[str, Any]) -> None:
    assert content == {"status": "ok"}, content


def _check_list_subshell(content: dict[str, Any]) -> None:
    assert content.get("status") == "ok", content
    ids = content.get("subshell_id")
    assert isinstance(ids, list), content
    assert all(isinstance(i, str) for i in ids), content
    assert len(ids) == len(set(ids)), content


def _check_debug_reply(content: dict[str, Any]) -> None:
    """A DAP response (the Jupyter debug protocol's debug_reply content)."""
    assert content.get("type") == "response", content
    assert _is_int(content.get("request_seq")), content
    assert isinstance(content.get("success"), bool), content
    assert isinstance(content.get("command"), str), content
    if not content["success"]:
        assert isinstance(content.get("message"), str), content
        assert content["message"], content
    assert isinstance(content.get("body", {}), dict), content


def _check_debug_event(content: dict[str, Any]) -> None:
    """A DAP event (the debug_event content)."""
    assert content.get("type") == "event", content
    assert isinstance(content.get("event"), str), content
    assert _is_int(content.get("seq")), content
    assert isinstance(content.get("body", {}), dict), content


_CONTENT_CHECKS = {
    "debug_reply": _check_debug_reply,
    "debug_event": _check_debug_event,
    "create_subshell_reply": _check_create_subshell,
    "delete_subshell_reply": _check_delete_subshell,
    "list_subshell_reply": _check_list_subshell,
    "input_request": _check_input_request,
    "comm_open": lambda c: _check_comm(c, "target_name"),
    "comm_msg": _check_comm,
    "comm_close": _check_comm,
    "usage_reply": _check_usage,
    "caller_state_reply": check_caller_state,
}
