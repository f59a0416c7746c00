"""AsyncKernelProvisioner inside a real Jupyter server: launch, config, restart, interrupt, and
caller_state over the control channel."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import psutil
import pytest
from jupyter_client.kernelspec import KernelSpec

from async_kernel_provisioner import (
    AsyncKernelProvisioner,
    InvalidBackend,
    KernelNotAlive,
    NoAnswerInTime,
)


def backend_in_cmdline(pid: int) -> str:
    cmdline = psutil.Process(pid).cmdline()
    return cmdline[cmdline.index("--backend") + 1]


async def test_bad_backend_config_fails_the_start_naming_the_valid_backends(
    jp_serverapp: Any,
) -> None:
    manager = jp_serverapp.kernel_manager

    with pytest.raises(InvalidBackend, match=r"'curio'.*'async-bad'.*'asyncio', 'trio'"):
        await manager.start_kernel(kernel_name="async-bad")

    assert manager.list_kernel_ids() == []


async def test_bad_backend_config_fails_the_rest_start_and_leaves_no_kernel(api: Any) -> None:
    status, _ = await api("api", "kernels", method="POST", body=json.dumps({"name": "async-bad"}))

    assert status == 500
    assert (await api("api", "kernels")) == (200, [])


async def test_pre_launch_replaces_the_backend_in_the_kernel_command() -> None:
    spec = KernelSpec(
        argv=[sys.executable, "-m", "async_kernel", "-f", "{connection_file}", "--backend", "x"],
        display_name="t",
        language="python",
    )
    provisioner = AsyncKernelProvisioner(kernel_spec=spec, backend="trio")

    launch = await provisioner.pre_launch()

    assert launch["cmd"][-2:] == ["--backend", "trio"]
    assert launch["cmd"].count("--backend") == 1


@pytest.mark.parametrize(("kernel_name", "backend"), [("async", "asyncio"), ("async-trio", "trio")])
async def test_kernel_process_runs_with_the_configured_backend(
    kernels: Any, kernel_name: str, backend: str
) -> None:
    kernel_id = await kernels.start(kernel_name, ready=False)
    provisioner = kernels.manager.get_kernel(kernel_id).provisioner

    assert isinstance(provisioner, AsyncKernelProvisioner)
    assert provisioner.backend == backend
    assert backend_in_cmdline(provisioner.pid) == backend


async def test_restart_keeps_the_backend(kernels: Any, api: Any) -> None:
    kernel_id = await kernels.start("async-trio")
    old_pid = kernels.pid(kernel_id)

    status, _ = await api("api", "kernels", kernel_id, "restart", method="POST", body="{}")
    assert status == 200
    await kernels.client(kernel_id)
    provisioner = kernels.manager.get_kernel(kernel_id).provisioner

    assert provisioner.pid != old_pid
    assert provisioner.backend == "trio"
    assert backend_in_cmdline(provisioner.pid) == "trio"
    assert (await provisioner.caller_state())["backend"] == "trio"


async def test_interrupt_in_message_mode_stops_a_blocking_cell(kernels: Any, api: Any) -> None:
    kernel_id = await kernels.start("async")
    client = await kernels.client(kernel_id)
    assert kernels.manager.get_kernel(kernel_id).kernel_spec.interrupt_mode == "message"
    msg_id = client.execute("import time; time.sleep(60)")
    await kernels.wait_for_iopub(client, msg_id, "execute_input")

    status, _ = await api("api", "kernels", kernel_id, "interrupt", method="POST", body="{}")
    reply = await kernels.wait_for_reply(client, msg_id, timeout=20)

    assert status == 204
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert (await kernels.run_cell(client, "1 + 1"))["status"] == "ok"


async def test_provisioner_info_round_trip_keeps_the_backend(kernels: Any) -> None:
    kernel_id = await kernels.start("async-trio", ready=False)
    provisioner = kernels.manager.get_kernel(kernel_id).provisioner

    info = await provisioner.get_provisioner_info()
    restored = AsyncKernelProvisioner()
    await restored.load_provisioner_info(info)

    assert info["backend"] == "trio"
    assert restored.backend == "trio"
    assert restored.pid == provisioner.pid
    assert restored.kernel_id == kernel_id
    assert await restored.get_provisioner_info() == info


async def test_restored_provisioner_asks_the_running_kernel(kernels: Any) -> None:
    kernel_id = await kernels.start("async-trio")
    provisioner = kernels.manager.get_kernel(kernel_id).provisioner
    restored = AsyncKernelProvisioner()
    await restored.load_provisioner_info(await provisioner.get_provisioner_info())

    try:
        state = await restored.caller_state(timeout=10)
    finally:
        await restored.cleanup()

    assert state["pid"] == provisioner.pid
    assert state["backend"] == "trio"


async def test_caller_state_returns_the_reply_content(kernels: Any) -> None:
    kernel_id = await kernels.start("async")
    provisioner = kernels.manager.get_kernel(kernel_id).provisioner

    state = await provisioner.caller_state(timeout=10)

    assert state["status"] == "ok"
    assert state["pid"] == provisioner.pid
    assert state["backend"] == "asyncio"
    assert "kernel_id" not in state  # the provisioner returns the kernel's content as is


async def test_concurrent_caller_state_calls_each_get_their_reply(kernels: Any) -> None:
    kernel_id = await kernels.start("async")
    provisioner = kernels.manager.get_kernel(kernel_id).provisioner

    states = await asyncio.gather(*(provisioner.caller_state(timeout=10) for _ in range(20)))

    assert {s["pid"] for s in states} == {provisioner.pid}


async def test_caller_state_of_a_killed_kernel_raises_kernel_not_alive(kernels: Any) -> None:
    kernel_id = await kernels.start("async")
    provisioner = kernels.manager.get_kernel(kernel_id).provisioner
    await kernels.kill(kernel_id)

    with pytest.raises(KernelNotAlive):
        await provisioner.caller_state(timeout=10)


async def test_caller_state_of_a_stopped_kernel_raises_no_answer_in_time(kernels: Any) -> None:
    kernel_id = await kernels.start("async")
    provisioner = kernels.manager.get_kernel(kernel_id).provisioner
    os.kill(provisioner.pid, signal.SIGSTOP)
    try:
        with pytest.raises(NoAnswerInTime, match=r"0\.5 s"):
            await provisioner.caller_state(timeout=0.5)
    finally:
        os.kill(provisioner.pid, signal.SIGCONT)
