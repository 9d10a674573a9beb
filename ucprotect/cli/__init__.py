"""Command-line interface: ``app`` wires the command modules; ``main`` is the console script."""
from .app import app, main

__all__ = ["app", "main"]
