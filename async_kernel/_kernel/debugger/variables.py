"""The user's variables as the debugger's Variables panel shows them when no thread is stopped.

When a cell is stopped at a breakpoint, debugpy answers `variables` for the stopped frames.
Otherwise the panel still lists the user namespace (`inspectVariables`), and a container in it
can be expanded (`variables` with the reference given here): a dict by key, a list, tuple or set
by position, any other object by its instance attributes. References are valid until the next
`inspectVariables`.

Everything here runs user code (`repr`, `__len__`, `__getattr__`), so the debugger calls it in a
worker thread with a time limit, never in a thread that routes messages.
"""

from __future__ import annotations

import re
import reprlib
import threading
import types
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["HIDDEN_NAMES", "VariableTable", "is_shown"]

HIDDEN_NAMES = frozenset(
    {
        "__name__",
        "__doc__",
        "__package__",
        "__loader__",
        "__spec__",
        "__annotations__",
        "__builtins__",
        "__builtin__",
        "__display__",
        "get_ipython",
        "exit",
        "quit",
        "In",
        "Out",
        "_oh",
        "_ih",
        "_dh",
        "_",
        "__",
        "___",
    }
)
"""IPython's own names in the user namespace, never listed."""

_HISTORY_NAME = re.compile(r"_\d+$|_i\d*$|_ii+$")
"""IPython's history names: `_3`, `_i3`, `_i`, `_ii`, `_iii`."""

MAX_CHILDREN = 300
"""Children listed for one expanded variable."""

_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlong = 100


def is_shown(name: str) -> bool:
    """Whether a namespace entry is the user's (not IPython's own bookkeeping)."""
    return name not in HIDDEN_NAMES and not _HISTORY_NAME.match(name)


def _safe_repr(value: Any) -> str:
    try:
        return _repr.repr(value)
    except Exception as e:
        return f"<repr failed: {type(e).__name__}: {e}>"


def _children(value: Any) -> Iterable[tuple[str, str, Any]] | None:
    """(name, evaluate suffix, child) for each child of a container, or None if it has none."""
    if isinstance(value, (str, bytes, bytearray, int, float, complex, bool, type(None))):
        return None
    if isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)):
        return None
    if isinstance(value, Mapping):
        return ((_safe_repr(k), f"[{_safe_repr(k)}]", v) for k, v in list(value.items()))
    if isinstance(value, (list, tuple)):
        return ((str(i), f"[{i}]", v) for i, v in enumerate(list(value)))
    if isinstance(value, (set, frozenset)):
        return ((str(i), "", v) for i, v in enumerate(list(value)))
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and attributes:
        return ((k, f".{k}", v) for k, v in list(attributes.items()))
    return None


class VariableTable:
    """Variables listed while no thread is stopped, and the references to expand them.

    Thread-safe (one lock); every method runs user code.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[int, tuple[str, Any]] = {}
        self._next = 1

    def top_level(
        self, namespace: Mapping[str, Any], hidden: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The user's variables in `namespace`, without modules and without what IPython put
        there itself (`hidden`: IPython's `user_ns_hidden`, unless the user rebound the name).
        References from before are forgotten."""
        with self._lock:
            self._refs.clear()
            self._next = 1
        missing = object()
        return [
            self._variable(name, name, value)
            for name, value in list(namespace.items())
            if is_shown(name)
            and not isinstance(value, types.ModuleType)
            and hidden.get(name, missing) is not value
        ]

    def children(self, reference: int) -> list[dict[str, Any]]:
        """The children of the variable with `reference`; [] for an unknown reference."""
        with self._lock:
            entry = self._refs.get(reference)
        if entry is None:
            return []
        evaluate_name, value = entry
        children = _children(value)
        if children is None:
            return []
        out: list[dict[str, Any]] = []
        for name, suffix, child in children:
            if len(out) >= MAX_CHILDREN:
                break
            out.append(self._variable(name, evaluate_name + suffix if suffix else "", child))
        return out

    def _variable(self, name: str, evaluate_name: str, value: Any) -> dict[str, Any]:
        reference = 0
        if _children(value) is not None:
            with self._lock:
                reference = self._next
                self._next += 1
                self._refs[reference] = (evaluate_name, value)
        variable: dict[str, Any] = {
            "name": name,
            "value": _safe_repr(value),
            "type": type(value).__name__,
            "variablesReference": reference,
        }
        if evaluate_name:
            variable["evaluateName"] = evaluate_name
        return variable
