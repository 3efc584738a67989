"""The ``lookupvit`` command: a thin click layer over the library, one module per pipeline stage."""

from .main import main

__all__ = ["main"]
