"""Server benchmark: the REST snapshot endpoints on a real Jupyter server, beside ipykernel.

Starts ``python -m jupyter_server`` as a subprocess on 127.0.0.1 (a random free port, a random
token, isolated Jupyter dirs holding the ``async`` kernelspec; ipykernel's ``python3`` comes
with ipykernel), starts kernels through its REST API and measures, over HTTP with one keep-alive
connection, one request at a time:

1. snapshot latency (p50/p99), kernel idle, then with its shell thread blocked by a cell
   (``time.sleep``): ``GET api/async-kernel/kernels/{id}`` for an async kernel, beside
   jupyter_server's own ``GET api/kernels/{id}`` (no kernel round trip: the floor of the HTTP
   stack) and the same snapshot URL for an ipykernel kernel (409, decided without a round trip).
   Beside them, the control-channel round trip alone, from this process with
   ``async_kernel_provisioner.ControlAsker``: ``caller_state_request`` to async-kernel and
   ``kernel_info_request`` to ipykernel, idle and blocked;
2. the list endpoint ``GET api/async-kernel/kernels`` with 20 running kernels (19 async-kernel,
   1 ipykernel), beside jupyter_server's ``GET api/kernels`` for the same 20;
3. resident memory (RSS) of the kernel and of the server before and after 10,000 snapshots;
4. the activity monitor (``async_kernel_server.activity.ActivityMonitor``) in this process, on
   jupyter_server's own ``AsyncMappingKernelManager`` with real kernels: the event-loop time one
   pass costs per kernel (CPU time of the loop's thread, so the waiting for replies does not
   count), its wall time, and this process's RSS over 10,000 passes (one kernel).

    .venv/bin/python benchmarks/server_bench.py            # full run (a few minutes)
    .venv/bin/python benchmarks/server_bench.py --quick    # smoke run (fewer requests, 5 kernels)
    .venv/bin/python benchmarks/server_bench.py --json results.json
    .venv/bin/python benchmarks/server_bench.py --only-monitor   # section 4 alone

Absolute figures depend on the machine and its load; compare rows of one run with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.blocking.client import BlockingKernelClient

from async_kernel.kernelspec import make_kernel_spec
from async_kernel_provisioner import ControlAsker

BLOCKING_CELL = "import time; time.sleep(3600)"


class Server:
    """A jupyter_server subprocess with the extension enabled, and a keep-alive HTTP client."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.runtime_dir = root / "runtime"
        kernels_dir = root / "data" / "kernels" / "async"
        kernels_dir.mkdir(parents=True)
        (kernels_dir / "kernel.json").write_text(json.dumps(make_kernel_spec("asyncio")))
        for name in ("config", "runtime", "work"):
            (root / name).mkdir()
        env = {
            **os.environ,
            "JUPYTER_DATA_DIR": str(root / "data"),
            "JUPYTER_CONFIG_DIR": str(root / "config"),
            "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
        self.log = (root / "server.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.open_browser=False",
                f"--ServerApp.root_dir={root / 'work'}",
                f"--IdentityProvider.token={self.token}",
                "--ServerApp.jpserver_extensions=async_kernel_server=True",
                "--AsyncKernelServer.snapshot_timeout=10",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        self._wait_until_up()

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request on the keep-alive connection; returns (status, parsed JSON or None)."""
        headers = {"Authorization": f"token {self.token}"}
        data = None if body is None else json.dumps(body)
        self.http.request(method, "/" + path, body=data, headers=headers)
        response = self.http.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)

    def get(self, path: str) -> tuple[int, Any]:
        """GET ``path`` (relative to the server root)."""
        return self.request("GET", path)

    def start_kernel(self, name: str) -> str:
        """POST api/kernels; returns the kernel id."""
        status, model = self.request("POST", "api/kernels", {"name": name})
        if status != 201:
            raise RuntimeError(f"POST api/kernels {name}: {status} {model}")
        return str(model["id"])

    def wait_ready(self, kernel_id: str, expect: int, timeout: float = 120) -> None:
        """Wait until the snapshot endpoint gives ``expect`` (200 async, 409 ipykernel)."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.get(f"api/async-kernel/kernels/{kernel_id}")
            if status == expect:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"kernel {kernel_id} not ready: {status} {body}")

    def connection_file(self, kernel_id: str) -> Path:
        """The kernel's connection file (the server writes it into its runtime dir)."""
        return self.runtime_dir / f"kernel-{kernel_id}.json"

    def stop(self) -> None:
        """Shut the kernels down and stop the server."""
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                self.log.flush()
                tail = (self.root / "server.log").read_text()[-3000:]
                raise RuntimeError(f"the server exited:\n{tail}")
            try:
                if self.get("api/status")[0] == 200:
                    return
            except OSError:
                self.http.close()
            if time.monotonic() > deadline:
                raise TimeoutError("server did not come up")
            time.sleep(0.1)  # polling a port that is not listening yet: nothing to wait on


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``, nearest-rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def timed(call: Callable[[], Any], n: int) -> list[float]:
    """Run ``call`` n times (after 5 warm-up calls); the seconds each took."""
    for _ in range(5):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def expecting(server: Server, path: str, status: int) -> Callable[[], None]:
    """A GET that fails the benchmark unless it answers ``status``."""

    def call() -> None:
        got, body = server.get(path)
        if got != status:
            raise RuntimeError(f"GET {path}: {got} {body}")

    return call


def control_round_trips(connection_file: Path, msg_type: str, n: int) -> list[float]:
    """Seconds per control-channel request/reply, with a ControlAsker on its own client."""

    async def run() -> list[float]:
        client = AsyncKernelClient()
        client.load_connection_file(str(connection_file))

        async def alive() -> bool:
            return True

        asker = ControlAsker(client, is_alive=alive)
        try:
            for _ in range(5):
                await asker.request(msg_type, {}, timeout=10)
            samples = []
            for _ in range(n):
                started = time.perf_counter()
                await asker.request(msg_type, {}, timeout=10)
                samples.append(time.perf_counter() - started)
            return samples
        finally:
            asker.close()

    return asyncio.run(run())


@contextmanager
def shell_blocked(server: Server, kernel_id: str) -> Iterator[None]:
    """Run a cell that blocks the kernel's shell thread; interrupt it afterwards."""
    client = BlockingKernelClient()
    client.load_connection_file(str(server.connection_file(kernel_id)))
    client.start_channels()
    try:
        msg_id = client.execute(BLOCKING_CELL)
        while True:  # the cell has started once its execute_input is published
            msg = client.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
                break
        yield
    finally:
        server.request("POST", f"api/kernels/{kernel_id}/interrupt", {})
        while True:
            reply = client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        client.stop_channels()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, 5 kernels")
    parser.add_argument("--requests", type=int, help="requests per latency row (default 1000)")
    parser.add_argument("--kernels", type=int, help="kernels for the list row (default 20)")
    parser.add_argument("--snapshots", type=int, help="snapshots for the RSS row (default 10000)")
    parser.add_argument("--passes", type=int, help="monitor passes for the RSS row (10000)")
    parser.add_argument("--only-monitor", action="store_true", help="run section 4 alone")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    n_passes = args.passes or (500 if args.quick else 10_000)
    if args.only_monitor:
        monitor = asyncio.run(monitor_cost(5 if args.quick else 10, n_passes))
        print_monitor(monitor)
        if args.json:
            Path(args.json).write_text(json.dumps({"monitor": monitor}, indent=2))
        return
    n = args.requests or (100 if args.quick else 1000)
    n_kernels = args.kernels or (5 if args.quick else 20)
    n_snapshots = args.snapshots or (500 if args.quick else 10_000)

    results: dict[str, Any] = {"latency_ms": {}, "rss_mb": {}}
    rows: list[tuple[str, list[float]]] = []

    def latency(label: str, samples: list[float]) -> None:
        rows.append((label, samples))
        results["latency_ms"][label] = {
            "p50": statistics.median(samples) * 1e3,
            "p99": percentile(samples, 99) * 1e3,
            "n": len(samples),
        }

    with tempfile.TemporaryDirectory(prefix="server-bench-") as tmp:
        print(f"starting jupyter_server (log: {tmp}/server.log) ...", file=sys.stderr)
        server = Server(Path(tmp))
        try:
            async_id = server.start_kernel("async")
            ipy_id = server.start_kernel("python3")
            server.wait_ready(async_id, 200)
            server.wait_ready(ipy_id, 409)
            snapshot = f"api/async-kernel/kernels/{async_id}"

            for state in ("idle", "shell blocked"):
                print(f"1. latency, kernels {state} ...", file=sys.stderr)
                with (
                    shell_blocked(server, async_id) if state == "shell blocked" else _nothing(),
                    shell_blocked(server, ipy_id) if state == "shell blocked" else _nothing(),
                ):
                    latency(
                        f"{state}: REST snapshot, async-kernel",
                        timed(expecting(server, snapshot, 200), n),
                    )
                    latency(
                        f"{state}: REST snapshot, ipykernel (409)",
                        timed(expecting(server, f"api/async-kernel/kernels/{ipy_id}", 409), n),
                    )
                    latency(
                        f"{state}: REST GET api/kernels/{{id}} (baseline)",
                        timed(expecting(server, f"api/kernels/{async_id}", 200), n),
                    )
                    latency(
                        f"{state}: control caller_state, async-kernel",
                        control_round_trips(
                            server.connection_file(async_id), "caller_state_request", n
                        ),
                    )
                    latency(
                        f"{state}: control kernel_info, ipykernel",
                        control_round_trips(
                            server.connection_file(ipy_id), "kernel_info_request", n
                        ),
                    )

            print(f"2. list with {n_kernels} kernels ...", file=sys.stderr)
            more = [server.start_kernel("async") for _ in range(n_kernels - 2)]
            for kernel_id in more:
                server.wait_ready(kernel_id, 200)
            status, body = server.get("api/async-kernel/kernels")
            if status != 200 or len(body["kernels"]) != n_kernels:
                raise RuntimeError(f"list: {status} {body}")
            if [row for row in body["kernels"] if "error" in row]:
                raise RuntimeError(f"list has error rows: {body}")
            list_n = max(n // 5, 20)
            latency(
                f"list: REST async-kernel list, {n_kernels} kernels",
                timed(expecting(server, "api/async-kernel/kernels", 200), list_n),
            )
            latency(
                f"list: REST GET api/kernels, {n_kernels} kernels (baseline)",
                timed(expecting(server, "api/kernels", 200), list_n),
            )
            for kernel_id in more:
                server.request("DELETE", f"api/kernels/{kernel_id}")

            print(f"3. RSS around {n_snapshots} snapshots ...", file=sys.stderr)
            kernel_pid = server.get(snapshot)[1]["pid"]
            before = {"kernel": rss_mb(kernel_pid), "server": rss_mb(server.process.pid)}
            started = time.perf_counter()
            call = expecting(server, snapshot, 200)
            for _ in range(n_snapshots):
                call()
            elapsed = time.perf_counter() - started
            after = {"kernel": rss_mb(kernel_pid), "server": rss_mb(server.process.pid)}
            results["rss_mb"] = {
                "snapshots": n_snapshots,
                "seconds": elapsed,
                "before": before,
                "after": after,
            }
        finally:
            server.stop()

    width = max(len(label) for label, _ in rows) + 2
    print(f"\n{'request (one at a time)':<{width}}{'p50 ms':>10}{'p99 ms':>10}{'n':>8}")
    print("-" * (width + 28))
    for label, samples in rows:
        figures = results["latency_ms"][label]
        print(f"{label:<{width}}{figures['p50']:>10.2f}{figures['p99']:>10.2f}{len(samples):>8}")
    rss = results["rss_mb"]
    print(
        f"\nRSS over {rss['snapshots']:,} snapshots ({rss['seconds']:.1f} s, "
        f"{rss['snapshots'] / rss['seconds']:,.0f}/s):"
    )
    for who in ("kernel", "server"):
        b, a = rss["before"][who], rss["after"][who]
        print(f"  {who:<8}{b:>9.1f} MiB -> {a:>7.1f} MiB  ({a - b:+.1f} MiB)")
    print("4. activity monitor ...", file=sys.stderr)
    results["monitor"] = asyncio.run(monitor_cost(5 if args.quick else 10, n_passes))
    print_monitor(results["monitor"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


async def monitor_cost(n_kernels: int, n_passes: int) -> dict[str, Any]:
    """Section 4: what a monitor pass costs the server's event loop, per kernel.

    Runs the extension's `ActivityMonitor` over jupyter_server's `AsyncMappingKernelManager` in
    this process (its event loop stands for the server's), with `n_kernels` idle async kernels,
    then with one kernel for `n_passes` passes to watch RSS.
    """
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    from async_kernel_server.activity import ActivityMonitor
    from async_kernel_server.snapshots import KernelSnapshots

    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        root = Path(tmp)
        spec_dir = root / "data" / "kernels" / "async"
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps(make_kernel_spec("asyncio")))
        saved = {k: os.environ.get(k) for k in ("JUPYTER_DATA_DIR", "JUPYTER_PATH")}
        os.environ["JUPYTER_DATA_DIR"] = str(root / "data")
        os.environ["JUPYTER_PATH"] = str(root / "data")
        (root / "runtime").mkdir()
        # As ServerApp does: connection files in a runtime dir (the default is the cwd).
        manager = AsyncMappingKernelManager(
            root_dir=str(root), connection_dir=str(root / "runtime")
        )
        try:
            ids = [await manager.start_kernel(kernel_name="async") for _ in range(n_kernels)]
            snapshots = KernelSnapshots(manager, timeout=10.0)
            monitor = ActivityMonitor(snapshots, interval=0, busy_is_activity=True)
            for _ in range(5):  # connect, and let every kernel settle
                found = await monitor.run_pass()
                if len(found) == n_kernels and not [f for f in found if f.error]:
                    break
                await asyncio.sleep(1)
            cpu: list[float] = []
            wall: list[float] = []
            for _ in range(200):
                c0, w0 = time.thread_time(), time.perf_counter()
                found = await monitor.run_pass()
                cpu.append(time.thread_time() - c0)
                wall.append(time.perf_counter() - w0)
                if len(found) != n_kernels or [f for f in found if f.error]:
                    raise RuntimeError(f"monitor pass failed: {found}")
            for kernel_id in ids[1:]:
                await manager.shutdown_kernel(kernel_id, now=True)
            process = psutil.Process()
            await monitor.run_pass()
            rss_before = process.memory_info().rss / 2**20
            started = time.perf_counter()
            for _ in range(n_passes):
                await monitor.run_pass()
            seconds = time.perf_counter() - started
            rss_after = process.memory_info().rss / 2**20
            snapshots.close()
        finally:
            await manager.shutdown_all(now=True)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return {
        "kernels": n_kernels,
        "loop_ms_per_kernel_p50": statistics.median(cpu) / n_kernels * 1e3,
        "loop_ms_per_kernel_p99": percentile(cpu, 99) / n_kernels * 1e3,
        "pass_wall_ms_p50": statistics.median(wall) * 1e3,
        "pass_wall_ms_p99": percentile(wall, 99) * 1e3,
        "rss_passes": n_passes,
        "rss_seconds": seconds,
        "rss_mb_before": rss_before,
        "rss_mb_after": rss_after,
    }


def print_monitor(m: dict[str, Any]) -> None:
    """Print section 4."""
    print(f"\nactivity monitor, {m['kernels']} idle async kernels, 200 passes:")
    print(
        f"  event-loop time per kernel per pass: p50 {m['loop_ms_per_kernel_p50']:.3f} ms, "
        f"p99 {m['loop_ms_per_kernel_p99']:.3f} ms   (target < 5 ms)"
    )
    print(
        f"  wall time per pass: p50 {m['pass_wall_ms_p50']:.2f} ms, p99 {m['pass_wall_ms_p99']:.2f} ms"
    )
    print(
        f"  RSS over {m['rss_passes']:,} passes of one kernel ({m['rss_seconds']:.1f} s): "
        f"{m['rss_mb_before']:.1f} MiB -> {m['rss_mb_after']:.1f} MiB "
        f"({m['rss_mb_after'] - m['rss_mb_before']:+.1f} MiB)"
    )


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    main()
