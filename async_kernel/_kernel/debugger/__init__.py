"""The kernel's debugger: the Jupyter debug protocol over debugpy (see `session`).

`cells` names the file each cell runs as, `dap` is the connection to debugpy's adapter,
`variables` lists the namespace while nothing is stopped, `threads` hides the kernel's threads.
Importing this package does not import debugpy; the first `initialize` does.
"""
