"""Depth and size bounds on a JSON or TOML text, checked before it is parsed.

Python's ``json`` and ``tomllib`` parsers recurse once per nesting level: a document of a few
kilobytes made of ``[[[[...`` raises ``RecursionError`` inside them (a traceback, not an error
message). Every document this tool reads back is scanned first, in one pass without recursion:
strings (and TOML comments) are skipped, and the depth of ``[`` and ``{`` is counted. A text over
:data:`MAX_DEPTH` levels or over its size cap is refused, naming the file, before any parser sees it
(docs/security.md, "Documents we read").
"""

from __future__ import annotations

MAX_DEPTH = 32  # the deepest document this tool writes nests 7 levels (a stage's result in stages.json)
MAX_DOCUMENT_BYTES = 64 * 2**20  # stages.json of a large fleet run is a few MB
MAX_VALUE_CHARS = 16_384  # one metadata value (exporter.export.metadata)


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped); no recursion."""
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
        i += 1
    return deepest


def toml_depth(text: str) -> int:
    """The deepest nesting of arrays and inline tables in a TOML ``text`` (basic, literal and
    multi-line strings and comments skipped; a table header's brackets close on its line); no recursion."""
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "\"'":
            quote3 = text.startswith(c * 3, i)
            end = c * 3 if quote3 else c
            i += 3 if quote3 else 1
            while i < n and not text.startswith(end, i):
                if c == '"' and text[i] == "\\":
                    i += 1
                elif not quote3 and text[i] == "\n":
                    break  # an unterminated string: the parser reports it
                i += 1
            i += len(end) - 1
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
        i += 1
    return deepest
