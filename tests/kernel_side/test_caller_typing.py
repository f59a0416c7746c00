"""Caller.get as type checkers see it: its keywords are checked, and it returns a Caller.

One mypy run (strict, no project config, no cache shared with other runs) checks two small
files: one that uses `Caller.get` correctly, one with misspelt keywords.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
from async_kernel import Caller


def by_name() -> Caller:
    return Caller.get(name="x")  # an Any here would be a no-any-return error


def child_of(parent: Caller) -> Caller:
    return parent.get(name="y", backend="trio", protected=True)


def annotated() -> None:
    c: Caller = Caller.get(name="x")
    child: Caller = c.get(name="y")
    print(child)
"""

BAD = """\
from async_kernel import Caller

Caller.get(nmae="x")
Caller.get(name="x").get(nmae="y")
"""


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[int, str]]]:
    """mypy's errors in good.py and bad.py, as (line, message) by file name."""
    folder = tmp_path_factory.mktemp("typing")
    (folder / "good.py").write_text(textwrap.dedent(GOOD))
    (folder / "bad.py").write_text(textwrap.dedent(BAD))
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--config-file",
            "/dev/null",
            "--cache-dir",
            str(folder / "cache"),
            "--follow-imports",
            "silent",  # the snippets' errors only; async_kernel has its own type check
            str(folder / "good.py"),
            str(folder / "bad.py"),
        ],
        cwd=ROOT,  # async_kernel is found in the source tree
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "error: " in completed.stdout or completed.returncode == 0, completed.stderr
    errors: dict[str, list[tuple[int, str]]] = {"good.py": [], "bad.py": []}
    for line in completed.stdout.splitlines():
        match = re.search(r"(good\.py|bad\.py):(\d+): error: (.*)", line)
        if match:
            errors[match.group(1)].append((int(match.group(2)), match.group(3)))
    return errors


def test_correct_uses_of_get_type_check_clean_and_return_a_caller(
    mypy_output: dict[str, list[tuple[int, str]]],
) -> None:
    assert mypy_output["good.py"] == []


def test_a_misspelt_keyword_of_get_is_an_error_on_the_class_and_on_an_instance(
    mypy_output: dict[str, list[tuple[int, str]]],
) -> None:
    errors = mypy_output["bad.py"]
    assert [line for line, _ in errors] == [3, 4], errors
    for _, message in errors:
        assert "nmae" in message or "Unexpected keyword argument" in message, message
