"""The shell channel's questions about code: complete, inspect, is_complete and history.

`complete_request` and `inspect_request` evaluate the user's objects (jedi and IPython's
inspector call properties, `__getattr__`, `__dir__`, `__repr__`), so their answers are computed in
the introspection worker, within its time limit
([Introspector][async_kernel._kernel.introspection.Introspector]); `complete` and `inspect` await
them in the ShellChannel loop, in a task per request. `is_complete_request` and `history_request`
only read the input transformer and the history database: `is_complete` and `history` answer them
in the ShellChannel thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.completer import provisionalcompleter, rectify_completions
from IPython.utils.tokenutil import token_at_cursor

from async_kernel._kernel.messaging import Message

if TYPE_CHECKING:
    from async_kernel._kernel.introspection import Introspector
    from async_kernel._kernel.shell import KernelShell

__all__ = ["ShellQueries"]

_NOT_FOUND: dict[str, Any] = {"status": "ok", "found": False, "data": {}, "metadata": {}}
"""The inspect_reply content when nothing is found (or the answer did not come in time)."""


class ShellQueries:
    """Reply contents for complete, inspect, is_complete and history requests."""

    def __init__(self, shell: KernelShell, introspector: Introspector) -> None:
        self._shell = shell
        self._introspector = introspector

    # --- in the ShellChannel loop, computed in the introspection worker ----------------------

    async def complete(self, msg: Message) -> dict[str, Any]:
        """The complete_reply content; no matches if it is not ready in time. ShellChannel loop."""
        return await self._introspector.answer(self._complete, msg, _empty_completion(msg))

    async def inspect(self, msg: Message) -> dict[str, Any]:
        """The inspect_reply content; not found if it is not ready in time. ShellChannel loop."""
        return await self._introspector.answer(self._inspect, msg, _NOT_FOUND)

    def _complete(self, msg: Message) -> dict[str, Any]:
        code: str = msg["content"].get("code", "")
        cursor_pos = msg["content"].get("cursor_pos")
        if cursor_pos is None:
            cursor_pos = len(code)
        with provisionalcompleter():
            completions = list(
                rectify_completions(code, self._shell.Completer.completions(code, cursor_pos))
            )
        if completions:
            start, end = completions[0].start, completions[0].end
        else:
            start = end = cursor_pos
        return {
            "status": "ok",
            "matches": [c.text for c in completions],
            "cursor_start": start,
            "cursor_end": end,
            "metadata": {
                "_jupyter_types_experimental": [
                    {
                        "start": c.start,
                        "end": c.end,
                        "text": c.text,
                        "type": c.type,
                        "signature": c.signature,
                    }
                    for c in completions
                ]
            },
        }

    def _inspect(self, msg: Message) -> dict[str, Any]:
        content = msg["content"]
        code: str = content.get("code", "")
        cursor_pos = content.get("cursor_pos", len(code))
        name = token_at_cursor(code, cursor_pos)
        shell = self._shell
        try:
            data = shell.object_inspect_mime(name, detail_level=content.get("detail_level", 0))
        except KeyError:
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        if not shell.enable_html_pager:
            data.pop("text/html", None)
        return {"status": "ok", "found": True, "data": data, "metadata": {}}

    # --- in the ShellChannel thread ----------------------------------------------------------

    def is_complete(self, msg: Message) -> dict[str, Any]:
        """The is_complete_reply content. ShellChannel thread."""
        code = msg["content"].get("code", "")
        status, indent = self._shell.input_transformer_manager.check_complete(code)
        reply: dict[str, Any] = {"status": status}
        if status == "incomplete":
            reply["indent"] = " " * (indent or 0)
        return reply

    def history(self, msg: Message) -> dict[str, Any]:
        """The history_reply content (tail, range or search). ShellChannel thread.

        Raises:
            ValueError: an unknown `hist_access_type` (the router makes it an error reply).
        """
        content = msg["content"]
        manager = self._shell.history_manager
        assert manager is not None
        raw = bool(content.get("raw", True))
        output = bool(content.get("output", False))
        kind = content.get("hist_access_type", "tail")
        if kind == "tail":
            history = manager.get_tail(
                int(content.get("n", 10)), raw=raw, output=output, include_latest=True
            )
        elif kind == "range":
            history = manager.get_range(
                int(content.get("session", 0)),
                int(content.get("start", 0)),
                content.get("stop"),
                raw=raw,
                output=output,
            )
            # IPython numbers this session's rows 0; tail and search give its real number.
            current = manager.session_number
            history = [(session or current, line, entry) for session, line, entry in history]
        elif kind == "search":
            history = manager.search(
                content.get("pattern", "*"),
                raw=raw,
                output=output,
                n=content.get("n"),
                unique=bool(content.get("unique", False)),
            )
        else:
            raise ValueError(f"Unknown hist_access_type {kind!r}")
        return {"status": "ok", "history": list(history)}


def _empty_completion(msg: Message) -> dict[str, Any]:
    """The complete_reply content with no matches, at the request's cursor."""
    content = msg["content"]
    cursor = content.get("cursor_pos")
    if not isinstance(cursor, int):
        cursor = len(str(content.get("code", "")))
    return {
        "status": "ok",
        "matches": [],
        "cursor_start": cursor,
        "cursor_end": cursor,
        "metadata": {},
    }
