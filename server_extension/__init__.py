"""async-kernel Jupyter Server extension: REST endpoints reporting Caller state per kernel."""
