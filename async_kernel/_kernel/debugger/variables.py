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

import itertools
import re
import reprlib
import threading
import types
from collections.abc import Iterator, Mapping
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


_LEAVES = (
    str,
    bytes,
    bytearray,
    int,
    float,
    complex,
    bool,
    type(None),
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    type,
)
"""Values shown without children."""


def _has_children(value: Any) -> bool:
    """Whether the variable can be expanded (cheap: nothing is copied)."""
    if isinstance(value, _LEAVES):
        return False
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return True
    attributes = getattr(value, "__dict__", None)
    return isinstance(attributes, dict) and bool(attributes)


def _children(value: Any) -> Iterator[tuple[str, str, Any]]:
    """(name, evaluate suffix, child) for each child of an expandable value, from a copy taken
    when iteration starts (the user's threads may change the container meanwhile)."""
    if isinstance(value, Mapping):
        for k, v in list(value.items()):
            yield _safe_repr(k), f"[{_safe_repr(k)}]", v
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(list(value)):
            yield str(i), f"[{i}]", v
    elif isinstance(value, (set, frozenset)):
        for i, v in enumerate(list(value)):
            yield str(i), "", v
    else:
        for k, v in list(vars(value).items()):
            yield k, f".{k}", v


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
        return [
            self._variable(name, evaluate_name + suffix if suffix else "", child)
            for name, suffix, child in itertools.islice(_children(value), MAX_CHILDREN)
        ]

    def _variable(self, name: str, evaluate_name: str, value: Any) -> dict[str, Any]:
        reference = 0
        if _has_children(value):
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
