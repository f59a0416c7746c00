"""The file each cell runs as, so a debugger's breakpoints in a cell find its code.

A frontend (JupyterLab, VS Code) never sees the kernel's files: it maps a cell to the file the
kernel runs it as by a rule the kernel announces in its `debugInfo` reply,
`tmpFilePrefix + murmur2(source, hashSeed) + tmpFileSuffix`, the hash taken over the cell's
source as UTF-8 (the Jupyter debug protocol names the hash method `Murmur2`). The shell compiles
every cell under that name ([CellCompiler][async_kernel._kernel.debugger.cells.CellCompiler]),
debugging or not, so the functions a cell defined before the debugger started stop at their
breakpoints too; `dumpCell` writes the source to that path so that debugpy can read it.

The directory is private: its name has a random part, it is made (mode 0700) only when the
first cell is dumped, and it is removed when the kernel exits. Nothing is written while nobody
debugs.
"""

from __future__ import annotations

import contextlib
import os
import stat

from IPython.core.compilerop import CachingCompiler

__all__ = ["CELL_FILES", "HASH_SEED", "CellCompiler", "CellFiles", "murmur2"]

HASH_SEED = 0xC70F6907
"""The `hashSeed` announced in debugInfo (the one ipykernel announces, so any frontend that
hard-codes it still finds the cells)."""

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes, seed: int) -> int:
    """MurmurHash2 (32-bit, little-endian words) of `data`, as JupyterLab's debugger computes
    it over a cell's UTF-8 source."""
    length = len(data)
    h = (seed ^ length) & _MASK
    end = length & ~3
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail:
        h ^= int.from_bytes(data[end:], "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


class CellFiles:
    """Names a cell's file and writes it, in one private directory per kernel process.

    Thread-safe: `path_for` is pure; `dump` and `remove` touch only this directory.
    """

    suffix = ".py"

    def __init__(self, directory: str | None = None) -> None:
        self._directory = directory

    @property
    def directory(self) -> str:
        """The cells' directory (named on first use: the kernel's start-up does no file system
        work for it)."""
        if self._directory is None:
            import secrets
            import tempfile

            name = f"async_kernel_{os.getpid()}_{secrets.token_hex(4)}"
            self._directory = os.path.join(tempfile.gettempdir(), name)
        return self._directory

    @property
    def prefix(self) -> str:
        """The debugInfo `tmpFilePrefix`: the directory and a separator."""
        return self.directory + os.sep

    def path_for(self, code: str) -> str:
        """The file a cell with source `code` runs as (whether or not it has been written)."""
        return (
            f"{self.prefix}{murmur2(code.encode('utf-8', 'surrogatepass'), HASH_SEED)}{self.suffix}"
        )

    def is_cell(self, path: str) -> bool:
        """Whether `path` names a cell's file."""
        return path.startswith(self.prefix) and path.endswith(self.suffix)

    def dump(self, code: str) -> str:
        """Write `code` to its file and return the path.

        Raises:
            OSError: the directory cannot be made, or exists but is not this user's private
                directory (someone else made it first: nothing is written there).
        """
        self._ensure_directory()
        path = self.path_for(code)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        with open(fd, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(code)
        return path

    def _ensure_directory(self) -> None:
        try:
            os.mkdir(self.directory, 0o700)
        except FileExistsError:
            info = os.lstat(self.directory)
            if (
                not stat.S_ISDIR(info.st_mode)
                or info.st_uid != os.getuid()
                or stat.S_IMODE(info.st_mode) & 0o077
            ):
                raise PermissionError(
                    f"{self.directory} exists and is not this user's private directory"
                ) from None

    def remove(self) -> None:
        """Remove the directory and the cells in it (the kernel exits). Never raises."""
        if self._directory is None:
            return  # never named, so never made
        with contextlib.suppress(OSError):
            if os.path.isdir(self._directory) and not os.path.islink(self._directory):
                import shutil

                shutil.rmtree(self._directory, ignore_errors=True)


CELL_FILES = CellFiles()
"""The kernel process's cell files (one directory per process)."""


class CellCompiler(CachingCompiler):
    """IPython's compiler, naming each cell's code by its file in
    [CELL_FILES][async_kernel._kernel.debugger.cells.CELL_FILES].

    Tracebacks still say `Cell In[n]`: IPython maps the name to the cell's number.
    """

    def get_code_name(self, raw_code: str, transformed_code: str, number: int) -> str:
        return CELL_FILES.path_for(raw_code)
