"""Reading a document we did not just write: bounded text, then a typed model (pydantic v2).

docs/security.md, "Documents we read". One path for every JSON document read back (a run folder's
``stages.json`` and ``summary.json``, sidecars, ``pace.json``, a package repository's record) and
for the JSON values in a model's metadata:

1. size and nesting are bounded before parsing (:mod:`.bounds`), so no parser recursion error;
2. the text is parsed (``json.loads``) and validated against a pydantic model or type
   (:func:`validate`): field types, value ranges, required keys;
3. any problem is one :class:`SchemaError` (a :class:`~exporter.errors.UserError`, exit 2) naming the
   file and the key (``stages.export:lookupvit_digits:g2.outputs``), with what was found and why.

Models allow unknown keys (newer files, fields no reader uses) but type every field a reader uses;
callers get typed values, never a ``dict`` to poke into.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..errors import UntrustedFile
from .bounds import MAX_DEPTH, MAX_DOCUMENT_BYTES, json_depth, toml_depth

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_HINT = ("The file was edited or comes from another tool: restore it, or delete it and let the tool write it "
                "again (for a run folder: rerun `lookupvit run -o DIR`; finished stages whose files are intact are kept).")


class SchemaError(UntrustedFile):
    """A document (or metadata value) that does not follow its schema: exit 2, naming file and key."""

    def __init__(self, source: str | Path, key: str | None, why: str, hint: str | None = None,
                 value: object = None, show_value: bool = False) -> None:
        shown = ""
        if show_value:
            text = repr(value)
            shown = f" = {text if len(text) <= 80 else text[:77] + '...'}"
        where = f"{source}" + (f": key {key}{shown}" if key else "")
        super().__init__(f"{where}: {why}.", hint or DEFAULT_HINT)
        self.source = str(source)
        self.key = key


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def schema_error(e: ValidationError, source: str | Path, prefix: str = "", hint: str | None = None) -> SchemaError:
    """The first error of ``e`` as a :class:`SchemaError` (the others are usually its consequences)."""
    err = e.errors(include_url=False)[0]
    at = _loc(tuple(err["loc"]))
    key = f"{prefix}.{at}" if prefix and at else (prefix or at or None)
    msg = str(err["msg"]).removeprefix("Value error, ")
    more = len(e.errors()) - 1
    why = msg[0].lower() + msg[1:] if msg else "invalid"
    if more:
        why += f" (and {more} more problem{'s' if more > 1 else ''})"
    return SchemaError(source, key, why, hint, err.get("input"), show_value=err["type"] not in ("missing",))


def check_text(text: str, source: str | Path, max_bytes: int = MAX_DOCUMENT_BYTES, toml: bool = False,
               hint: str | None = None) -> None:
    """Refuse a text over ``max_bytes`` or nested deeper than :data:`MAX_DEPTH` (see :mod:`.bounds`)."""
    if len(text) > max_bytes:
        raise SchemaError(source, None, f"{len(text)} characters, above the {max_bytes} this tool reads", hint)
    depth = (toml_depth if toml else json_depth)(text)
    if depth > MAX_DEPTH:
        raise SchemaError(source, None, f"nested {depth} levels deep, above the {MAX_DEPTH} this tool reads", hint)


def parse_json_text(text: str, source: str | Path, max_bytes: int = MAX_DOCUMENT_BYTES, key: str | None = None) -> Any:
    """``text`` parsed as JSON after the bounds check; a SchemaError naming ``source`` (and ``key``)."""
    try:
        check_text(text, source, max_bytes)
    except SchemaError as e:
        raise SchemaError(source, key, e.message.split(": ", 1)[-1].rstrip(".")) from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise SchemaError(source, key, f"not valid JSON ({str(e).splitlines()[0][:120]})") from None


def read_json(path: str | Path, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """The JSON document at ``path`` (bounded before it is read whole); OSError for a missing file."""
    path = Path(path)
    size = os.stat(path).st_size
    if size > max_bytes:
        raise SchemaError(path, None, f"{size} bytes, above the {max_bytes} this tool reads")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise SchemaError(path, None, "not UTF-8 text") from None
    return parse_json_text(text, path, max_bytes)


def validate(kind: type[M], data: Any, source: str | Path, prefix: str = "", hint: str | None = None) -> M:
    """``data`` as the pydantic model ``kind``; a :class:`SchemaError` naming ``source`` and the key."""
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        raise schema_error(e, source, prefix, hint) from None
    except RecursionError:  # cannot happen after the bounds check; never a traceback
        raise SchemaError(source, prefix or None, "nested too deeply") from None


def validate_value(adapter: TypeAdapter[T], data: Any, source: str | Path, key: str, hint: str | None = None) -> T:
    """``data`` as the type of ``adapter`` (a metadata value); a SchemaError naming ``source`` and ``key``."""
    try:
        return adapter.validate_python(data)
    except ValidationError as e:
        raise schema_error(e, source, key, hint) from None


def load_document(kind: type[M], path: str | Path, max_bytes: int = MAX_DOCUMENT_BYTES, hint: str | None = None) -> M:
    """Read, bound, parse and validate the JSON document at ``path`` as ``kind``."""
    return validate(kind, read_json(path, max_bytes), path, hint=hint)


def check_toml(text: str, source: str | Path, hint: str | None = None) -> None:
    """Bound a TOML text before ``tomllib`` parses it (a profile)."""
    check_text(text, source, MAX_DOCUMENT_BYTES, toml=True, hint=hint)
