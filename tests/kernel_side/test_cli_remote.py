"""`async-kernel install --remote ...`: kernelspecs for gateway_provisioners' container
provisioners, run as a real subprocess and confined to `tmp_path` (see test_cli.py).

No Kubernetes or Docker here: the tests check the kernelspec itself, the launch files copied
from the installed gateway_provisioners, and that jupyter_client reads it and finds the
provisioner it names among its registered provisioners.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli, read_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.provisioning import KernelProvisionerFactory

from async_kernel.cli import main

pytest.importorskip("gateway_provisioners")


IMAGE = "registry.example.com/async-kernel:1.0"


def gateway_scripts(kind: str) -> Path:
    """gateway_provisioners' installed launch scripts for `kind`."""
    spec = importlib.util.find_spec("gateway_provisioners")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "kernel-launchers" / kind / "scripts"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_install_remote_kubernetes_writes_the_spec_and_their_launch_files(
    cli: Cli, prefix: Path, kernels_dir: Path, backend: str
) -> None:
    result = cli(
        "install",
        "--prefix",
        str(prefix),
        "--remote",
        "kubernetes",
        "--image-name",
        IMAGE,
        "--backend",
        backend,
    )

    assert result.returncode == 0, result.stderr
    name = "async-kubernetes" if backend == "asyncio" else "async-kubernetes-trio"
    spec_dir = kernels_dir / name
    assert read_spec(kernels_dir, name) == {
        "argv": [
            sys.executable,
            str(spec_dir / "scripts" / "launch_kubernetes.py"),
            *("--kernel-id", "{kernel_id}"),
            *("--port-range", "{port_range}"),
            *("--response-address", "{response_address}"),
            *("--public-key", "{public_key}"),
        ],
        "display_name": (
            "Python 3 (async, Kubernetes)"
            if backend == "asyncio"
            else "Python 3 (async, trio, Kubernetes)"
        ),
        "language": "python",
        "interrupt_mode": "message",
        "env": {"ASYNC_KERNEL_BACKEND": backend},
        "metadata": {
            "debugger": True,
            "kernel_provisioner": {
                "provisioner_name": "kubernetes-provisioner",
                "config": {"image_name": IMAGE},
            },
            "async_kernel": {"remote": "kubernetes", "backend": backend},
        },
    }
    theirs = gateway_scripts("kubernetes")
    for file in ("launch_kubernetes.py", "kernel-pod.yaml.j2"):
        assert (spec_dir / "scripts" / file).read_bytes() == (theirs / file).read_bytes()


@pytest.mark.parametrize(
    ("remote", "provisioner"),
    [("docker", "docker-provisioner"), ("docker-swarm", "docker-swarm-provisioner")],
)
def test_install_remote_docker_names_its_provisioner_and_script(
    cli: Cli, prefix: Path, kernels_dir: Path, remote: str, provisioner: str
) -> None:
    result = cli(
        "install",
        "--prefix",
        str(prefix),
        "--remote",
        remote,
        "--image-name",
        IMAGE,
        "--name",
        "py-remote",
        "--display-name",
        "Remote Python",
    )

    assert result.returncode == 0, result.stderr
    spec = read_spec(kernels_dir, "py-remote")
    assert spec["display_name"] == "Remote Python"
    assert spec["argv"][1] == str(kernels_dir / "py-remote" / "scripts" / "launch_docker.py")
    assert spec["metadata"]["kernel_provisioner"] == {
        "provisioner_name": provisioner,
        "config": {"image_name": IMAGE},
    }
    script = kernels_dir / "py-remote" / "scripts" / "launch_docker.py"
    assert script.read_bytes() == (gateway_scripts("docker") / "launch_docker.py").read_bytes()


@pytest.mark.parametrize("remote", ["kubernetes", "docker"])
def test_jupyter_client_loads_the_spec_and_finds_its_provisioner(
    cli: Cli, prefix: Path, kernels_dir: Path, remote: str
) -> None:
    assert cli("install", "--prefix", str(prefix), "--remote", remote, "--image-name", IMAGE)
    manager = KernelSpecManager(kernel_dirs=[str(kernels_dir)])

    spec = manager.get_kernel_spec(f"async-{remote}")

    factory = KernelProvisionerFactory.instance()
    assert factory.is_provisioner_available(spec)
    assert factory._get_provisioner_config(spec) == {
        "provisioner_name": f"{remote}-provisioner",
        "config": {"image_name": IMAGE},
    }
    assert spec.interrupt_mode == "message"
    assert spec.env == {"ASYNC_KERNEL_BACKEND": "asyncio"}


def test_their_argv_substitution_fills_every_placeholder(
    cli: Cli, prefix: Path, kernels_dir: Path
) -> None:
    """RemoteProvisionerBase.pre_launch substitutes `{name}` from its own namespace only (no
    `{connection_file}` or `{resource_dir}`): the argv must need nothing else."""
    import re

    cli("install", "--prefix", str(prefix), "--remote", "kubernetes", "--image-name", IMAGE)
    argv = read_spec(kernels_dir, "async-kubernetes")["argv"]
    theirs = {"kernel_id", "port_range", "response_address", "public_key", "transport_encryption"}

    placeholders = {m for arg in argv for m in re.findall(r"{([A-Za-z0-9_]+)}", arg)}

    assert placeholders <= theirs


def test_remote_specs_are_listed_and_removed_as_async_kernel_specs(
    cli: Cli, prefix: Path, kernels_dir: Path
) -> None:
    cli(
        "install",
        "--prefix",
        str(prefix),
        "--remote",
        "docker",
        "--image-name",
        IMAGE,
        "--backend",
        "trio",
    )

    rows = {row["name"]: row for row in json.loads(cli("list", "--json").stdout)}
    assert rows["async-docker-trio"]["is_async"] is True
    assert rows["async-docker-trio"]["backend"] == "trio"

    result = cli("remove", "async-docker-trio", "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    assert not (kernels_dir / "async-docker-trio").exists()


def test_remote_without_image_name_exits_2_and_writes_nothing(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--prefix", str(prefix), "--remote", "kubernetes")

    assert result.returncode == 2
    assert "--remote kubernetes needs --image-name IMAGE" in result.stderr
    assert not prefix.exists()


def test_image_name_without_remote_exits_2(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--prefix", str(prefix), "--image-name", IMAGE)

    assert result.returncode == 2
    assert "--image-name needs --remote" in result.stderr
    assert not prefix.exists()


def test_unknown_remote_exits_2(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--prefix", str(prefix), "--remote", "yarn", "--image-name", IMAGE)

    assert result.returncode == 2
    assert "invalid choice: 'yarn'" in result.stderr


def test_missing_gateway_provisioners_exits_1_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "gateway_provisioners" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    prefix = tmp_path / "prefix"

    code = main(
        ["install", "--prefix", str(prefix), "--remote", "kubernetes", "--image-name", IMAGE]
    )

    assert code == 1
    assert "pip install 'gateway_provisioners[k8s]'" in capsys.readouterr().err
    assert not prefix.exists()
