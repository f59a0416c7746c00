"""Kernel benchmark: async-kernel (asyncio and trio) beside the floor kernel and ipykernel, one run.

Each kernel is a real subprocess started by jupyter_client's KernelManager; the benchmark talks
to it through its own lean zmq sockets and a jupyter_client Session, so client overhead is the
same for every kernel and small. The floor kernel (`floor_kernel.py`, next to this file) is the
least a Python kernel can be: one synchronous loop, a Session, `exec`. Prints medians (and p99
for round trips), then ours/floor and ours/ipykernel ratios for both async variants, and the
targets of issue 14 (ours against the floor).

    .venv/bin/python benchmarks/kernel_bench.py            # full run (a few minutes)
    .venv/bin/python benchmarks/kernel_bench.py --quick    # smoke run
    .venv/bin/python benchmarks/kernel_bench.py --rounds 5 --kernels floor "async (asyncio)"
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq
from jupyter_client import KernelManager

from async_kernel._kernel.messaging import WireSession
from async_kernel.kernelspec import make_kernel_spec

FLOOR_KERNEL = Path(__file__).resolve().with_name("floor_kernel.py")

KERNELS: dict[str, list[str]] = {
    "floor": [sys.executable, str(FLOOR_KERNEL), "-f", "{connection_file}"],
    "ipykernel": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    # Exactly what the installed kernelspecs run.
    "async (asyncio)": make_kernel_spec("asyncio")["argv"],
    "async (trio)": make_kernel_spec("trio")["argv"],
}

# Kernels that answer nothing while a cell runs, by design: the rows that measure the shell
# while a cell awaits or blocks, and the subshell row, are not run for them.
SYNCHRONOUS = {"floor"}
OURS = ["async (asyncio)", "async (trio)"]
REFERENCES = ["floor", "ipykernel"]


class _Manager(KernelManager):
    command: list[str] = []

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return [part.replace("{connection_file}", self.connection_file) for part in self.command]


class Client:
    """Minimal client: DEALER sockets for shell/control, SUB for iopub, one Session."""

    def __init__(self, km: KernelManager) -> None:
        info = km.get_connection_info()
        # The same lean client for every kernel: the kernel's own wire session (no date parsing,
        # orjson), which writes and reads jupyter_client's format.
        self.session = WireSession(key=info["key"], signature_scheme=info["signature_scheme"])
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
        socket.send_multipart(self.session.serialize(msg))
        return str(msg["header"]["msg_id"])

    def recv(self, socket: zmq.Socket[Any], timeout: float = 60) -> dict[str, Any]:
        if not socket.poll(int(timeout * 1000)):
            raise TimeoutError("no reply")
        return self.parse(socket.recv_multipart())

    def parse(self, frames: list[bytes]) -> dict[str, Any]:
        _, parts = self.session.feed_identities(frames)
        return self.session.deserialize(parts)

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
        cases = [("await", sleeper), ("block", "import time\ntime.sleep({})")]
        for label, code in [] if name in SYNCHRONOUS else cases:
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
        subshell = None
        if name not in SYNCHRONOUS:
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
                msg = client.parse(client.iopub.recv_multipart())
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


LOWER_IS_BETTER = {
    "startup_s",
    "idle_rss_mb",
    "shell_rtt_p50_ms",
    "shell_rtt_p99_ms",
    "control_rtt_p50_ms",
    "control_rtt_p99_ms",
    "shell_rtt_while_await_p50_ms",
    "shell_rtt_while_block_p50_ms",
    "subshell_execute_rtt_while_block_p50_ms",
    "print_to_reply_s",
    "print_all_output_s",
}

# Neither: a count, shown for information.
NEUTRAL = {"print_stream_messages"}

# Issue 14, "close to the floor": ours / the floor kernel.
TARGETS = {
    "startup_s": ("<=", 1.2),
    "idle_rss_mb": ("<=", 1.05),
    "shell_rtt_p50_ms": ("<=", 1.0),
    "sequential_cells_per_s": (">=", 0.8),
    "pipelined_cells_per_s": (">=", 1.0),
    "print_stream_MB_per_s": (">=", 0.5),
}

# The earlier targets, ours / ipykernel.
IPYKERNEL_TARGETS = {
    "startup_s": ("<=", 0.8),
    "idle_rss_mb": ("<=", 0.9),
    "shell_rtt_p50_ms": ("<=", 0.4),
    "sequential_cells_per_s": (">=", 3.3),
    "pipelined_cells_per_s": (">=", 6.0),
    "print_stream_MB_per_s": (">=", 3.0),
}

SHORT = {
    "floor": "floor",
    "ipykernel": "ipyk",
    "async (asyncio)": "asyncio",
    "async (trio)": "trio",
}


def paired_ratio(runs: dict[str, list[Result]], ours: str, base: str, key: str) -> float | None:
    """Median over rounds of ours/base measured in the same round (rounds are interleaved, so
    this cancels most of a noisy machine's drift; it can differ from the ratio of medians)."""
    ratios = [
        a.figures[key] / b.figures[key]
        for a, b in zip(runs[ours], runs[base], strict=True)
        if key in a.figures and b.figures.get(key)
    ]
    return statistics.median(ratios) if ratios else None


def meets(ratio: float, target: tuple[str, float]) -> bool:
    op, value = target
    return ratio <= value if op == "<=" else ratio >= value


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

    # Every metric any kernel has, in the order of the kernel that has the most.
    keys: list[str] = []
    for results in sorted(runs.values(), key=lambda r: -len(r[0].figures)):
        keys += [key for key in results[0].figures if key not in keys]
    medians = {
        name: {
            key: statistics.median(r.figures[key] for r in results)
            for key in keys
            if all(key in r.figures for r in results)
        }
        for name, results in runs.items()
    }
    names = list(medians)
    width = max(len(k) for k in keys) + 2
    print(
        f"\n{'metric (median of ' + str(args.rounds) + ')':<{width}}"
        + "".join(f"{n:>18}" for n in names)
    )
    for key in keys:
        cells = (f"{medians[n][key]:>18.3f}" if key in medians[n] else f"{'-':>18}" for n in names)
        print(f"{key:<{width}}" + "".join(cells))

    pairs = [(o, b) for o in OURS if o in runs for b in REFERENCES if b in runs]
    ratios = {(o, b, key): paired_ratio(runs, o, b, key) for o, b in pairs for key in keys}
    if pairs:
        print(
            f"\n{'ratio ours/reference':<{width}}"
            + "".join(f"{SHORT[o] + '/' + SHORT[b]:>14}" for o, b in pairs)
            + "  better  target/floor  target/ipyk"
        )
        for key in keys:
            row = f"{key:<{width}}"
            for o, b in pairs:
                ratio = ratios[o, b, key]
                row += f"{ratio:>13.2f}x" if ratio is not None else f"{'-':>14}"
            better = "-" if key in NEUTRAL else "lower" if key in LOWER_IS_BETTER else "higher"
            row += f"  {better:>6}"
            for targets, column in ((TARGETS, 12), (IPYKERNEL_TARGETS, 11)):
                target = " ".join(map(str, targets[key])) + "x" if key in targets else ""
                row += f"  {target:>{column}}"
            print(row.rstrip())
        print("(ratio: median over rounds of ours/reference measured in the same round)")

    if "floor" in runs and any(o in runs for o in OURS):
        print("\ntargets of issue 14 (ours/floor)")
        for key, target in TARGETS.items():
            verdicts = []
            for o in OURS:
                ratio = ratios.get((o, "floor", key))
                if ratio is not None:
                    verdicts.append(
                        f"{SHORT[o]} {ratio:.2f}x {'ok' if meets(ratio, target) else 'MISS'}"
                    )
            wanted = f"{target[0]} {target[1]}x"
            print(f"  {key:<{width}}{wanted:<11}" + ",  ".join(verdicts))

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "medians": medians,
                    "ratios": {f"{o}/{b}": {k: ratios[o, b, k] for k in keys} for o, b in pairs},
                    "rounds": {
                        name: [r.figures for r in results] for name, results in runs.items()
                    },
                    "quick": args.quick,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
