"""The complete programs in docs/caller.md run and succeed.

A fenced ```python block is a complete program when the line just before its fence is the HTML
comment ``<!-- runnable -->`` (at the fence's indentation, so blocks inside content tabs count).
Each one runs in its own interpreter, so examples cannot affect each other or this process.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "caller.md"
MARKER = "<!-- runnable -->"
TIMEOUT = 60


def runnable_blocks(path: Path) -> list[tuple[int, str]]:
    """`(line number of the fence, dedented code)` for each marked python block in `path`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[tuple[int, str]] = []
    for index, line in enumerate(lines[:-1]):
        if line.strip() != MARKER:
            continue
        indent = line[: len(line) - len(line.lstrip())]
        fence = lines[index + 1]
        match = re.fullmatch(re.escape(indent) + r"(`{3,})python\s*", fence)
        if match is None:
            raise AssertionError(f"{path.name}:{index + 1}: {MARKER} is not followed by ```python")
        closing = indent + match.group(1)
        for end in range(index + 2, len(lines)):
            if lines[end].rstrip() == closing:
                break
        else:
            raise AssertionError(f"{path.name}:{index + 2}: unclosed code fence")
        code = textwrap.dedent("\n".join(lines[index + 2 : end]))
        blocks.append((index + 2, code + "\n"))
    return blocks


BLOCKS = runnable_blocks(PAGE)


def test_the_page_has_runnable_examples() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"caller.md:{n}" for n, _ in BLOCKS])
def test_example_runs(line: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / f"caller_md_line_{line}.py"
    script.write_text(code, encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, (
        f"docs/caller.md:{line} exited with {completed.returncode}\n"
        f"--- stdout\n{completed.stdout}\n--- stderr\n{completed.stderr}"
    )
