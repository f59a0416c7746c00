"""Browser tests: a real JupyterLab server and Debian's Chromium driven by Playwright.

Run with ``python -m pytest tests/browser`` (``scripts/test.sh`` does, after
``scripts/ensure-chromium.sh``), or with every suite by plain ``pytest`` from the repository
root. This folder is configured on its own: no pytest-jupyter, no anyio-run tests, Playwright's
sync API without pytest-playwright, and never a downloaded browser.

- ``lab_server`` (session): ``python -m jupyter lab`` on a free loopback port with a random token,
  in an isolated Jupyter environment holding the ``async`` and ``async-trio`` kernelspecs, with
  the ``async_kernel_server`` extension enabled and news / update checks off.
- ``browser`` (session): headless Chromium from ``CHROMIUM`` or ``/usr/bin/chromium``.
- ``page`` (per test): a fresh context and page; on failure a screenshot, the page's console and
  the kernel traffic are saved; every kernel the test started is shut down afterwards.
- ``shoot``: save a screenshot of the test's key moment.

Artifacts go to ``tests/browser/artifacts/<test>/`` (git-ignored; override with
``BROWSER_ARTIFACTS``); their paths are listed at the end of the run.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from lab_harness import LabEnv, LabServer, lab_tmp_root, make_lab_env, remove_lab_env
from lab_page import KernelTraffic
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

BROWSER_TEST_TIMEOUT = 300
"""pytest-timeout seconds per browser test (the first one also starts JupyterLab and Chromium)."""

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", Path(__file__).parent / "artifacts"))
VIEWPORT = {"width": 1400, "height": 900}

_report_key = pytest.StashKey[dict[str, pytest.TestReport]]()
_traffic_key = pytest.StashKey[KernelTraffic]()
_artifacts_written: list[Path] = []


def find_chromium() -> str:
    """The Chromium binary: ``$CHROMIUM``, else Debian's ``chromium`` on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "no Chromium found: install Debian's package (bash scripts/ensure-chromium.sh, or "
        "apt-get install chromium) or set CHROMIUM=/path/to/chromium",
        pytrace=False,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give browser tests a longer pytest-timeout than the project default, unless they set one."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(BROWSER_TEST_TIMEOUT))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(_report_key, {})[report.when] = report
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the screenshots and logs the browser tests saved."""
    if _artifacts_written:
        terminalreporter.section("browser test artifacts")
        for path in _artifacts_written:
            terminalreporter.write_line(str(path))


def _record_artifact(path: Path) -> Path:
    _artifacts_written.append(path)
    print(f"artifact: {path}")
    return path


@pytest.fixture(scope="session")
def lab_env() -> Iterator[LabEnv]:
    """The isolated Jupyter environment of the session's server."""
    env = make_lab_env(lab_tmp_root())
    yield env
    remove_lab_env(env)


@pytest.fixture(scope="session")
def lab_server(lab_env: LabEnv) -> Iterator[LabServer]:
    """A running JupyterLab server (stopped by its pid at the end of the session)."""
    server = LabServer(lab_env)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    """Playwright's sync API (its bundled driver; no browser of its own is used)."""
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """Headless Debian Chromium; ``--no-sandbox`` because CI runs as root."""
    browser = playwright_instance.chromium.launch(
        executable_path=find_chromium(),
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ],
    )
    yield browser
    browser.close()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """This test's artifact folder, emptied first."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def page(
    browser: Browser,
    lab_server: LabServer,
    artifacts_dir: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Page]:
    """A fresh page; on failure its screenshot, console and kernel traffic are saved; every
    session the test opened is deleted (its kernel shut down) afterwards.

    Requests anywhere but the test server are aborted, and fail the test at teardown.
    """
    sessions_before = {s["id"] for s in lab_server.api("GET", "api/sessions")}
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    external: list[str] = []

    def refuse(route: Route) -> None:
        external.append(route.request.url)
        route.abort()

    context.route(re.compile(rf"^(?!{re.escape(lab_server.base_url)})"), refuse)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
    traffic = KernelTraffic(page)
    request.node.stash[_traffic_key] = traffic
    try:
        yield page
    finally:
        reports = request.node.stash.get(_report_key, {})
        if any(r.failed for r in reports.values()):
            try:
                shot = artifacts_dir / "failure.png"
                page.screenshot(path=str(shot), full_page=True)
                _record_artifact(shot)
            except Exception as err:  # the page may be gone; keep the other artifacts
                print(f"no failure screenshot: {err!r}")
            log = artifacts_dir / "console.log"
            log.write_text("\n".join(console), "utf8")
            _record_artifact(log)
            server_log = artifacts_dir / "jupyterlab.log"
            server_log.write_text(lab_server.log_tail(400), "utf8")
            _record_artifact(server_log)
        kernel_log = artifacts_dir / "kernel-messages.log"
        kernel_log.write_text(traffic.dump(), "utf8")
        _record_artifact(kernel_log)
        context.close()
        for session in lab_server.api("GET", "api/sessions"):
            if session["id"] not in sessions_before:
                lab_server.api("DELETE", f"api/sessions/{session['id']}")
    assert not external, f"the page tried to reach outside the test server: {external}"


@pytest.fixture
def kernel_traffic(page: Page, request: pytest.FixtureRequest) -> KernelTraffic:
    """The kernel messages the test's page sends and receives."""
    return request.node.stash[_traffic_key]


@pytest.fixture
def shoot(page: Page, artifacts_dir: Path) -> Callable[[str], Path]:
    """``shoot("label")`` saves a screenshot of the page as ``NN-label.png`` and returns it."""
    count = 0

    def take(label: str) -> Path:
        nonlocal count
        count += 1
        path = artifacts_dir / f"{count:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)}.png"
        page.screenshot(path=str(path))
        return _record_artifact(path)

    return take


@pytest.fixture
def workspace(request: pytest.FixtureRequest) -> str:
    """A JupyterLab workspace name of this test's own (so no earlier layout is restored)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name).strip("-").lower()
