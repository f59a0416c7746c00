"""The debugger's cell files and DAP framing, in process (no kernel)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from ipykernel.compiler import murmur2_x86

from async_kernel._kernel.debugger.cells import (
    CELL_FILES,
    HASH_SEED,
    CellCompiler,
    CellFiles,
    murmur2,
)
from async_kernel._kernel.debugger.dap import decode_headers, encode


@pytest.mark.parametrize(
    "code", ["", "a", "ab", "abc", "abcd", "abcde", "x = 1\n" * 50, "caf\u00e9 \u2603 \U0001f600"]
)
def test_murmur2_matches_the_rule_frontends_use(code: str) -> None:
    assert murmur2(code.encode(), HASH_SEED) == murmur2_x86(code, HASH_SEED)


def test_cell_files_are_private_and_made_only_when_dumped(tmp_path: Path) -> None:
    files = CellFiles(str(tmp_path / "cells"))
    path = files.path_for("x = 1\n")
    assert files.is_cell(path)
    assert not (tmp_path / "cells").exists()
    assert files.dump("x = 1\n") == path
    assert stat.S_IMODE(os.stat(tmp_path / "cells").st_mode) == 0o700
    assert Path(path).read_text() == "x = 1\n"
    files.remove()
    assert not (tmp_path / "cells").exists()


def test_cell_files_refuse_a_directory_others_can_read(tmp_path: Path) -> None:
    shared = tmp_path / "cells"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    with pytest.raises(PermissionError):
        CellFiles(str(shared)).dump("x = 1\n")
    assert list(shared.iterdir()) == []


def test_cells_compile_as_their_files_and_tracebacks_still_name_the_cell() -> None:
    compiler = CellCompiler()
    name = compiler.cache("y = 2\n", 7, raw_code="y = 2\n")
    assert name == CELL_FILES.path_for("y = 2\n")
    assert compiler.format_code_name(name) == ("Cell", "In[7]")


def test_dap_framing() -> None:
    data = encode({"type": "event", "event": "x"})
    header, _, body = data.partition(b"\r\n\r\n")
    assert decode_headers(header) == len(body)
    for bad in (b"Content-Type: x", b"Content-Length: -1", b"Content-Length: many"):
        with pytest.raises(ValueError):
            decode_headers(bad)
