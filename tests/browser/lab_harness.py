"""A real JupyterLab server for browser tests, in an isolated Jupyter environment.

- [make_lab_env][]: a temporary Jupyter/IPython/JupyterLab environment with the `async` and
  `async-trio` kernelspecs installed into a prefix on `JUPYTER_PATH` (by
  `python -m async_kernel install`), ipykernel's `python3` beside them, the `async_kernel_server` extension enabled and everything
  that would reach outside the machine (news feed, update checks) turned off.
- [LabServer][]: `python -m jupyter lab` as a subprocess on a free loopback port with a random
  token; ready once `GET /api/status` answers, stopped by its own pid.

Nothing here sleeps to synchronise: every wait polls a condition, with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SPEC_NAMES = {"asyncio": "async", "trio": "async-trio"}
"""The kernelspec installed for each backend (`async-kernel install --backend B`)."""

IPYKERNEL_SPEC = "python3"
"""ipykernel's kernelspec, installed beside the async ones (not an async kernel)."""

SNAPSHOT_TIMEOUT = 3.0
"""`AsyncKernelServer.snapshot_timeout` of the test server: how long a stopped kernel takes to
read `no answer` (the default is 5 s)."""

SERVER_START_TIMEOUT = 90.0
"""Seconds JupyterLab may take to answer `GET /api/status` (generous: 2 loaded cores)."""

SERVER_STOP_TIMEOUT = 20.0
"""Seconds JupyterLab gets to exit after SIGTERM before it is killed."""

HTTP_TIMEOUT = 20.0
"""Seconds one REST request may take."""

NOT_INHERITED = frozenset({"JUPYTER_TOKEN", "JUPYTERLAB_DIR", "JUPYTER_PREFER_ENV_PATH"})
"""Variables of the test run's environment that the server must not see."""

LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/completer-extension:manager": {
        "availableProviders": {"CompletionProvider:kernel": 550, "CompletionProvider:context": -1},
        "providerTimeout": 15000,
    },
}
"""JupyterLab setting overrides: never fetch news (nor ask about it), never check for updates;
completions come from the kernel only (no words picked from the notebook's text) and a slow
kernel on a loaded machine gets 15 s to answer instead of 1 s."""


@dataclass
class LabEnv:
    """A private Jupyter + IPython + JupyterLab environment with the async kernelspecs."""

    root: Path
    overrides: dict[str, str]

    @property
    def prefix(self) -> Path:
        """The prefix the kernelspecs were installed into (`PREFIX/share/jupyter/kernels`)."""
        return self.root / "prefix"

    @property
    def notebooks(self) -> Path:
        """The server's `root_dir`: where notebooks live."""
        return self.root / "notebooks"

    @property
    def logs(self) -> Path:
        """Where the server's output goes."""
        return self.root / "logs"

    def environ(self) -> dict[str, str]:
        """The full environment for the server (and so for the kernels it starts), without
        the caller's Jupyter settings that would override the isolated ones."""
        inherited = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        return {**inherited, **self.overrides}


def make_lab_env(root: Path) -> LabEnv:
    """Create the environment under `root`: directories, kernelspecs, server and lab config."""
    dirs = {
        name: root / name
        for name in (
            "config",
            "data",
            "runtime",
            "ipython",
            "lab-settings",
            "lab-workspaces",
            "notebooks",
            "logs",
        )
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    overrides = {
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_CONFIG_PATH": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTER_PATH": str(root / "prefix" / "share" / "jupyter"),
        "IPYTHONDIR": str(dirs["ipython"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["lab-settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["lab-workspaces"]),
        "PYTHONUNBUFFERED": "1",
    }
    env = LabEnv(root=root, overrides=overrides)
    environ = env.environ()
    for backend in SPEC_NAMES:
        argv = [sys.executable, "-m", "async_kernel", "install", "--prefix", str(env.prefix)]
        done = subprocess.run(
            [*argv, "--backend", backend], env=environ, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(done.args)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
            )
    # ipykernel's spec too, for what the JupyterLab extension shows beside a non-async kernel.
    native = [sys.executable, "-m", "ipykernel", "install", "--prefix", str(env.prefix)]
    done = subprocess.run(
        [*native, "--name", IPYKERNEL_SPEC], env=environ, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(done.args)} failed:\n{done.stdout}{done.stderr}")
    server_config = {
        "ServerApp": {
            "jpserver_extensions": {"async_kernel_server": True},
            "open_browser": False,
        },
        "KernelSpecManager": {"ensure_native_kernel": False},
        "LabApp": {
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        },
    }
    (dirs["config"] / "jupyter_server_config.json").write_text(
        json.dumps(server_config, indent=1), "utf8"
    )
    labconfig = dirs["config"] / "labconfig"
    labconfig.mkdir(exist_ok=True)
    (labconfig / "default_setting_overrides.json").write_text(
        json.dumps(LAB_SETTINGS, indent=1), "utf8"
    )
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiError(Exception):
    """A REST request answered with an HTTP error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class LabServer:
    """A JupyterLab server subprocess on 127.0.0.1 with a random token."""

    def __init__(self, env: LabEnv) -> None:
        self.env = env
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self.log_path = env.logs / f"jupyterlab-{self.port}.log"
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers `GET /api/status` (or fail with its log)."""
        argv = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.env.notebooks}",
            "--ServerApp.jpserver_extensions={'async_kernel_server': True}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--AsyncKernelServer.snapshot_timeout={SNAPSHOT_TIMEOUT}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-root")
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv,
            env=self.env.environ(),
            cwd=self.env.notebooks,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(SERVER_START_TIMEOUT)

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"JupyterLab exited with code {code} before it was ready:\n{self.log_tail()}"
                )
            try:
                self.api("GET", "api/status", timeout=5.0)
                return
            except (OSError, ApiError) as err:
                last_error = repr(err)
            # Polling interval between readiness probes, not a synchronisation point.
            self.process_wait(0.2)
        raise TimeoutError(
            f"JupyterLab did not answer api/status within {timeout:.0f}s ({last_error}):\n"
            f"{self.log_tail()}"
        )

    def process_wait(self, seconds: float) -> None:
        """Wait up to `seconds` for the server process to exit (returns early if it does)."""
        assert self.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(seconds)

    def stop(self) -> None:
        """SIGTERM the server by its pid, wait, SIGKILL it if it does not exit."""
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(SERVER_STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines the server wrote."""
        if self._log is not None:
            self._log.flush()
        try:
            text = self.log_path.read_text("utf8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def url(self, path: str, **query: str) -> str:
        """The absolute URL of `path` (relative to the base URL), with the token in the query."""
        params = urllib.parse.urlencode({**query, "token": self.token})
        return f"{self.base_url}{path.lstrip('/')}?{params}"

    def api(
        self, method: str, path: str, body: Any = None, *, timeout: float = HTTP_TIMEOUT
    ) -> Any:
        """Call the REST API with the token; return the parsed JSON answer (None if empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path.lstrip("/"),
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise ApiError(err.code, err.read().decode("utf8", errors="replace")) from None
        return json.loads(raw) if raw else None

    def create_notebook(self, name: str, kernel_name: str, cells: list[str] | None = None) -> str:
        """Write `name` (a notebook on kernelspec `kernel_name`) through the contents API."""
        spec = self.api("GET", f"api/kernelspecs/{urllib.parse.quote(kernel_name)}")
        notebook = {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {
                "kernelspec": {
                    "name": kernel_name,
                    "display_name": spec["spec"]["display_name"],
                    "language": spec["spec"].get("language", "python"),
                },
                "language_info": {"name": "python"},
            },
            "cells": [
                {
                    "cell_type": "code",
                    "id": secrets.token_hex(4),
                    "metadata": {},
                    "source": source,
                    "outputs": [],
                    "execution_count": None,
                }
                for source in (cells or [""])
            ],
        }
        path = urllib.parse.quote(name)
        self.api(
            "PUT",
            f"api/contents/{path}",
            {"type": "notebook", "format": "json", "content": notebook},
        )
        return name

    def kernel_for(self, notebook_path: str) -> dict[str, Any] | None:
        """The kernel model of the session open on `notebook_path`, if there is one."""
        for session in self.api("GET", "api/sessions"):
            if session.get("path") == notebook_path and session.get("kernel"):
                kernel: dict[str, Any] = session["kernel"]
                return kernel
        return None

    def kernel(self, kernel_id: str) -> dict[str, Any]:
        """GET /api/kernels/{kernel_id}."""
        model: dict[str, Any] = self.api("GET", f"api/kernels/{kernel_id}")
        return model


def remove_lab_env(env: LabEnv) -> None:
    """Delete the environment (best effort: a kernel may still hold files for a moment)."""
    shutil.rmtree(env.root, ignore_errors=True)


def lab_tmp_root() -> Path:
    """A fresh directory for one session's environment."""
    return Path(tempfile.mkdtemp(prefix="async-kernel-lab-"))
