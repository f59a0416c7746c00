"""Kernel benchmark: async-kernel (asyncio and trio) side by side with ipykernel, one run.

Each kernel is a real subprocess started by jupyter_client's KernelManager; the benchmark talks
to it through its own lean zmq sockets and a jupyter_client Session, so client overhead is the
same for every kernel and small. Prints medians (and p99 for round trips) and our/ipykernel ratios.

    .venv/bin/python benchmarks/kernel_bench.py            # full run (a few minutes)
    .venv/bin/python benchmarks/kernel_bench.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
import zmq
from jupyter_client import KernelManager

from async_kernel._kernel.messaging import KernelSession
from async_kernel.kernelspec import make_kernel_spec

KERNELS: dict[str, list[str]] = {
    "ipykernel": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    # Exactly what the installed kernelspecs run.
    "async (asyncio)": make_kernel_spec("asyncio")["argv"],
    "async (trio)": make_kernel_spec("trio")["argv"],
}


class _Manager(KernelManager):
    command: list[str] = []

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return [part.replace("{connection_file}", self.connection_file) for part in self.command]


class Client:
    """Minimal client: DEALER sockets for shell/control, SUB for iopub, one Session."""

    def __init__(self, km: KernelManager) -> None:
        info = km.get_connection_info()
        # The same lean client for every kernel: Session without date parsing, orjson packing.
        self.session = KernelSession(
            key=info["key"],
            signature_scheme=info["signature_scheme"],
            packer="orjson",
            unpacker="orjson",
        )
        self.ctx = zmq.Context()
        url = f"tcp://{info['ip']}:"
        self.shell = self.ctx.socket(zmq.DEALER)
        self.shell.connect(url + str(info["shell_port"]))
        self.control = self.ctx.socket(zmq.DEALER)
        self.control.connect(url + str(info["control_port"]))
        self.iopub = self.ctx.socket(zmq.SUB)
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self.iopub.connect(url + str(info["iopub_port"]))

    def send(
        self,
        socket: zmq.Socket[Any],
        msg_type: str,
        content: dict[str, Any],
        subshell_id: str | None = None,
    ) -> str:
        msg = self.session.msg(msg_type, content)
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self.session.send(socket, msg)
        return msg["header"]["msg_id"]

    def recv(self, socket: zmq.Socket[Any], timeout: float = 60) -> dict[str, Any]:
        if not socket.poll(int(timeout * 1000)):
            raise TimeoutError("no reply")
        _, msg = self.session.recv(socket, mode=0)
        assert msg is not None
        return msg

    def request(
        self, socket: zmq.Socket[Any], msg_type: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        msg_id = self.send(socket, msg_type, content)
        while True:
            reply = self.recv(socket)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def execute(self, code: str) -> dict[str, Any]:
        return self.request(self.shell, "execute_request", {"code": code, "silent": False})

    def drain_iopub(self) -> None:
        while self.iopub.poll(0):
            self.iopub.recv_multipart()

    def close(self) -> None:
        self.ctx.destroy(linger=0)


@dataclass
class Result:
    figures: dict[str, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def round_trips(client: Client, socket: zmq.Socket[Any], n: int) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.request(socket, "kernel_info_request", {})
        times.append(time.perf_counter() - t)
    return times


def bench_kernel(name: str, quick: bool) -> Result:
    result = Result()
    km = _Manager()
    km.command = KERNELS[name]
    t0 = time.perf_counter()
    km.start_kernel()
    client = Client(km)
    # Startup: until the first kernel_info_reply. One request is enough: zmq queues it until
    # the kernel binds its port and connects.
    client.request(client.shell, "kernel_info_request", {})
    result.figures["startup_s"] = time.perf_counter() - t0
    try:
        pid = km.provisioner.pid  # type: ignore[union-attr]
        proc = psutil.Process(pid)
        client.execute("pass")
        time.sleep(0.5)  # let the kernel settle before reading idle memory
        while client.shell.poll(0):
            client.recv(client.shell)
        result.figures["idle_rss_mb"] = proc.memory_info().rss / 2**20

        n = 300 if quick else 2000
        round_trips(client, client.shell, 50)
        shell = round_trips(client, client.shell, n)
        control = round_trips(client, client.control, n)
        result.figures["shell_rtt_p50_ms"] = statistics.median(shell) * 1e3
        result.figures["shell_rtt_p99_ms"] = percentile(shell, 0.99) * 1e3
        result.figures["control_rtt_p50_ms"] = statistics.median(control) * 1e3
        result.figures["control_rtt_p99_ms"] = percentile(control, 0.99) * 1e3

        cells = 200 if quick else 1000
        t = time.perf_counter()
        for _ in range(cells):
            client.execute("pass")
        result.figures["sequential_cells_per_s"] = cells / (time.perf_counter() - t)
        client.drain_iopub()

        t = time.perf_counter()
        ids = [client.send(client.shell, "execute_request", {"code": "pass"}) for _ in range(cells)]
        got = 0
        while got < len(ids):
            reply = client.recv(client.shell)
            if reply["msg_type"] == "execute_reply":
                got += 1
        result.figures["pipelined_cells_per_s"] = cells / (time.perf_counter() - t)
        client.drain_iopub()

        # Shell round trip while a cell awaits, and while it blocks the shell thread.
        sleeper = (
            "import anyio\nawait anyio.sleep({})"
            if "async" in name
            else "import asyncio\nawait asyncio.sleep({})"
        )
        for label, code in (("await", sleeper), ("block", "import time\ntime.sleep({})")):
            duration = 2 if quick else 4
            exec_id = client.send(client.shell, "execute_request", {"code": code.format(duration)})
            time.sleep(0.3)
            times = []
            deadline = time.perf_counter() + duration - 0.8
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                msg_id = client.send(client.shell, "kernel_info_request", {})
                while True:
                    reply = client.recv(client.shell)
                    if reply["parent_header"].get("msg_id") == msg_id:
                        break
                    if reply["parent_header"].get("msg_id") == exec_id:
                        exec_id = ""
                times.append(time.perf_counter() - t)
            while exec_id:
                reply = client.recv(client.shell)
                if reply["parent_header"].get("msg_id") == exec_id:
                    exec_id = ""
            result.figures[f"shell_rtt_while_{label}_p50_ms"] = statistics.median(times) * 1e3
        client.drain_iopub()

        # An execute round trip in a subshell (JEP 91) while the main shell blocks: the
        # subshell's own thread runs the cell.
        created = client.request(client.control, "create_subshell_request", {})["content"]
        subshell = created.get("subshell_id")
        if subshell:
            duration = 2 if quick else 4
            code = f"import time\ntime.sleep({duration})"
            exec_id = client.send(client.shell, "execute_request", {"code": code})
            time.sleep(0.3)
            times = []
            deadline = time.perf_counter() + duration - 0.8
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                msg_id = client.send(
                    client.shell, "execute_request", {"code": "pass", "silent": False}, subshell
                )
                while True:
                    reply = client.recv(client.shell)
                    if reply["parent_header"].get("msg_id") == msg_id:
                        break
                    if reply["parent_header"].get("msg_id") == exec_id:
                        exec_id = ""
                times.append(time.perf_counter() - t)
            while exec_id:
                reply = client.recv(client.shell)
                if reply["parent_header"].get("msg_id") == exec_id:
                    exec_id = ""
            result.figures["subshell_execute_rtt_while_block_p50_ms"] = (
                statistics.median(times) * 1e3
            )
            client.request(client.control, "delete_subshell_request", {"subshell_id": subshell})
        client.drain_iopub()

        # 200,000 prints: time to execute_reply and stream throughput.
        prints = 20_000 if quick else 200_000
        code = f"for i in range({prints}):\n    print('line', i)"
        t = time.perf_counter()
        exec_id = client.send(client.shell, "execute_request", {"code": code})
        stream_bytes = 0
        stream_msgs = 0
        idle = False
        replied = False
        while not (idle and replied):
            if client.shell.poll(0):
                reply = client.recv(client.shell)
                if reply["parent_header"].get("msg_id") == exec_id:
                    replied = True
                    result.figures["print_to_reply_s"] = time.perf_counter() - t
                continue
            if client.iopub.poll(50):
                frames = client.iopub.recv_multipart()
                _, parts = client.session.feed_identities(frames)
                msg = client.session.deserialize(parts)
                if msg["parent_header"].get("msg_id") != exec_id:
                    continue
                if msg["msg_type"] == "stream":
                    stream_bytes += len(msg["content"]["text"])
                    stream_msgs += 1
                elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
        elapsed = time.perf_counter() - t
        result.figures["print_all_output_s"] = elapsed
        result.figures["print_stream_MB_per_s"] = stream_bytes / elapsed / 1e6
        result.figures["print_stream_messages"] = stream_msgs
    finally:
        client.close()
        km.shutdown_kernel(now=True)
    return result


LOWER_IS_BETTER = {"startup_s", "idle_rss_mb", "print_to_reply_s", "print_all_output_s"}

TARGETS = {
    "startup_s": ("<=", 0.8),
    "idle_rss_mb": ("<=", 0.9),
    "shell_rtt_p50_ms": ("<=", 0.4),
    "sequential_cells_per_s": (">=", 3.3),
    "pipelined_cells_per_s": (">=", 6.0),
    "print_stream_MB_per_s": (">=", 3.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--rounds", type=int, default=3, help="runs per kernel (medians)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--kernels", nargs="*", default=list(KERNELS), choices=list(KERNELS))
    args = parser.parse_args()

    runs: dict[str, list[Result]] = {name: [] for name in args.kernels}
    for round_number in range(args.rounds):
        for name in args.kernels:  # interleaved, so noise hits every kernel alike
            print(f"round {round_number + 1}/{args.rounds}: {name} ...", file=sys.stderr)
            runs[name].append(bench_kernel(name, args.quick))

    medians = {
        name: {
            key: statistics.median(r.figures[key] for r in results) for key in results[0].figures
        }
        for name, results in runs.items()
    }
    keys = list(next(iter(medians.values())))
    names = list(medians)
    width = max(len(k) for k in keys) + 2
    print(
        f"\n{'metric (median of ' + str(args.rounds) + ')':<{width}}"
        + "".join(f"{n:>18}" for n in names)
    )
    for key in keys:
        print(f"{key:<{width}}" + "".join(f"{medians[n][key]:>18.3f}" for n in names))
    if "ipykernel" in medians:
        print(
            f"\n{'ratio ours/ipykernel':<{width}}"
            + "".join(f"{n:>18}" for n in names if n != "ipykernel")
            + "   target"
        )
        for key in keys:
            base = medians["ipykernel"][key]
            row = f"{key:<{width}}"
            for n in names:
                if n == "ipykernel":
                    continue
                row += f"{(medians[n][key] / base if base else float('nan')):>17.2f}x"
            if key in TARGETS:
                op, value = TARGETS[key]
                row += f"   {op} {value}x"
            print(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"medians": medians, "rounds": args.rounds, "quick": args.quick}, f, indent=2)


if __name__ == "__main__":
    main()
