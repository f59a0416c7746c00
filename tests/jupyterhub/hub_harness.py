"""A real JupyterHub on loopback for tests: its proxy, single-user servers and kernels.

- [Hub][]: ``python -m jupyterhub`` as a subprocess in a temporary directory, with a generated
  ``jupyterhub_config.py``: loopback only, free random ports for the proxy's public and API
  ports and for the hub, the dummy authenticator, ``SimpleLocalProcessSpawner`` (homes in the
  temporary directory, ``--allow-root``), a service token for the tests, custom scopes for
  jupyter_server permissions, and short activity intervals. Each single-user server runs this
  project's ``async_kernel_server`` extension, in an isolated Jupyter environment holding the
  ``async`` kernelspec. Ready once the hub's API answers through the proxy; stopped by its own
  pid, then every process it started (the proxy, the single-user servers, their kernels) by
  theirs.
- ``http``, ``wait_for``, ``KernelChannel``: from ``tests/support/loopback.py`` (re-exported).
- [Kernels][]: start ``async`` kernels on a user's server over REST, read their snapshots, shut
  them all down afterwards.

Everything is synchronous on purpose: the suites share one pytest session, and an earlier suite
may leave an asyncio event loop set in the main thread. Nothing here sleeps to synchronise:
every wait polls a condition, with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import psutil
from loopback import (
    free_ports,
    http,
    parse_time,
    wait_for,
)

from async_kernel.kernelspec import make_kernel_spec

HERE = Path(__file__).parent.resolve()
REPO = HERE.parent.parent

CHP_ENV = "CONFIGURABLE_HTTP_PROXY"
"""The environment variable naming the configurable-http-proxy executable."""

CHP_NAME = "configurable-http-proxy"
CHP_LOCAL = REPO / ".venv" / "node" / "node_modules" / ".bin" / CHP_NAME
"""Where ``scripts/ensure-chp.sh`` installs it."""

CHP_MISSING = (
    "configurable-http-proxy (JupyterHub's proxy, an npm package) was not found: the JupyterHub "
    "tests need it. Install it with `bash scripts/ensure-chp.sh` (needs node and npm: "
    "`apt-get install nodejs npm`), which puts it into .venv/node and prints its path, then "
    "run the tests with CONFIGURABLE_HTTP_PROXY=<that path> (scripts/test.sh does both) or with "
    "its folder on PATH."
)

HUB_START_TIMEOUT = 90.0
"""Seconds the hub and its proxy may take to answer through the proxy's public port."""

SERVER_START_TIMEOUT = 120.0
"""Seconds a single-user server may take to be ready (generous: loaded CI machines)."""

STOP_TIMEOUT = 30.0
"""Seconds the hub gets to stop its servers and proxy and exit after SIGTERM."""

ACTIVITY_INTERVAL = 1
"""Seconds between the single-user servers' activity reports to the hub
(``JUPYTERHUB_ACTIVITY_INTERVAL``) and between passes of the extension's activity monitor
(``AsyncKernelServer.activity_interval``)."""

PROXY_HARVEST_INTERVAL = 2
"""``JupyterHub.last_activity_interval``: seconds between the hub's reads of the proxy's
per-route activity."""

SERVICE_NAME = "hub-tests"
"""The hub service whose token the tests use to manage users, servers and tokens."""

CUSTOM_SCOPES: dict[str, dict[str, Any]] = {
    "custom:jupyter_server:read:kernels": {
        "description": "See the kernels of a Jupyter server and their state (read-only).",
    },
    "custom:jupyter_server:write:kernels": {
        "description": "Start, stop and restart kernels of a Jupyter server.",
        "subscopes": ["custom:jupyter_server:read:kernels"],
    },
    "custom:jupyter_server:execute:kernels": {
        "description": "Run code in the kernels of a Jupyter server (their websockets).",
        "subscopes": [
            "custom:jupyter_server:write:kernels",
            "custom:jupyter_server:read:kernels",
        ],
    },
    "custom:jupyter_server:read:contents": {
        "description": "Read the files of a Jupyter server.",
    },
}
"""``JupyterHub.custom_scopes``: jupyter_server permissions as JupyterHub scopes, in the
``custom:jupyter_server:{action}:{resource}`` form the granular authorizer asks for."""

GRANULAR_AUTHORIZER = "hub_granular_authorizer.GranularJupyterHubAuthorizer"
"""``ServerApp.authorizer_class`` of the single-user servers of ``Hub.granular_users``."""

ALICE, BOB, CAROL, GRACE = "alice", "bob", "carol", "grace"
"""The test users (see tests/jupyterhub/conftest.py for what each one is for)."""
SERVER_USERS = (ALICE, CAROL, GRACE)
"""The users whose default servers the session starts."""
GRANULAR_USERS = (GRACE,)
"""The users whose servers use the granular authorizer."""


def find_chp() -> str | None:
    """The configurable-http-proxy executable: ``$CONFIGURABLE_HTTP_PROXY``, else
    ``configurable-http-proxy`` on PATH, else where ``scripts/ensure-chp.sh`` installs it."""
    explicit = os.environ.get(CHP_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which(CHP_NAME)
    if found:
        return found
    return str(CHP_LOCAL) if os.access(CHP_LOCAL, os.X_OK) else None


class ApiError(AssertionError):
    """A hub API request answered with an unexpected status."""


class Hub:
    """A JupyterHub subprocess with its proxy on loopback, in a temporary directory.

    Args:
        chp: the configurable-http-proxy executable.
        granular_users: users whose single-user servers use the granular authorizer
            (`hub_granular_authorizer`); the others use jupyterhub-singleuser's default, where
            ``access:servers`` is all a token needs.
    """

    def __init__(self, chp: str, granular_users: Iterable[str] = ()) -> None:
        self.chp = chp
        self.granular_users = sorted(granular_users)
        self.root = Path(tempfile.mkdtemp(prefix="async-kernel-hub-"))
        self.public_port, self.proxy_api_port, self.hub_port = free_ports(3)
        self.public_url = f"http://127.0.0.1:{self.public_port}/"
        self.service_token = secrets.token_hex(32)
        self.marker = uuid.uuid4().hex
        """Set in the environment of the hub and of every server; finds their processes."""
        self.log_path = self.root / "jupyterhub.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._pids: dict[int, float] = {}
        """Processes seen started by the hub: pid -> create time (to tell pid reuse apart)."""
        self._write_files()

    # -- setup ------------------------------------------------------------------------------

    @property
    def jupyter_dirs(self) -> dict[str, Path]:
        """The single-user servers' isolated Jupyter directories."""
        return {
            name: self.root / "jupyter" / name for name in ("config", "data", "runtime", "ipython")
        }

    def server_environment(self) -> dict[str, str]:
        """The environment of every single-user server (JupyterHub passes no other variable
        of its own environment but those it sets)."""
        dirs = self.jupyter_dirs
        return {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
            "PYTHONPATH": str(HERE),  # hub_granular_authorizer
            "PYTHONUNBUFFERED": "1",
            "JUPYTER_PLATFORM_DIRS": "1",
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_CONFIG_PATH": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_PATH": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTERHUB_ACTIVITY_INTERVAL": str(ACTIVITY_INTERVAL),
            "ASYNC_KERNEL_HUB_TEST": self.marker,
        }

    def _write_files(self) -> None:
        for path in self.jupyter_dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        (self.root / "home").mkdir()
        spec_dir = self.jupyter_dirs["data"] / "kernels" / "async"
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(
            json.dumps(make_kernel_spec("asyncio"), indent=1), "utf8"
        )
        server_config = {
            "ServerApp": {
                "jpserver_extensions": {
                    "async_kernel_server": True,
                    # Not needed by the tests, and they make each server start slower.
                    "jupyterlab": False,
                    "jupyter_lsp": False,
                    "notebook": False,
                },
            },
            "AsyncKernelServer": {"activity_interval": float(ACTIVITY_INTERVAL)},
            "KernelSpecManager": {"ensure_native_kernel": False},
        }
        (self.jupyter_dirs["config"] / "jupyter_server_config.json").write_text(
            json.dumps(server_config, indent=1), "utf8"
        )
        (self.root / "jupyterhub_config.py").write_text(self.config_text(), "utf8")

    def config_text(self) -> str:
        """The generated ``jupyterhub_config.py``."""
        roles = [
            {
                "name": SERVICE_NAME,
                "description": "the tests: manage users and servers, mint tokens, read routes",
                "scopes": ["admin:users", "admin:servers", "tokens", "proxy"],
                "services": [SERVICE_NAME],
            },
            {
                # Every user may use their own server fully, and so may hand out tokens with
                # any of the custom scopes of their own server ("!user" is the owner).
                "name": "user",
                "scopes": [
                    "self",
                    "custom:jupyter_server:execute:kernels!user",
                    "custom:jupyter_server:read:contents!user",
                ],
            },
        ]
        home = str(self.root / "home" / "{username}")
        return f'''# Generated by tests/jupyterhub/hub_harness.py for one test session.
c = get_config()  # noqa: F821

c.JupyterHub.bind_url = "http://127.0.0.1:{self.public_port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {self.hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{self.chp!r}]
c.ConfigurableHTTPProxy.auth_token = {secrets.token_hex(32)!r}
c.ConfigurableHTTPProxy.pid_file = {str(self.root / "proxy.pid")!r}
c.JupyterHub.db_url = {"sqlite:///" + str(self.root / "jupyterhub.sqlite")!r}
c.JupyterHub.cookie_secret_file = {str(self.root / "cookie_secret")!r}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {home!r}
c.Spawner.cmd = [{sys.executable!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root"]
c.Spawner.environment = {self.server_environment()!r}
c.Spawner.start_timeout = {int(SERVER_START_TIMEOUT)}
c.Spawner.http_timeout = {int(SERVER_START_TIMEOUT)}
c.Spawner.default_url = "/api/status"

GRANULAR_USERS = {self.granular_users!r}
GRANULAR_ARG = "--ServerApp.authorizer_class={GRANULAR_AUTHORIZER}"


def pre_spawn_hook(spawner):
    """The servers of GRANULAR_USERS check custom scopes per jupyter_server permission."""
    if spawner.user.name in GRANULAR_USERS and GRANULAR_ARG not in spawner.args:
        spawner.args = [*spawner.args, GRANULAR_ARG]


c.Spawner.pre_spawn_hook = pre_spawn_hook

# Activity: the proxy's per-route activity is read every {PROXY_HARVEST_INTERVAL} s, servers
# report theirs every {ACTIVITY_INTERVAL} s (JUPYTERHUB_ACTIVITY_INTERVAL above). Resolution 0:
# the hub records every authenticated request's activity (of tokens and users), so that the
# tests see each activity report of a server as its server token's last_activity.
c.JupyterHub.last_activity_interval = {PROXY_HARVEST_INTERVAL}
c.JupyterHub.activity_resolution = 0

c.JupyterHub.custom_scopes = {CUSTOM_SCOPES!r}
c.JupyterHub.services = [{{"name": {SERVICE_NAME!r}, "api_token": {self.service_token!r}}}]
c.JupyterHub.load_roles = {roles!r}
'''

    def hub_environment(self) -> dict[str, str]:
        """The hub's environment: this one, without Jupyter variables of the test run."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("JUPYTER", "JPY_", "CONFIGPROXY_"))
        }
        env["ASYNC_KERNEL_HUB_TEST"] = self.marker
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the hub (which starts its proxy) and wait until its API answers through the
        proxy's public port, or fail with its log."""
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.root / "jupyterhub_config.py")],
            cwd=self.root,
            env=self.hub_environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + HUB_START_TIMEOUT
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"jupyterhub exited with {code}:\n{self.log_tail()}")
            try:
                answer = http("GET", self.public_url + "hub/api/", timeout=5.0)
                if answer.status == 200 and "version" in answer.json():
                    return
                last = f"HTTP {answer.status}"
            except (OSError, ValueError) as err:
                last = repr(err)
            self._remember_processes()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(0.2)  # the polling interval; returns early if it exits
        raise TimeoutError(
            f"JupyterHub did not answer within {HUB_START_TIMEOUT:.0f} s ({last}):\n"
            f"{self.log_tail()}"
        )

    def _remember_processes(self) -> None:
        """Note the hub's descendants and every process carrying the marker."""
        found: list[psutil.Process] = []
        if self.process is not None:
            with contextlib.suppress(psutil.Error):
                found.extend(psutil.Process(self.process.pid).children(recursive=True))
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.environ().get("ASYNC_KERNEL_HUB_TEST") == self.marker:
                    found.append(proc)
        for proc in found:
            with contextlib.suppress(psutil.Error):
                self._pids.setdefault(proc.pid, proc.create_time())

    def stop(self) -> None:
        """SIGTERM the hub by its pid (it stops its servers and its proxy), SIGKILL its
        process group if it does not exit; then end, by pid, every process it started that
        is still alive; then delete the temporary directory."""
        self._remember_processes()
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        self._remember_processes()
        left: list[psutil.Process] = []
        for pid, created in self._pids.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    proc.terminate()
                    left.append(proc)
        _, alive = psutil.wait_procs(left, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 80) -> str:
        """The last lines the hub (and its proxy and servers) wrote."""
        if self._log is not None:
            self._log.flush()
        try:
            text = self.log_path.read_text("utf8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- the hub's REST API -----------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, *, ok: Iterable[int] = (200,)) -> Any:
        """Call ``/hub/api/{path}`` with the service token; the parsed answer, or ApiError."""
        answer = http(
            method, f"{self.public_url}hub/api/{path}", token=self.service_token, body=body
        )
        if answer.status not in set(ok):
            raise ApiError(f"{method} hub/api/{path}: HTTP {answer.status}: {answer.text[:800]}")
        return answer.json()

    def create_users(self, names: Iterable[str]) -> None:
        """Create the users (those that exist already are left alone)."""
        missing = [
            n
            for n in names
            if http("GET", f"{self.public_url}hub/api/users/{n}", token=self.service_token).status
            == 404
        ]
        if missing:
            self.api("POST", "users", {"usernames": missing}, ok=(201,))

    def start_server(self, name: str) -> None:
        """Ask the hub to start the user's default server (returns before it is ready)."""
        self.api("POST", f"users/{name}/server", ok=(201, 202))

    def wait_server(self, name: str, token: str) -> None:
        """Wait until the user's server is ready in the hub and answers through the proxy."""

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited:\n{self.log_tail()}")
            self._remember_processes()
            server = self.user(name).get("servers", {}).get("")
            if not server or not server.get("ready"):
                return False
            # 403: a granular server (`granular_users`) answers, refusing `read` on `api`
            # to a token with just access:servers.
            answer = http("GET", self.user_url(name, "api/status"), token=token)
            return answer.status == 200 or (name in self.granular_users and answer.status == 403)

        try:
            wait_for(ready, SERVER_START_TIMEOUT, f"the server of {name} was not ready")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.log_tail()}") from None

    def token(self, name: str, scopes: list[str], note: str = "tests/jupyterhub") -> str:
        """Mint an API token owned by user ``name`` with exactly ``scopes``."""
        model = self.api(
            "POST",
            f"users/{name}/tokens",
            {"scopes": scopes, "note": note, "expires_in": 3600},
            ok=(200, 201),
        )
        return str(model["token"])

    def user(self, name: str) -> dict[str, Any]:
        """``GET /hub/api/users/{name}`` (the service's request is no activity of the user)."""
        model: dict[str, Any] = self.api("GET", f"users/{name}")
        return model

    def server_activity(self, name: str) -> datetime:
        """The hub's ``last_activity`` of the user's default server."""
        value = parse_time(self.user(name)["servers"][""]["last_activity"])
        assert value is not None, f"the server of {name} has no last_activity"
        return value

    def user_activity(self, name: str) -> datetime:
        """The hub's user-level ``last_activity``."""
        value = parse_time(self.user(name)["last_activity"])
        assert value is not None, f"{name} has no last_activity"
        return value

    def last_report(self, name: str) -> datetime | None:
        """When the user's server last reported its activity to the hub: the last activity of
        its server token (the only hub request made with that token in these tests)."""
        tokens = self.api("GET", f"users/{name}/tokens")["api_tokens"]
        times = [
            parse_time(t["last_activity"])
            for t in tokens
            if (t.get("note") or "").startswith("Server at ")
        ]
        return max((t for t in times if t is not None), default=None)

    def wait_report_after(self, name: str, moment: datetime) -> datetime:
        """Wait until the user's server has reported its activity after ``moment``."""
        return wait_for(
            lambda: (r := self.last_report(name)) and r > moment and r,
            30,
            f"the server of {name} sent no activity report after {moment.isoformat()}",
        )

    def route(self, name: str) -> dict[str, Any]:
        """The proxy's route of the user's default server (``GET /hub/api/proxy``)."""
        routes = self.api("GET", "proxy")
        route: dict[str, Any] = routes[f"/user/{name}/"]
        return route

    def route_activity(self, name: str) -> datetime:
        """The proxy's ``last_activity`` of the route: what the hub harvests every
        ``last_activity_interval`` into the server's (and the user's) ``last_activity``."""
        value = parse_time(self.route(name)["data"].get("last_activity"))
        assert value is not None, f"the route of {name} has no last_activity"
        return value

    # -- the single-user servers ------------------------------------------------------------

    def user_url(self, name: str, path: str = "") -> str:
        """The URL of ``path`` on the user's server through the proxy's public port."""
        return f"{self.public_url}user/{name}/{path.lstrip('/')}"

    def direct_url(self, name: str, path: str = "") -> str:
        """The URL of ``path`` on the user's server itself (the route's target), bypassing
        the proxy, as from inside the server: no route activity in the proxy."""
        target = self.route(name)["target"].rstrip("/")
        return f"{target}/user/{name}/{path.lstrip('/')}"

    def ws_url(self, name: str, kernel_id: str, session_id: str) -> str:
        """The kernel's websocket URL through the proxy."""
        query = urllib.parse.urlencode({"session_id": session_id})
        return (
            f"ws://127.0.0.1:{self.public_port}/user/{name}/api/kernels/{kernel_id}/channels?"
            f"{query}"
        )


class Kernels:
    """Start kernels on a user's server; shut every one of them down at teardown."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._started: list[tuple[str, str, str]] = []

    def start(self, name: str, token: str, *, direct: bool = False) -> str:
        """POST /api/kernels (an ``async`` kernel) on the user's server, through the proxy or
        (``direct``) at the server itself; wait until the kernel answers a snapshot request
        (``GET api/async-kernel/kernels/{id}`` is 200; jupyter_server's own
        ``execution_state`` says ``starting`` until someone sends the kernel a request)."""
        url = self.hub.direct_url if direct else self.hub.user_url
        answer = http("POST", url(name, "api/kernels"), token=token, body={"name": "async"})
        assert answer.status == 201, answer.text
        kernel_id = str(answer.json()["id"])
        self._started.append((name, token, kernel_id))

        def answers() -> bool:
            path = f"api/async-kernel/kernels/{kernel_id}"
            return http("GET", url(name, path), token=token).status == 200

        wait_for(answers, 60, f"kernel {kernel_id} did not answer")
        return kernel_id

    def snapshot(self, name: str, token: str, kernel_id: str) -> dict[str, Any]:
        """GET api/async-kernel/kernels/{kernel_id} at the server itself (no proxy)."""
        answer = http(
            "GET", self.hub.direct_url(name, f"api/async-kernel/kernels/{kernel_id}"), token=token
        )
        assert answer.status == 200, answer.text
        state: dict[str, Any] = answer.json()
        return state

    def shutdown_all(self) -> None:
        """DELETE every kernel started here (at the servers themselves)."""
        for name, token, kernel_id in self._started:
            http("DELETE", self.hub.direct_url(name, f"api/kernels/{kernel_id}"), token=token)
        self._started.clear()
