"""`python -m async_kernel ...`: the same command line as `async-kernel ...`.

Kernelspecs start the kernel this way (`python -m async_kernel -f {connection_file}`), so the
kernel runs with the Python the kernelspec names rather than whatever `async-kernel` is on PATH.
"""

from async_kernel.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
