"""``python -m exporter.cli``: the same command as the ``lookupvit`` script."""

from .main import main

main()
