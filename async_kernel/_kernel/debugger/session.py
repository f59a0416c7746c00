"""The kernel side of the Jupyter debug protocol: `debug_request` in, `debug_reply` out.

JupyterLab's debugger and VS Code send Debug Adapter Protocol requests in `debug_request`s on the
control channel and get `debug_event`s on iopub. The kernel runs debugpy (pydevd) in its own
process, started on the first `initialize`, and talks to debugpy's adapter as its one DAP client
([DapConnection][async_kernel._kernel.debugger.dap.DapConnection]). Some requests it answers
itself, because only the kernel knows the answer (the cells' files, the user namespace when no
thread is stopped) or because the protocol's Jupyter extensions need it: `debugInfo`,
`dumpCell`, `configurationDone`, `inspectVariables`, `richInspectVariables`, `copyToGlobals`,
`modules`, `source`, and `variables` while nothing is stopped. It adjusts others: `attach`
(justMyCode, the kernel's code excluded), `stackTrace` (frames below the outermost cell are the
kernel's and are cut), `variables` (IPython's own names hidden), `setBreakpoints` (remembered for
`debugInfo`), `disconnect` (never terminates the kernel). Everything else goes to debugpy as is.

Everything here runs in the `Debugger` caller's thread (a protected caller the kernel starts on
the first debug request, hidden from the debugger itself), so the control thread only awaits
the answer, and keeps answering interrupts, kernel_info and the rest meanwhile. Requests are
handled one at a time in arrival order (the control channel queues them). What runs user code
(listing the namespace when nothing is stopped) runs in a worker thread with a time limit.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from async_kernel._kernel.debugger.cells import HASH_SEED, CellFiles
from async_kernel._kernel.debugger.dap import DapClosedError, DapConnection
from async_kernel._kernel.debugger.variables import VariableTable, is_shown
from async_kernel._kernel.interrupts import count_as_kernel_code
from async_kernel._kernel.introspection import Introspector
from async_kernel._kernel.messaging import Message
from async_kernel.caller import Caller

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["Debugger", "DebugpyUnavailableError", "debug_info"]

logger = logging.getLogger("async_kernel.debugger")

Request = dict[str, Any]
Response = dict[str, Any]

ATTACH_TIMEOUT = 30.0
"""Seconds `attach` waits for debugpy's adapter to finish its start-up sequence."""

USER_CODE_TIME_LIMIT = 5.0
"""Seconds a listing of the user's variables (which runs their `repr`s) may take."""

RESUMING = frozenset({"continue", "next", "stepIn", "stepOut", "stepBack", "reverseContinue"})
"""Requests after whose success the thread they name runs again."""

KERNEL_PATHS = tuple(
    os.path.dirname(os.path.abspath(module.__file__)) + os.sep
    for module in (sys.modules["async_kernel"],)
    if module.__file__
)
"""The kernel's own code: excluded from stepping and from stack traces."""


class DebugpyUnavailableError(RuntimeError):
    """debugpy cannot be imported or cannot start its adapter."""


class Debugger:
    """The kernel's debug session: debugpy, the connection to its adapter, the breakpoints and
    the stopped threads. One per kernel.

    Every method runs in `caller`'s thread (the kernel's `Debugger` caller), except where said.
    """

    def __init__(
        self,
        *,
        caller: Caller,
        shell: InteractiveShell,
        publish_event: Callable[[dict[str, Any], Message | None], None],
        cell_files: CellFiles,
        just_my_code: bool = True,
    ) -> None:
        self._caller = caller
        self._shell = shell
        self._publish_event = publish_event
        self.cell_files = cell_files
        self.just_my_code = just_my_code
        """justMyCode when the frontend's `attach` does not say."""
        self._endpoint: tuple[str, int] | None = None
        self._connection: DapConnection | None = None
        self._initialize_body: dict[str, Any] | None = None
        self._attached = False
        self.started = False
        """Between a successful `initialize` and `disconnect` (debugInfo's `isStarted`)."""
        self.breakpoints: dict[str, list[dict[str, Any]]] = {}
        """Source path → the breakpoints debugpy set there (debugInfo's `breakpoints`)."""
        self.stopped_threads: set[int] = set()
        """The ids of the threads stopped in the debugger. Read from any thread."""
        self._initialized = anyio.Event()
        self._parent: Message | None = None
        self._variables = VariableTable()
        self._inspector = Introspector(
            caller, time_limit=USER_CODE_TIME_LIMIT, name="Debugger-inspect"
        )
        """Runs what lists the user's variables: a protected child of the Debugger caller, so
        hidden from the debugger too, and never counted as the user's work."""
        self._globals: set[object] = set()
        """The variablesReferences of the scopes that are the user namespace: stopped frames'
        Globals, and the Locals of cells' own frames (valid while stopped)."""
        self._module_frames: set[object] = set()
        """The ids of stopped frames that are cells' own (`<module>`) frames."""
        self._removed_transforms: list[tuple[int, Any]] = []
        self._handlers: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "initialize": self._initialize,
            "attach": self._attach,
            "configurationDone": self._configuration_done,
            "debugInfo": self._debug_info,
            "dumpCell": self._dump_cell,
            "setBreakpoints": self._set_breakpoints,
            "source": self._source,
            "stackTrace": self._stack_trace,
            "scopes": self._scopes,
            "variables": self._variables_request,
            "inspectVariables": self._inspect_variables,
            "richInspectVariables": self._rich_inspect_variables,
            "copyToGlobals": self._copy_to_globals,
            "modules": self._modules,
            "disconnect": self._disconnect,
        }
        self._without_session = frozenset(
            {
                "initialize",
                "debugInfo",
                "dumpCell",
                "inspectVariables",
                "richInspectVariables",
                "variables",
                "modules",
                "source",
                "configurationDone",
            }
        )
        """Requests answered whether or not a session is started."""

    # --- the entry point ----------------------------------------------------------------------

    async def handle(self, request: object, parent: Message | None) -> Response:
        """The DAP response to one frontend request. Never raises: a bad request or a failure
        becomes a response with `success: false` and a message saying why.

        Cancellation: the request is abandoned (a forwarded request's response is dropped).
        """
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return _error({}, "a debug_request's content must be a DAP request with a command")
        self._parent = parent
        command: str = request["command"]
        if not isinstance(request.get("arguments", {}), dict):
            return _error(request, f"{command}: 'arguments' must be an object")
        try:
            handler = self._handlers.get(command)
            if not self.started and command not in self._without_session:
                return _error(request, f"{command}: the debugger is not started (send initialize)")
            if handler is not None:
                return await handler(request)
            response = await self._forward(request)
            if command in RESUMING and response.get("success"):
                self._resumed(request, response)
            return response
        except DapClosedError as e:
            logger.warning("debug_request %s: %s", command, e)
            self._lost_connection()
            return _error(request, f"{command}: {e}")
        except (KeyError, TypeError, ValueError) as e:
            return _error(request, f"{command}: bad arguments: {e!r}")
        except Exception as e:
            logger.exception("Error handling the debug request %s", command)
            return _error(request, f"{command}: {type(e).__name__}: {e}")

    def _resumed(self, request: Request, response: Response) -> None:
        """A thread goes on: it is no longer stopped once the request is answered (the
        `continued` event, if any, comes later), so a debugInfo sent next says so."""
        self._globals.clear()
        self._module_frames.clear()
        body = response.get("body") or {}
        if request["command"] == "continue" and body.get("allThreadsContinued", True):
            self.stopped_threads.clear()
        else:
            self.stopped_threads.discard(self._arguments(request).get("threadId", -1))

    def _arguments(self, request: Request) -> dict[str, Any]:
        arguments = request.get("arguments")
        return arguments if isinstance(arguments, dict) else {}

    async def _forward(self, request: Request) -> Response:
        if self._connection is None or self._connection.closed:
            raise DapClosedError("the debugger has no connection to debugpy")
        return await self._connection.forward(request)

    # --- starting and stopping ----------------------------------------------------------------

    async def _initialize(self, request: Request) -> Response:
        if self.started and self._initialize_body is not None:
            return _ok(request, self._initialize_body)  # a second frontend joins the session
        try:
            host, port = self._listen()
        except DebugpyUnavailableError as e:
            return _error(request, f"initialize: could not start debugpy: {e}")
        if self._connection is None or self._connection.closed:
            self._initialized = anyio.Event()
            self._attached = False
            connection = await DapConnection.connect(host, port, self._on_event)
            self._connection = connection
            self._caller.call_soon(connection.run)
        response = await self._forward(request)
        if response.get("success"):
            self._initialize_body = response.get("body") or {}
            self.started = True
            self._keep_leading_empty_lines()
            logger.info("The debugger started")
        return response

    def _listen(self) -> tuple[str, int]:
        """Start debugpy in this process, once (it cannot be stopped); its adapter's address."""
        if self._endpoint is not None:
            return self._endpoint
        # pydevd warns on stderr (into the cell's output) that frozen modules may miss
        # breakpoints: only the standard library's own frozen modules are affected.
        os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        try:
            import debugpy

            # The user's child processes are theirs: debugpy must not inject itself into them.
            debugpy.configure(subProcess=False)
            host, port = debugpy.listen(("127.0.0.1", 0))
        except Exception as e:
            raise DebugpyUnavailableError(f"{type(e).__name__}: {e}") from e
        count_as_kernel_code(os.path.dirname(debugpy.__file__))
        self._endpoint = (str(host), int(port))
        logger.info("debugpy's adapter listens on %s:%s", host, port)
        return self._endpoint

    async def _attach(self, request: Request) -> Response:
        if self._attached:
            return _ok(request)
        connection = self._connection
        if connection is None or connection.closed:
            raise DapClosedError("the debugger has no connection to debugpy")
        arguments = dict(self._arguments(request))
        arguments.setdefault("justMyCode", self.just_my_code)
        arguments["subProcess"] = False
        rules = list(arguments.get("rules") or [])
        rules += [{"path": path, "include": False} for path in KERNEL_PATHS]
        arguments["rules"] = rules
        # debugpy's adapter answers attach after its start-up sequence: `initialized`, then the
        # client's configurationDone. The kernel sends that itself, so breakpoints set later
        # (JupyterLab's configurationDone, answered here) still apply.
        attach = await connection.send({**request, "arguments": arguments})
        with anyio.fail_after(ATTACH_TIMEOUT):
            await self._initialized.wait()
            done = await connection.request("configurationDone")
            response = await connection.wait(attach)
        if not done.get("success"):
            logger.warning("debugpy refused configurationDone: %r", done)
        self._attached = bool(response.get("success"))
        return {**response, "request_seq": request.get("seq", 0)}

    async def _configuration_done(self, request: Request) -> Response:
        return _ok(request)

    async def _disconnect(self, request: Request) -> Response:
        arguments = {**self._arguments(request), "restart": False, "terminateDebuggee": False}
        response: Response
        try:
            response = await self._forward({**request, "arguments": arguments})
        except DapClosedError:
            response = _ok(request)
        await self._end_session()
        logger.info("The debugger stopped")
        return response

    async def _end_session(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with anyio.CancelScope(shield=True):
                await connection.aclose()
        self._reset()

    def _lost_connection(self) -> None:
        if self._connection is not None and self._connection.closed:
            self._connection = None
            self._reset()

    def _reset(self) -> None:
        self.started = False
        self._attached = False
        self._initialize_body = None
        self.breakpoints.clear()
        self.stopped_threads.clear()
        self._restore_leading_empty_lines()

    async def release_for_shutdown(self) -> None:
        """End the session so that the threads stopped at breakpoints go on and none stops
        again: the kernel shuts down, and its cells must come back to be interrupted."""
        connection = self._connection
        if connection is not None and not connection.closed:
            with contextlib.suppress(DapClosedError), anyio.move_on_after(ATTACH_TIMEOUT):
                await connection.request(
                    "disconnect", {"restart": False, "terminateDebuggee": False}
                )
        await self._end_session()

    async def close(self) -> None:
        """End the session and stop the inspection worker (the kernel shuts down; it removes
        the cells' files itself, debugger or not)."""
        await self._end_session()
        self._inspector.stop()

    # --- IPython's input transforms -----------------------------------------------------------

    def _keep_leading_empty_lines(self) -> None:
        """While debugging, compile a cell with its leading empty lines, so its line numbers
        are those of the cell the frontend shows (and of its file)."""
        from IPython.core.inputtransformer2 import leading_empty_lines

        transforms = self._shell.input_transformer_manager.cleanup_transforms
        if leading_empty_lines in transforms:
            index = transforms.index(leading_empty_lines)
            self._removed_transforms.append((index, transforms.pop(index)))

    def _restore_leading_empty_lines(self) -> None:
        transforms = self._shell.input_transformer_manager.cleanup_transforms
        while self._removed_transforms:
            index, transform = self._removed_transforms.pop()
            transforms.insert(index, transform)

    # --- events -------------------------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        """An event from the adapter, in arrival order: keep track, then publish it."""
        name = event.get("event")
        raw_body = event.get("body")
        body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
        if name == "initialized":
            self._initialized.set()
        elif name == "stopped":
            thread_id = body.get("threadId")
            if isinstance(thread_id, int):
                self.stopped_threads.add(thread_id)
            if body.get("allThreadsStopped"):
                self._caller.call_soon(self._note_all_stopped)
        elif name == "continued":
            self._globals.clear()
            self._module_frames.clear()
            if body.get("allThreadsContinued", True):
                self.stopped_threads.clear()
            else:
                self.stopped_threads.discard(body.get("threadId", -1))
        elif name in ("terminated", "exited"):
            self.stopped_threads.clear()
        self._publish_event(event, self._parent)

    async def _note_all_stopped(self) -> None:
        """All threads stopped: every listed thread is (debugInfo's `stoppedThreads`)."""
        connection = self._connection
        if connection is None:
            return
        with contextlib.suppress(DapClosedError):
            response = await connection.request("threads")
            for thread in (response.get("body") or {}).get("threads", []):
                if isinstance(thread.get("id"), int):
                    self.stopped_threads.add(thread["id"])

    async def resume_for_interrupt(self) -> None:
        """Continue the stopped threads so that a pending interrupt can reach the cell's code
        (it never lands inside debugpy). Called on interrupt_request."""
        connection = self._connection
        if not self.stopped_threads or connection is None or connection.closed:
            return
        thread_id = next(iter(self.stopped_threads))
        with contextlib.suppress(DapClosedError):
            await connection.request("continue", {"threadId": thread_id})

    # --- what the kernel answers itself -------------------------------------------------------

    async def _debug_info(self, request: Request) -> Response:
        return debug_info(
            request, self.cell_files, self.started, self.breakpoints, self.stopped_threads
        )

    async def _dump_cell(self, request: Request) -> Response:
        code = self._arguments(request)["code"]
        if not isinstance(code, str):
            return _error(request, "dumpCell: 'code' must be a string")
        return _ok(request, {"sourcePath": self.cell_files.dump(code)})

    async def _set_breakpoints(self, request: Request) -> Response:
        path = self._arguments(request)["source"]["path"]
        if not isinstance(path, str):
            return _error(request, "setBreakpoints: 'source.path' must be a string")
        response = await self._forward(request)
        if response.get("success"):
            placed = (response.get("body") or {}).get("breakpoints", [])
            lines = [{"line": b["line"]} for b in placed if isinstance(b.get("line"), int)]
            if lines:
                self.breakpoints[path] = lines
            else:
                self.breakpoints.pop(path, None)
        return response

    async def _source(self, request: Request) -> Response:
        path = self._arguments(request)["source"]["path"]
        if not isinstance(path, str):
            return _error(request, "source: 'source.path' must be a string")
        try:
            content = await anyio.Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            return _error(request, f"source unavailable: {e}")
        return _ok(request, {"content": content})

    async def _stack_trace(self, request: Request) -> Response:
        response = await self._forward(request)
        body = response.get("body")
        if not response.get("success") or not isinstance(body, dict):
            return response
        frames = body.get("stackFrames") or []
        kept = [f for f in frames if not _path_of(f).startswith(KERNEL_PATHS)]
        # Innermost first: what lies below the outermost cell frame is the kernel running it.
        cells = [i for i, f in enumerate(kept) if self.cell_files.is_cell(_path_of(f))]
        if cells:
            kept = kept[: cells[-1] + 1]
        self._module_frames.update(
            f.get("id")
            for f in kept
            if f.get("name") == "<module>" and self.cell_files.is_cell(_path_of(f))
        )
        if len(kept) != len(frames):
            start = self._arguments(request).get("startFrame", 0)
            body = {**body, "stackFrames": kept, "totalFrames": (start or 0) + len(kept)}
            response = {**response, "body": body}
        return response

    async def _variables_request(self, request: Request) -> Response:
        if not self.stopped_threads:
            reference = self._arguments(request).get("variablesReference", 0)
            variables = await self._in_worker(self._variables.children, int(reference))
            return _ok(request, {"variables": variables})
        response = await self._forward(request)
        body = response.get("body")
        reference = self._arguments(request).get("variablesReference")
        if response.get("success") and isinstance(body, dict) and reference in self._globals:
            # A stopped frame's globals are the user namespace: IPython's own names hidden.
            shell = self._shell
            missing = object()
            shown = [
                v
                for v in body.get("variables", [])
                if is_shown(name := str(v.get("name", "")))
                and shell.user_ns_hidden.get(name, missing) is not shell.user_ns.get(name)
            ]
            response = {**response, "body": {**body, "variables": shown}}
        return response

    async def _scopes(self, request: Request) -> Response:
        response = await self._forward(request)
        # A cell's own frame runs in the user namespace: its Locals are its Globals.
        in_namespace = {"Globals"}
        if self._arguments(request).get("frameId") in self._module_frames:
            in_namespace.add("Locals")
        for scope in (response.get("body") or {}).get("scopes", []):
            if isinstance(scope, dict) and scope.get("name") in in_namespace:
                self._globals.add(scope.get("variablesReference"))
        return response

    async def _inspect_variables(self, request: Request) -> Response:
        shell = self._shell
        variables = await self._in_worker(
            self._variables.top_level, shell.user_ns, shell.user_ns_hidden
        )
        return _ok(request, {"variables": variables})

    async def _rich_inspect_variables(self, request: Request) -> Response:
        arguments = self._arguments(request)
        name = arguments["variableName"]
        if not isinstance(name, str) or not name.isidentifier():
            # debugpy's groupings ("special variables") have no rich form.
            return _ok(request, {"data": {}, "metadata": {}})
        data: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        frame_id = arguments.get("frameId")
        if self.stopped_threads and frame_id is not None:
            # The variable as the stopped frame sees it, formatted by IPython in that frame.
            reply = await self._forward(
                {
                    "command": "evaluate",
                    "arguments": {
                        "expression": f"get_ipython().display_formatter.format({name})",
                        "frameId": frame_id,
                        "context": "clipboard",
                    },
                }
            )
            if reply.get("success"):
                with contextlib.suppress(ValueError, SyntaxError, TypeError, MemoryError):
                    data, metadata = ast.literal_eval(reply["body"]["result"])
        else:
            data, metadata = await self._in_worker(self._format_global, name)
        metadata = {k: v for k, v in metadata.items() if k in data}
        return _ok(request, {"data": data, "metadata": metadata})

    def _format_global(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        namespace = self._shell.user_ns
        if name not in namespace:
            return {}, {}
        formatter = self._shell.display_formatter
        if formatter is None:
            return {}, {}
        data, metadata = formatter.format(namespace[name])  # type: ignore[no-untyped-call]
        return dict(data), dict(metadata)

    async def _copy_to_globals(self, request: Request) -> Response:
        arguments = self._arguments(request)
        target, source = arguments["dstVariableName"], arguments["srcVariableName"]
        if not all(isinstance(n, str) and n.isidentifier() for n in (target, source)):
            return _error(request, "copyToGlobals: the variable names must be identifiers")
        response = await self._forward(
            {
                "seq": request.get("seq", 0),
                "command": "setExpression",
                "arguments": {
                    "expression": f"globals()[{target!r}]",
                    "value": source,
                    "frameId": arguments["srcFrameId"],
                },
            }
        )
        return {**response, "command": request["command"]}

    async def _modules(self, request: Request) -> Response:
        arguments = self._arguments(request)
        modules = list(sys.modules.copy().values())
        start = int(arguments.get("startModule", 0) or 0)
        count = int(arguments.get("moduleCount", 0) or 0) or len(modules)
        listed = []
        for index, module in enumerate(modules[start : start + count], start):
            origin = getattr(getattr(module, "__spec__", None), "origin", None)
            if isinstance(origin, str) and origin.endswith(".py"):
                listed.append({"id": index, "name": module.__name__, "path": origin})
        return _ok(request, {"modules": listed, "totalModules": len(modules)})

    async def _in_worker(self, func: Callable[..., Any], *args: Any) -> Any:
        """`func(*args)` (user code) in the `Debugger-inspect` worker, within
        `USER_CODE_TIME_LIMIT`; past it the request fails and the worker is retired (as the
        introspection workers are)."""

        def run(_: Message) -> dict[str, Any]:
            return {"value": func(*args)}

        outcome = await self._inspector.answer(run, self._parent or {}, {})
        if "value" not in outcome:
            raise TimeoutError(f"the user's objects took more than {USER_CODE_TIME_LIMIT} s")
        return outcome["value"]


def debug_info(
    request: Request,
    cell_files: CellFiles,
    started: bool = False,
    breakpoints: dict[str, list[dict[str, Any]]] | None = None,
    stopped_threads: set[int] | None = None,
) -> Response:
    """The `debugInfo` response: how the frontend finds the cells' files, and the session's
    state (none yet, by default: what the kernel answers before any debugger exists, which
    JupyterLab asks of every kernel it connects to). Any thread."""
    return _ok(
        request,
        {
            "isStarted": started,
            "hashMethod": "Murmur2",
            "hashSeed": HASH_SEED,
            "tmpFilePrefix": cell_files.prefix,
            "tmpFileSuffix": cell_files.suffix,
            "breakpoints": [
                {"source": path, "breakpoints": list(placed)}
                for path, placed in (breakpoints or {}).items()
            ],
            "stoppedThreads": sorted(stopped_threads or ()),
            "richRendering": True,
            "exceptionPaths": ["Python Exceptions"],
            "copyToGlobals": True,
        },
    )


def _path_of(frame: object) -> str:
    source = frame.get("source") if isinstance(frame, dict) else None
    path = source.get("path") if isinstance(source, dict) else None
    return path if isinstance(path, str) else ""


def _ok(request: Request, body: dict[str, Any] | None = None) -> Response:
    response: Response = {
        "seq": 0,
        "type": "response",
        "request_seq": request.get("seq", 0),
        "success": True,
        "command": request.get("command", ""),
    }
    if body is not None:
        response["body"] = body
    return response


def _error(request: Request, message: str) -> Response:
    return {
        "seq": 0,
        "type": "response",
        "request_seq": request.get("seq", 0),
        "success": False,
        "command": request.get("command", ""),
        "message": message,
        "body": {},
    }
