"""One typed schema layer for every document this tool reads back (docs/security.md, "Documents we read").

- :mod:`.bounds`: size and nesting bounds checked on the text before any parser runs (JSON and TOML);
- :mod:`.core`: read, bound, parse, validate; :class:`SchemaError` (exit 2) names the file and the key;
- :mod:`.run_folder`: ``stages.json``, ``summary.json``, ``latency.json``, ``accuracy.json``;
- :mod:`.pace`: ``pace.json``; :mod:`.metadata`: a model's JSON metadata values;
- :mod:`.repository`: a package repository's record of the files the tool wrote;
- :mod:`.sidecars`: a TensorRT engine's sidecar, and a stage's report read back from its model's sidecar;
- :mod:`.profile`: a deployment profile (``profiles/*.toml``), the one document here a person writes.

The models are pydantic v2 (strict types, no NaN/Inf, value ranges as field constraints). A
deployment profile is bounded here (:func:`check_toml`) before ``tomllib`` reads it, then validated
against the models of :mod:`.profile` (config :data:`.types.TOML_TABLE`: an unknown key is refused,
naming the closest valid one); exporter.profiles adds the rules across keys and hardware.
"""

from .core import (
    SchemaError,
    check_toml,
    load_document,
    parse_json_text,
    read_json,
    validate,
    validate_value,
)

__all__ = ["SchemaError", "check_toml", "load_document", "parse_json_text", "read_json", "validate", "validate_value"]
