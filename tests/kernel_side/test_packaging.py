"""The distribution's metadata: one version, an SPDX license with its text, URLs, classifiers.

Builds the wheel metadata from a copy of the project with the project's build backend (setuptools
behind `build_backend/async_kernel_build.py`) and the setuptools of this environment, the way pip
does, and reads what an index would show. Metadata needs no JupyterLab extension build.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tomllib
from email.message import Message
from pathlib import Path

import pytest

import async_kernel
import async_kernel_server

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE")
PACKAGES = ("async_kernel", "provisioner", "server_extension", "jupyter-config", "build_backend")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Message, str]:
    """The METADATA of a fresh build and everything setuptools printed while making it."""
    tree = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, tree / name)
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "labextension")
        )
    out = tree / "metadata"
    out.mkdir()
    code = (
        "import sys, warnings\nwarnings.simplefilter('always')\n"
        "sys.path.insert(0, 'build_backend')\n"
        "import async_kernel_build\n"
        "print(async_kernel_build.prepare_metadata_for_build_wheel(sys.argv[1]))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    dist_info = completed.stdout.strip().splitlines()[-1]
    metadata = (out / dist_info / "METADATA").read_text("utf8")
    return email.parser.Parser().parsestr(metadata), completed.stdout + completed.stderr


def test_the_version_is_defined_once_and_read_by_the_build(built: tuple[Message, str]) -> None:
    metadata, _ = built
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf8"))["project"]

    assert "version" not in project
    assert "version" in project["dynamic"]
    assert metadata["Version"] == async_kernel.__version__ == async_kernel_server.__version__


def test_the_license_is_an_spdx_expression_with_its_text(built: tuple[Message, str]) -> None:
    metadata, output = built

    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert "BSD 3-Clause License" in (ROOT / "LICENSE").read_text("utf8")
    assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    warnings = [line for line in output.lower().splitlines() if "warn" in line]
    assert not [line for line in warnings if "license" in line], output


def test_the_build_prints_no_deprecation_warning(built: tuple[Message, str]) -> None:
    _, output = built

    assert "Deprecat" not in output, output


def test_project_urls_and_platform_classifiers(built: tuple[Message, str]) -> None:
    metadata, _ = built
    classifiers = metadata.get_all("Classifier") or []

    assert metadata.get_all("Project-URL")
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
