"""The README's main job: ``bash scripts/serve.sh`` runs JupyterLab with everything in it.

The script is run as the README says (in CI, from the fresh clone the run starts in): it sets up
``.venv``, installs both async kernelspecs, enables the server extension, links the JupyterLab
extension and prints the URL. The test opens that URL in headless Chromium: the launcher offers
both async kernels, and a notebook started from it shows the extension's status item.

Only the port, the token and private Jupyter directories come from the test (the script's
``PORT`` and ``JUPYTER_TOKEN``, and arguments passed through to ``jupyter lab``), so the server
touches neither the developer's Jupyter config nor the repository's files. The script's process
group is stopped by its own pid.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from callers_page import STATUS_TEXT, UI_TIMEOUT_MS, CallersView
from lab_harness import free_port
from playwright.sync_api import Browser, Route, expect

ROOT = Path(__file__).resolve().parents[2]
SETUP_TIMEOUT = 600.0
"""Seconds serve.sh may take to set up .venv (pip, already satisfied in CI) and print the URL."""
URL_LINE = re.compile(r"URL:\s+(?P<url>http://127\.0\.0\.1:\d+/lab\?token=\S+)")
DISPLAY_NAMES = ("Python 3 (async)", "Python 3 (async, trio)")
VIEWPORT = {"width": 1400, "height": 900}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ServeScript:
    """``bash scripts/serve.sh`` in its own process group, its output collected by a thread."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.token = os.urandom(16).hex()
        self.notebooks = tmp / "notebooks"
        self.notebooks.mkdir()
        private = {
            name: tmp / name
            for name in ("config", "data", "runtime", "lab-settings", "lab-workspaces")
        }
        for folder in private.values():
            folder.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
        env.update(
            PORT=str(self.port),
            JUPYTER_TOKEN=self.token,
            JUPYTER_PLATFORM_DIRS="1",
            JUPYTER_CONFIG_DIR=str(private["config"]),
            JUPYTER_DATA_DIR=str(private["data"]),
            JUPYTER_RUNTIME_DIR=str(private["runtime"]),
            JUPYTERLAB_SETTINGS_DIR=str(private["lab-settings"]),
            JUPYTERLAB_WORKSPACES_DIR=str(private["lab-workspaces"]),
        )
        self.output: list[str] = []
        self._url_seen = threading.Event()
        self.url = ""
        self.process = subprocess.Popen(
            [
                "bash",
                str(ROOT / "scripts" / "serve.sh"),
                f"--ServerApp.root_dir={self.notebooks}",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="serve.sh output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            match = URL_LINE.search(line)
            if match and not self.url:
                self.url = match["url"]
                self._url_seen.set()

    def log(self) -> str:
        """The script's last lines, without the colour codes jupyter prints."""
        return ANSI.sub("", "".join(self.output[-80:]))

    def wait_url(self) -> str:
        """The URL the script printed, once the server behind it answers."""
        if not self._url_seen.wait(SETUP_TIMEOUT):
            raise AssertionError(f"serve.sh printed no URL in {SETUP_TIMEOUT:.0f}s:\n{self.log()}")
        assert self.url.startswith(f"http://127.0.0.1:{self.port}/lab?token={self.token}")
        deadline = time.monotonic() + 120
        status = f"http://127.0.0.1:{self.port}/api/status?token={self.token}"
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"serve.sh exited ({self.process.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(status, timeout=5):
                    return self.url
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the server never answered:\n{self.log()}") from None
            # Poll interval while JupyterLab starts, not a synchronisation point.
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM the script's process group (by its pid), SIGKILL it if it lingers."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        self._reader.join(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeScript]:
    script = ServeScript(tmp_path)
    try:
        yield script
    finally:
        script.stop()


@pytest.mark.timeout(SETUP_TIMEOUT + 300)
def test_serve_sh_runs_jupyterlab_with_both_async_kernels_and_the_status_item(
    served: ServeScript, browser: Browser, artifacts_dir: Path
) -> None:
    url = served.wait_url()
    log = served.log()
    assert "async_kernel_server enabled" in log, log
    assert re.search(r"JupyterLab extension: async-kernel v\S+ enabled\s+OK", log), log

    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    external: list[str] = []

    def refuse(route: Route) -> None:
        external.append(route.request.url)
        route.abort()

    context.route(re.compile(rf"^(?!{re.escape(f'http://127.0.0.1:{served.port}/')})"), refuse)
    try:
        page = context.new_page()
        page.goto(url, timeout=90_000)
        for name in DISPLAY_NAMES:
            card = page.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{name}"]')
            expect(card).to_be_visible(timeout=90_000)
        page.screenshot(path=str(artifacts_dir / "01-launcher.png"))

        page.locator(
            f'.jp-LauncherCard[data-category="Notebook"][title="{DISPLAY_NAMES[0]}"]'
        ).click()
        view = CallersView(page)
        view.expect_status(STATUS_TEXT)
        expect(view.status_item).to_be_visible(timeout=UI_TIMEOUT_MS)
        page.screenshot(path=str(artifacts_dir / "02-notebook.png"))
    finally:
        context.close()
    assert not external, f"the page tried to reach outside the server: {external}"
