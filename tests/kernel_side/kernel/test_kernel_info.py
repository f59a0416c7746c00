"""kernel_info: the kernel describes itself on the shell and the control channel."""

from __future__ import annotations

import pytest
from kernel_harness import KernelSession

from async_kernel.wire import PROTOCOL_VERSION

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_kernel_info_describes_an_async_python_kernel(kernel: KernelSession, channel: str) -> None:
    reply = kernel.request("kernel_info_request", channel=channel)
    content = reply["content"]
    assert content["status"] == "ok"
    # The version this kernel implements, not the installed jupyter_client's.
    assert content["protocol_version"] == PROTOCOL_VERSION == "5.4"
    assert reply["header"]["version"] == PROTOCOL_VERSION
    assert content["implementation"] == "async_kernel"
    assert isinstance(content["implementation_version"], str)
    info = content["language_info"]
    assert info["name"] == "python"
    assert info["file_extension"] == ".py"
    assert info["mimetype"] == "text/x-python"
    assert info["version"].count(".") == 2
    assert isinstance(content["banner"], str)
    assert content["banner"]
    assert content["help_links"], "help_links is empty"
    assert "caller_state" in content["supported_features"]
    assert content["debugger"] is True
    assert "debugger" in content["supported_features"]


def test_kernel_info_is_bracketed_by_busy_and_idle(kernel: KernelSession) -> None:
    msg_id = kernel.send("kernel_info_request")
    kernel.reply(msg_id, msg_type="kernel_info_reply")
    assert kernel.iopub_until_idle(msg_id) == []


def test_kernel_info_names_the_backend(kernel: KernelSession, backend: str) -> None:
    content = kernel.request("kernel_info_request")["content"]
    assert content["async_kernel"]["backend"] == backend
