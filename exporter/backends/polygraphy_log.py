"""Polygraphy prints its log to stdout; route it through Python logging (stderr) instead, so that
``--json`` output stays one clean document, and keep only errors."""

from __future__ import annotations

import logging


def quiet_polygraphy(level: str = "ERROR") -> None:
    from polygraphy.logger import G_LOGGER

    G_LOGGER.colors = False  # also skips Polygraphy's printed hint about the 'colored' module
    G_LOGGER.use_python_logging_system = True
    G_LOGGER.module_severity = getattr(G_LOGGER, level)
    logging.getLogger("Polygraphy").setLevel(getattr(logging, level))
