"""Threads whose code must not touch the process's warnings state: the introspection workers.

Python's warnings state (the filter list and `showwarning`) is process-global until Python 3.14.
IPython's completer, jedi and parso wrap their work in `warnings.catch_warnings()` and call
`simplefilter` inside it, which saves and later restores the global filters: run in another
thread while a cell runs, that silently undoes a filter the cell set meanwhile, and
`catch_warnings(record=True)` swallows the cell's own warnings for as long as it is entered.

[install][async_kernel._kernel.quiet_threads.install] wraps the warnings module's entry points once, so
that in a thread marked with [quiet][async_kernel._kernel.quiet_threads.quiet]:

- `catch_warnings()` is entered and left without saving or restoring anything (with
  `record=True` it hands out an empty list);
- `filterwarnings`, `simplefilter` and `resetwarnings` change nothing;
- `warn` / `warn_explicit` drop the warning (logged at debug level), and any warning that still
  reaches display (one raised by C code) is dropped too, so introspection never prints into a
  cell's output.

Every other thread gets the warnings module's own behaviour, unchanged. Thread-safe.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["install", "is_quiet", "quiet"]

logger = logging.getLogger("async_kernel.quiet_threads")

_state = threading.local()
_installed = False
_install_lock = threading.Lock()


def is_quiet() -> bool:
    """True in a thread (or block) marked with `quiet()`."""
    return getattr(_state, "depth", 0) > 0


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Mark the current thread quiet for the duration of the block (nestable)."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


class _CatchWarnings(warnings.catch_warnings):
    """`warnings.catch_warnings` that leaves the global state alone in quiet threads."""

    _passthrough: bool = False

    def __enter__(self) -> Any:
        if is_quiet():
            self._passthrough = True
            return [] if getattr(self, "_record", False) else None
        return super().__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        if self._passthrough:
            self._passthrough = False
            return None
        return super().__exit__(*exc_info)


def _unless_quiet(original: Callable[..., Any], *, dropping: bool = False) -> Callable[..., Any]:
    """`original`, except that in quiet threads it does nothing (logging what it dropped)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if is_quiet():
            if dropping:
                logger.debug("Dropped a warning raised by introspection: %r", args[:1])
            return None
        return original(*args, **kwargs)

    return _named_like(wrapper, original)


def _warn_unless_quiet(original: Callable[..., Any]) -> Callable[..., Any]:
    def warn(
        message: Any,
        category: Any = None,
        stacklevel: int = 1,
        source: Any = None,
        **kwargs: Any,
    ) -> None:
        if is_quiet():
            logger.debug("Dropped a warning raised by introspection: %r", message)
            return
        # One more level: this wrapper's own frame, so the warning names the same line.
        original(message, category, max(stacklevel, 1) + 1, source, **kwargs)

    return _named_like(warn, original)


def _named_like(wrapper: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    wrapper.__name__ = getattr(original, "__name__", "wrapper")
    wrapper.__qualname__ = getattr(original, "__qualname__", wrapper.__name__)
    wrapper.__doc__ = original.__doc__
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    """Wrap the warnings module's entry points (idempotent). Call once, early, from any thread."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        warnings.catch_warnings = _CatchWarnings  # type: ignore[misc,assignment]
        for name in ("filterwarnings", "simplefilter", "resetwarnings"):
            setattr(warnings, name, _unless_quiet(getattr(warnings, name)))
        warnings.warn = _warn_unless_quiet(warnings.warn)
        warnings.warn_explicit = _unless_quiet(warnings.warn_explicit, dropping=True)
        # The C implementation looks `_showwarnmsg` up on the module for every warning it shows.
        warnings._showwarnmsg = _unless_quiet(warnings._showwarnmsg, dropping=True)  # type: ignore[attr-defined]
