"""`python -m async_kernel.launch` against gateway_provisioners' own ResponseManager, on loopback.

The launcher runs as a real subprocess, as a remote provisioner starts it; gateway_provisioners'
`ResponseManager` (in an asyncio loop of its own thread, as in a Jupyter server) receives and
decrypts its connection info; a `jupyter_client` client then talks to the kernel, and the comm
port gets the requests `RemoteProvisionerBase` sends (`{"signum": N}`, `{"shutdown": 1}`).
Every launcher is stopped by its own pid in teardown. Nothing sleeps to synchronise: each wait
is on a message, a process exit or a reply, with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from async_kernel._remote.errors import LaunchError
from async_kernel._remote.options import parse_options, parse_port_range

response_manager = pytest.importorskip("gateway_provisioners.response_manager")
from jupyter_client.blocking.client import BlockingKernelClient  # noqa: E402

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 30.0
"""Seconds for one reply, one connection info or one process exit."""

PORT_RANGE = "41000..41999"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ResponseServer:
    """gateway_provisioners' ResponseManager, bound to loopback, in its own asyncio loop."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(response_manager, "response_ip", "127.0.0.1")
        monkeypatch.setattr(response_manager, "desired_response_port", _free_port())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.manager: Any = self._run(self._create())

    async def _create(self) -> Any:
        return response_manager.ResponseManager()

    def _run(self, coro: Any, timeout: float = TIMEOUT) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    @property
    def address(self) -> str:
        return str(self.manager.response_address)

    @property
    def public_key(self) -> str:
        return str(self.manager.public_key)

    def register(self, kernel_id: str) -> None:
        """Register the kernel id, as the provisioner does before it launches; done on return."""

        async def register() -> None:
            self.manager.register_event(kernel_id)

        self._run(register())

    def connection_info(self, kernel_id: str, launcher: subprocess.Popen[str]) -> dict[str, Any]:
        """Wait for the kernel's connection info, as the provisioner polls for it."""

        async def poll() -> dict[str, Any]:
            deadline = self._loop.time() + TIMEOUT
            while self._loop.time() < deadline:
                if launcher.poll() is not None:
                    raise AssertionError(f"the launcher exited with {launcher.returncode}")
                with contextlib.suppress(asyncio.TimeoutError):
                    info: dict[str, Any] = await self.manager.get_connection_info(kernel_id)
                    return info
            raise AssertionError("no connection info arrived")

        result: dict[str, Any] = self._run(poll(), TIMEOUT + 5)
        return result

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self.manager.stop_response_manager)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT)
        self._loop.close()


@pytest.fixture
def response_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponseServer]:
    server = ResponseServer(monkeypatch)
    yield server
    server.close()


@dataclass
class RemoteKernel:
    """A launched kernel: its launcher process, the info the provisioner got, a client."""

    kernel_id: str
    launcher: subprocess.Popen[str]
    info: dict[str, Any]
    client: BlockingKernelClient
    tmpdir: Path

    def comm_request(self, request: dict[str, Any]) -> None:
        """Send a request to the comm port exactly as RemoteProvisionerBase does."""
        with socket.create_connection(("127.0.0.1", self.info["comm_port"]), TIMEOUT) as s:
            s.send(json.dumps(request).encode("utf-8"))
            if "shutdown" in request:
                s.shutdown(socket.SHUT_WR)

    def execute(self, code: str) -> str:
        return str(self.client.execute(code))

    def reply(self, msg_id: str, channel: str = "shell") -> dict[str, Any]:
        get = self.client.get_shell_msg if channel == "shell" else self.client.get_control_msg
        while True:
            msg: dict[str, Any] = get(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def iopub(self, msg_id: str, msg_type: str) -> dict[str, Any]:
        while True:
            msg: dict[str, Any] = self.client.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == msg_type:
                return msg

    def result_of(self, code: str) -> str:
        msg_id = self.execute(code)
        reply = self.reply(msg_id)
        assert reply["content"]["status"] == "ok", reply["content"]
        result = self.iopub(msg_id, "execute_result")
        return str(result["content"]["data"]["text/plain"])

    def exit_code(self) -> int:
        return self.launcher.wait(TIMEOUT)


def start_launcher(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "async_kernel.launch", *args],
        env={**os.environ, "TMPDIR": str(tmp_path), **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    """Teardown: stop the launcher by its own pid (its kernel follows it)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(TIMEOUT)
    if process.stderr is not None:
        process.stderr.close()


@contextlib.contextmanager
def remote_kernel(
    tmp_path: Path,
    server: ResponseServer,
    *extra: str,
    env_only: bool = False,
) -> Iterator[RemoteKernel]:
    kernel_id = str(uuid.uuid4())
    server.register(kernel_id)
    remote = {
        "KERNEL_ID": kernel_id,
        "RESPONSE_ADDRESS": server.address,
        "PUBLIC_KEY": server.public_key,
        "PORT_RANGE": PORT_RANGE,
    }
    if env_only:
        launcher = start_launcher(tmp_path, *extra, env=remote)
    else:
        args = [
            *("--kernel-id", kernel_id),
            *("--response-address", server.address),
            *("--public-key", server.public_key),
            *("--port-range", PORT_RANGE),
        ]
        launcher = start_launcher(tmp_path, *args, *extra)
    client = BlockingKernelClient()
    try:
        info = server.connection_info(kernel_id, launcher)
        # The provisioner points the client at the host it started the kernel on.
        client.load_connection_info({**info, "ip": "127.0.0.1"})
        # No heartbeat channel: without a manager, wait_for_ready would judge the kernel by its
        # heartbeat, which a loaded machine can miss for a second while the kernel still
        # starts (it then gives up, "Kernel died"). The launcher process tells the truth.
        client.start_channels(hb=False)
        client.wait_for_ready(timeout=TIMEOUT)
        assert launcher.poll() is None, "the launcher exited"
        yield RemoteKernel(kernel_id, launcher, info, client, tmp_path)
    finally:
        client.stop_channels()
        stop(launcher)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_launcher_sends_connection_info_and_serves_the_kernel(
    tmp_path: Path, response_server: ResponseServer, backend: str
) -> None:
    with remote_kernel(tmp_path, response_server, "--backend", backend) as kernel:
        info = kernel.info
        assert info["kernel_id"] == kernel.kernel_id
        assert info["pid"] == kernel.launcher.pid
        assert info["pgid"] == os.getpgid(kernel.launcher.pid)
        assert info["ip"] == "0.0.0.0"
        assert info["transport"] == "tcp"
        assert info["signature_scheme"] == "hmac-sha256"
        assert isinstance(info["key"], bytes)
        assert info["key"]
        ports = [info[name] for name in ("shell_port", "iopub_port", "stdin_port", "hb_port")]
        ports += [info["control_port"], info["comm_port"]]
        lower, upper = (int(p) for p in PORT_RANGE.split(".."))
        assert len(set(ports)) == 6
        assert all(lower <= port <= upper for port in ports)
        [connection_file] = tmp_path.glob(f"kernel-{kernel.kernel_id}-*.json")
        assert stat.S_IMODE(connection_file.stat().st_mode) == 0o600

        assert kernel.result_of("1 + 1") == "2"
        msg = kernel.client.session.msg("caller_state_request", {})
        kernel.client.control_channel.send(msg)
        reply = kernel.reply(msg["header"]["msg_id"], channel="control")
        assert reply["msg_type"] == "caller_state_reply"
        assert reply["content"]["status"] == "ok"
        assert reply["content"]["backend"] == backend

        kernel.comm_request({"shutdown": 1})
        assert kernel.exit_code() == 0
        assert not list(tmp_path.glob("kernel-*.json")), "the connection file is left behind"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sigint_on_the_comm_port_interrupts_the_running_cell(
    tmp_path: Path, response_server: ResponseServer, backend: str
) -> None:
    with remote_kernel(tmp_path, response_server, "--backend", backend) as kernel:
        cell = kernel.execute("import time\nprint('holding', flush=True)\ntime.sleep(600)")
        stream = kernel.iopub(cell, "stream")
        assert "holding" in stream["content"]["text"]

        kernel.comm_request({"signum": 2})

        reply = kernel.reply(cell)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert kernel.result_of("40 + 2") == "42"


def test_signal_zero_is_a_liveness_poll(tmp_path: Path, response_server: ResponseServer) -> None:
    with remote_kernel(tmp_path, response_server) as kernel:
        for _ in range(3):
            kernel.comm_request({"signum": 0})
        assert kernel.result_of("'alive'") == "'alive'"
        assert kernel.launcher.poll() is None


def test_other_signals_reach_the_kernel_process(
    tmp_path: Path, response_server: ResponseServer
) -> None:
    with remote_kernel(tmp_path, response_server) as kernel:
        kernel.comm_request({"signum": 9})
        # The kernel is killed; the launcher ends with it, as a shell reports a SIGKILL.
        assert kernel.exit_code() == 128 + 9


def test_sigterm_to_the_launcher_shuts_the_kernel_down_cleanly(
    tmp_path: Path, response_server: ResponseServer
) -> None:
    with remote_kernel(tmp_path, response_server) as kernel:
        kernel.launcher.terminate()
        assert kernel.exit_code() == 0
        assert not list(tmp_path.glob("kernel-*.json"))


def test_the_environment_of_their_bootstrap_is_enough(
    tmp_path: Path, response_server: ResponseServer
) -> None:
    with remote_kernel(
        tmp_path,
        response_server,
        env_only=True,
    ) as kernel:
        assert kernel.info["kernel_id"] == kernel.kernel_id
        assert kernel.result_of("1 + 2") == "3"


def test_malformed_comm_requests_are_dropped_and_the_listener_goes_on(
    tmp_path: Path, response_server: ResponseServer
) -> None:
    with remote_kernel(tmp_path, response_server) as kernel:
        for payload in (b"not json", b"[1, 2]", b'{"signum": "x"}', b'{"what": 1}', b""):
            with socket.create_connection(("127.0.0.1", kernel.info["comm_port"]), TIMEOUT) as s:
                s.sendall(payload)
        kernel.comm_request({"shutdown": 1})
        assert kernel.exit_code() == 0
        assert kernel.launcher.stderr is not None
        stderr = kernel.launcher.stderr.read()
        assert "Traceback" not in stderr


def test_their_distributed_provisioner_launches_signals_and_shuts_down_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jupyter_client's KernelManager with gateway_provisioners' DistributedProvisioner (the
    SSH provisioner, which launches on this host without SSH for `localhost`): their own
    launch, response, signal (`signal_kernel`) and shutdown code against the launcher."""
    import signal

    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    distributed = pytest.importorskip("gateway_provisioners.distributed")
    monkeypatch.setattr(response_manager, "response_ip", "127.0.0.1")
    monkeypatch.setattr(response_manager, "desired_response_port", _free_port())
    monkeypatch.setattr(distributed, "kernel_log_dir", str(tmp_path))
    monkeypatch.setenv("KERNEL_USERNAME", "tester")  # their default forbids root
    spec_dir = tmp_path / "kernels" / "async-distributed"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "async_kernel.launch", "--backend", "trio"]
    argv += ["--kernel-id", "{kernel_id}", "--port-range", "{port_range}"]
    argv += ["--response-address", "{response_address}", "--public-key", "{public_key}"]
    spec = {
        "argv": argv,
        "display_name": "Python 3 (async, distributed)",
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": "distributed-provisioner",
                "config": {"remote_hosts": ["localhost"]},
            }
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))

    async def scenario() -> None:
        manager = AsyncKernelManager(
            kernel_name="async-distributed",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]),
        )
        await manager.start_kernel()
        client = manager.client()
        try:
            assert manager.provisioner is not None
            assert manager.provisioner.comm_port > 0  # type: ignore[attr-defined]
            client.start_channels()
            await client.wait_for_ready(timeout=TIMEOUT)
            cell = client.execute("import time\nprint('holding', flush=True)\ntime.sleep(600)")
            while True:
                msg = await client.get_iopub_msg(timeout=TIMEOUT)
                if msg["parent_header"].get("msg_id") == cell and msg["msg_type"] == "stream":
                    break

            await manager.signal_kernel(signal.SIGINT)  # through the comm port

            while True:
                reply = await client.get_shell_msg(timeout=TIMEOUT)
                if reply["parent_header"].get("msg_id") == cell:
                    break
            assert reply["content"]["ename"] == "KeyboardInterrupt"
            assert await manager.is_alive()
            await manager.shutdown_kernel()
            assert not await manager.is_alive()
        finally:
            client.stop_channels()
            with contextlib.suppress(Exception):
                await manager.shutdown_kernel(now=True)
            response_manager.ResponseManager.instance().stop_response_manager()
            response_manager.ResponseManager.clear_instance()

    asyncio.run(scenario())


# --- bad input: a clear message, a non-zero exit, no traceback, nothing left running ---------


@pytest.fixture(scope="module")
def public_key() -> str:
    from Cryptodome.PublicKey import RSA

    pem = RSA.generate(1024).publickey().export_key("PEM").decode()
    return "".join(line for line in pem.splitlines() if "-----" not in line)


def run_launcher(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = start_launcher(tmp_path, *args, env=env)
    try:
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        stop(process)
    return process.returncode, stderr


def valid_args(public_key: str, **override: str) -> list[str]:
    values = {
        "kernel-id": str(uuid.uuid4()),
        "response-address": f"127.0.0.1:{_free_port()}",
        "public-key": public_key,
        "port-range": "0..0",
        **override,
    }
    return [arg for name, value in values.items() for arg in (f"--{name}", value)]


def test_bad_public_key_exits_2(tmp_path: Path, public_key: str) -> None:
    code, stderr = run_launcher(tmp_path, *valid_args(public_key, **{"public-key": "bm90IGEga2V5"}))

    assert code == 2
    assert "Bad public key" in stderr
    assert "Traceback" not in stderr


def test_unreachable_response_address_exits_1(tmp_path: Path, public_key: str) -> None:
    code, stderr = run_launcher(tmp_path, *valid_args(public_key))

    assert code == 1
    assert "Cannot send the connection info to the response address" in stderr
    assert "Traceback" not in stderr
    assert not list(tmp_path.glob("kernel-*.json"))


@pytest.mark.parametrize("port_range", ["abc", "5000", "6000..5000", "1..70000", "40000..40003"])
def test_bad_port_range_exits_2(tmp_path: Path, public_key: str, port_range: str) -> None:
    code, stderr = run_launcher(tmp_path, *valid_args(public_key, **{"port-range": port_range}))

    assert code == 2
    assert "Invalid port range" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("address", ["nowhere", "host:port", ":8877", "10.0.0.1:99999"])
def test_bad_response_address_exits_2(tmp_path: Path, public_key: str, address: str) -> None:
    args = valid_args(public_key, **{"response-address": address})
    code, stderr = run_launcher(tmp_path, *args)

    assert code == 2
    assert "Invalid response address" in stderr


def test_missing_kernel_id_exits_2(tmp_path: Path, public_key: str) -> None:
    args = valid_args(public_key)[2:]  # without --kernel-id
    code, stderr = run_launcher(tmp_path, *args, env={"KERNEL_ID": ""})

    assert code == 2
    assert "Missing --kernel-id (or KERNEL_ID in the environment)" in stderr


def test_required_transport_encryption_is_refused(tmp_path: Path, public_key: str) -> None:
    code, stderr = run_launcher(
        tmp_path, *valid_args(public_key), "--transport-encryption", "required"
    )

    assert code == 2
    assert "CurveZMQ" in stderr


def test_unknown_backend_exits_2(tmp_path: Path, public_key: str) -> None:
    code, stderr = run_launcher(tmp_path, *valid_args(public_key), "--backend", "curio")

    assert code == 2
    assert "Unknown backend 'curio'" in stderr


# --- options, in process ----------------------------------------------------------------------


def test_the_old_remote_process_proxy_spelling_is_accepted() -> None:
    options = parse_options(
        [
            *("--RemoteProcessProxy.kernel-id", "k1"),
            *("--RemoteProcessProxy.response-address", "10.0.0.5:8877"),
            *("--RemoteProcessProxy.public-key", "KEY"),
            *("--RemoteProcessProxy.port-range", "40000..41000"),
            *("--RemoteProcessProxy.spark-context-initialization-mode", "none"),
        ],
        environ={},
    )

    assert (options.kernel_id, options.response_host, options.response_port) == (
        "k1",
        "10.0.0.5",
        8877,
    )
    assert (options.port_range.lower, options.port_range.upper) == (40000, 41000)


def test_unsubstituted_placeholders_fall_back_on_the_environment() -> None:
    options = parse_options(
        [
            *("--kernel-id", "{kernel_id}"),
            *("--response-address", "{response_address}"),
            *("--public-key", "{public_key}"),
            *("--port-range", "{port_range}"),
            *("--kernel-class-name", "ipykernel.ipkernel.IPythonKernel"),
        ],
        environ={
            "KERNEL_ID": "k2",
            "EG_RESPONSE_ADDRESS": "gateway:8877",
            "PUBLIC_KEY": "KEY",
            "ASYNC_KERNEL_BACKEND": "trio",
        },
    )

    assert options.kernel_id == "k2"
    assert options.response_address == "gateway:8877"
    assert options.port_range.unrestricted
    assert options.ip == "0.0.0.0"
    assert options.kernel_argv[:2] == ["--backend", "trio"]


def test_kernel_options_are_passed_on_to_the_kernel() -> None:
    options = parse_options(
        [
            *("--kernel-id", "k", "--response-address", "h:1", "--public-key", "K"),
            *("--log-level", "info", "--introspection-timeout", "2.5"),
            "--comms-in-subshells",
            "--no-debug-just-my-code",
        ],
        environ={},
    )

    assert options.kernel_argv == [
        *("--backend", "asyncio", "--log-level", "INFO", "--introspection-timeout", "2.5"),
        "--comms-in-subshells",
        "--no-debug-just-my-code",
    ]


def test_a_range_of_size_zero_means_any_port() -> None:
    assert parse_port_range("0..0").unrestricted
    assert parse_port_range("40000..40000").unrestricted
    assert not parse_port_range("40000..40005").unrestricted


def test_missing_pycryptodomex_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from async_kernel._remote.response import load_public_key

    monkeypatch.setitem(sys.modules, "Cryptodome", None)
    monkeypatch.setitem(sys.modules, "Cryptodome.PublicKey", None)

    with pytest.raises(LaunchError, match=r"pip install 'async-kernel\[remote\]'") as caught:
        load_public_key("KEY")
    assert caught.value.exit_code == 1
