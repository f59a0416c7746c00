"""The `async-kernel` command line, run as a real subprocess (`python -m async_kernel`).

Every run is confined to `tmp_path`: kernelspecs go to `--prefix tmp_path/prefix`, and the Jupyter
data/path/config directories point into `tmp_path`, so the user's and the environment's own
kernelspecs are never touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli, read_spec

from async_kernel.cli import main


def expected_spec(backend: str, display_name: str) -> dict[str, Any]:
    return {
        "argv": [
            sys.executable,
            "-m",
            "async_kernel",
            "-f",
            "{connection_file}",
            "--backend",
            backend,
        ],
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {
            "debugger": True,
            "kernel_provisioner": {
                "provisioner_name": "async-kernel-provisioner",
                "config": {"backend": backend},
            },
        },
    }


@pytest.mark.parametrize(
    ("backend", "name", "display_name"),
    [("asyncio", "async", "Python 3 (async)"), ("trio", "async-trio", "Python 3 (async, trio)")],
)
def test_install_writes_the_default_spec_for_each_backend(
    cli: Cli, prefix: Path, kernels_dir: Path, backend: str, name: str, display_name: str
) -> None:
    result = cli("install", "--prefix", str(prefix), "--backend", backend)

    assert result.returncode == 0, result.stderr
    assert str(kernels_dir / name) in result.stdout
    assert read_spec(kernels_dir, name) == expected_spec(backend, display_name)
    assert [p.name for p in (kernels_dir / name).iterdir()] == ["kernel.json"]


def test_install_without_backend_installs_the_asyncio_spec(
    cli: Cli, prefix: Path, kernels_dir: Path
) -> None:
    result = cli("install", "--prefix", str(prefix))

    assert result.returncode == 0, result.stderr
    assert read_spec(kernels_dir, "async") == expected_spec("asyncio", "Python 3 (async)")


def test_install_uses_the_given_name_and_display_name(
    cli: Cli, prefix: Path, kernels_dir: Path
) -> None:
    result = cli(
        "install",
        *("--prefix", str(prefix), "--backend", "trio"),
        *("--name", "my-trio", "--display-name", "My trio kernel"),
    )

    assert result.returncode == 0, result.stderr
    assert read_spec(kernels_dir, "my-trio") == expected_spec("trio", "My trio kernel")
    assert not (kernels_dir / "async-trio").exists()


def test_install_replaces_an_existing_spec(cli: Cli, prefix: Path, kernels_dir: Path) -> None:
    assert cli("install", "--prefix", str(prefix), "--display-name", "old").returncode == 0

    result = cli("install", "--prefix", str(prefix), "--display-name", "new")

    assert result.returncode == 0, result.stderr
    assert read_spec(kernels_dir, "async")["display_name"] == "new"


def test_install_user_writes_into_the_jupyter_data_dir(cli: Cli, tmp_path: Path) -> None:
    result = cli("install", "--user", "--backend", "trio")

    assert result.returncode == 0, result.stderr
    spec = read_spec(tmp_path / "data" / "kernels", "async-trio")
    assert spec == expected_spec("trio", "Python 3 (async, trio)")


def test_install_unknown_backend_exits_2_and_writes_nothing(
    cli: Cli, prefix: Path, tmp_path: Path
) -> None:
    result = cli("install", "--prefix", str(prefix), "--backend", "curio")

    assert result.returncode == 2
    assert "Unknown backend 'curio'" in result.stderr
    assert "'asyncio', 'trio'" in result.stderr
    assert not prefix.exists()
    assert not (tmp_path / "data").exists()


def test_install_invalid_name_exits_2_and_writes_nothing(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--prefix", str(prefix), "--name", "no spaces")

    assert result.returncode == 2
    assert "Invalid kernelspec name 'no spaces'" in result.stderr
    assert not prefix.exists()


def test_install_accepts_only_one_location(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--user", "--prefix", str(prefix))

    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
    assert not prefix.exists()


def test_install_that_cannot_write_exits_1_with_the_os_error(cli: Cli, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")

    result = cli("install", "--prefix", str(not_a_dir))

    assert result.returncode == 1
    assert result.stderr.startswith("async-kernel install: error:")
    assert str(not_a_dir) in result.stderr
    assert not_a_dir.read_text() == ""


def test_remove_deletes_the_spec(cli: Cli, prefix: Path, kernels_dir: Path) -> None:
    assert cli("install", "--prefix", str(prefix), "--backend", "trio").returncode == 0

    result = cli("remove", "async-trio", "--prefix", str(prefix))

    assert result.returncode == 0, result.stderr
    assert "Removed kernelspec async-trio" in result.stdout
    assert not (kernels_dir / "async-trio").exists()


def test_remove_unknown_name_fails_with_a_message(cli: Cli, prefix: Path) -> None:
    result = cli("remove", "no-such-kernel", "--prefix", str(prefix))

    assert result.returncode == 1
    assert "No kernelspec named 'no-such-kernel'" in result.stderr


def test_remove_keeps_a_foreign_spec_unless_forced(
    cli: Cli, prefix: Path, kernels_dir: Path
) -> None:
    foreign = kernels_dir / "other"
    foreign.mkdir(parents=True)
    (foreign / "kernel.json").write_text(
        json.dumps({"argv": ["other", "{connection_file}"], "display_name": "Other"})
    )

    refused = cli("remove", "other", "--prefix", str(prefix))
    assert refused.returncode == 1
    assert "not an async-kernel kernelspec" in refused.stderr
    assert foreign.exists()

    forced = cli("remove", "other", "--prefix", str(prefix), "--force")
    assert forced.returncode == 0, forced.stderr
    assert not foreign.exists()


def test_list_marks_async_specs_with_backend_and_path(
    cli: Cli, prefix: Path, kernels_dir: Path
) -> None:
    assert cli("install", "--prefix", str(prefix)).returncode == 0
    assert cli("install", "--prefix", str(prefix), "--backend", "trio").returncode == 0

    table = cli("list")
    as_json = cli("list", "--json")

    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert f"* async       asyncio  {kernels_dir / 'async'}" in lines
    assert f"* async-trio  trio     {kernels_dir / 'async-trio'}" in lines
    assert as_json.returncode == 0, as_json.stderr
    rows = {row["name"]: row for row in json.loads(as_json.stdout)}
    assert rows["async"] == {
        "name": "async",
        "display_name": "Python 3 (async)",
        "path": str(kernels_dir / "async"),
        "is_async": True,
        "backend": "asyncio",
    }
    assert rows["async-trio"]["backend"] == "trio"
    assert all(row["backend"] is None for row in rows.values() if not row["is_async"])


def test_unknown_flag_exits_2(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--prefix", str(prefix), "--bogus")

    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
    assert not prefix.exists()


def test_unknown_subcommand_exits_2(cli: Cli) -> None:
    result = cli("instal")

    assert result.returncode == 2
    assert "invalid choice: 'instal'" in result.stderr


@pytest.mark.parametrize(
    "args", [[], ["launch"], ["--backend", "trio"]], ids=["bare", "launch", "no-subcommand"]
)
def test_launch_without_connection_file_exits_2(cli: Cli, args: list[str]) -> None:
    result = cli(*args)

    assert result.returncode == 2
    assert "the following arguments are required: -f/--connection-file" in result.stderr


def test_launch_unknown_backend_exits_2(cli: Cli, tmp_path: Path) -> None:
    result = cli("-f", str(tmp_path / "kernel.json"), "--backend", "curio")

    assert result.returncode == 2
    assert "Unknown backend 'curio'" in result.stderr


def test_launch_with_an_unreadable_connection_file_exits_1(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "kernel.json"
    path.write_text("{not json")
    result = cli("-f", str(path))

    assert result.returncode == 1
    assert f"async-kernel: cannot read connection file {path}" in result.stderr


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("signature_scheme", "md5", "signature_scheme must be 'hmac-' and a hashlib algorithm"),
        ("signature_scheme", "hmac-nosuchhash", "got 'hmac-nosuchhash'"),
    ],
)
def test_launch_with_a_bad_signature_scheme_exits_1_with_the_reason(
    cli: Cli, tmp_path: Path, field: str, value: str, message: str
) -> None:
    path = tmp_path / "kernel.json"
    info = {"ip": "127.0.0.1", "transport": "tcp", "key": "secret", field: value}
    path.write_text(json.dumps(info))
    result = cli("-f", str(path))

    assert result.returncode == 1
    assert f"async-kernel: bad connection file {path}" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [[], ["launch"]], ids=["no-subcommand", "launch"])
def test_launch_passes_its_arguments_to_run_kernel(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    calls: list[dict[str, Any]] = []
    app = types.ModuleType("async_kernel._kernel.app")
    app.run_kernel = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "async_kernel._kernel.app", app)

    code = main(
        [
            *command,
            *("-f", "conn.json", "--backend", "trio", "--log-level", "debug"),
            *("--introspection-timeout", "2.5"),
        ]
    )

    assert code == 0
    assert calls == [
        {
            "connection_file": "conn.json",
            "backend": "trio",
            "log_level": "DEBUG",
            "introspection_timeout": 2.5,
            "comms_in_subshells": False,
            "debug_just_my_code": True,
        }
    ]


@pytest.mark.parametrize(
    ("flag", "keyword", "value"),
    [
        ("--comms-in-subshells", "comms_in_subshells", True),
        ("--no-debug-just-my-code", "debug_just_my_code", False),
    ],
)
def test_launch_flag_reaches_run_kernel(
    monkeypatch: pytest.MonkeyPatch, flag: str, keyword: str, value: bool
) -> None:
    calls: list[dict[str, Any]] = []
    app = types.ModuleType("async_kernel._kernel.app")
    app.run_kernel = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "async_kernel._kernel.app", app)

    assert main(["-f", "conn.json", flag]) == 0

    [call] = calls
    assert call[keyword] is value


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_launch_bad_introspection_timeout_exits_2(cli: Cli, tmp_path: Path, value: str) -> None:
    result = cli("-f", str(tmp_path / "kernel.json"), "--introspection-timeout", value)

    assert result.returncode == 2
    assert "--introspection-timeout" in result.stderr


def test_console_script_is_the_same_command() -> None:
    script = Path(sys.executable).with_name("async-kernel")
    if not script.exists():
        pytest.skip("the async-kernel console script is not installed next to this Python")

    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("async-kernel ")
