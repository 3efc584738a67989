"""Paths read from files are untrusted: the one confinement helper, names as single path
components, and deletion of what this tool wrote (docs/security.md).

The rule (docs/security.md, "Paths stay inside their folder"): every path this tool reads from a
file it did not just write in this process (a run folder's ``stages.json``, a sidecar, a
``summary.json``, a model's external data, a package repository's record) is a path *relative to
the folder that holds the file*. It is accepted only when

- it is not empty, holds no NUL byte and is not absolute (``/etc/passwd``, ``C:\\x``);
- none of its components is ``..`` (``a/../../b`` is refused even where it would land inside);
- resolved, following every symbolic link that exists on the way, it still lies inside the folder.

Anything else is a :class:`PathEscape` (a :class:`~exporter.errors.UserError`: exit 2) naming the
file the path was read from and the key that held it; the caller refuses before it writes or
deletes anything.

Names that become folder names (``package --name``, profile names, variant names) are single path
components (:func:`single_component`). Deletion (:func:`remove_file`, :func:`remove_tree`) never
follows a symbolic link: a link is refused, never its target removed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import UntrustedFile, UserError

NAME_RE = re.compile(r"^[^./\\\x00-\x1f\x7f-][^/\\\x00-\x1f\x7f]{0,127}$")  # one component, not hidden


class PathEscape(UntrustedFile):
    """A path read from a file leaves the folder it must stay in (exit 2)."""


def _where(source: str | Path | None, key: str | None) -> str:
    if source is None:
        return "" if key is None else f" ({key})"
    return f" in {source}" + ("" if key is None else f", key {key}")


def _escape(rel: object, folder: Path, source: str | Path | None, key: str | None, why: str) -> PathEscape:
    shown = repr(rel)
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return PathEscape(
        f"The path {shown}{_where(source, key)} {why}; it must be a relative path inside {folder}. "
        "Nothing was written or deleted.",
        "The file was edited or comes from elsewhere: restore it, or delete it and let the tool write it again "
        "(for a run folder: rerun `lookupvit run -o DIR`, finished stages whose files are intact are kept).",
    )


def confined(folder: str | Path, rel: object, source: str | Path | None = None, key: str | None = None) -> Path:
    """``folder / rel`` when ``rel`` obeys the module docstring's rule, else :class:`PathEscape`
    naming ``source`` (the file ``rel`` was read from) and ``key``."""
    root = Path(folder)
    if not isinstance(rel, str | os.PathLike):
        raise _escape(rel, root, source, key, "is not a path")
    text = os.fspath(rel)
    if not isinstance(text, str) or not text or "\x00" in text or len(text) > 4096:
        raise _escape(rel, root, source, key, "is empty or not a valid path")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or PureWindowsPath(text).drive:
        raise _escape(rel, root, source, key, "is absolute")
    if ".." in PurePosixPath(text.replace("\\", "/")).parts:
        raise _escape(rel, root, source, key, "climbs out with '..'")
    target = root / text
    base = root.resolve()
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop
        raise _escape(rel, root, source, key, "runs through a symbolic-link loop") from None
    if not resolved.is_relative_to(base):
        raise _escape(rel, root, source, key, "leaves the folder through a symbolic link")
    return target


def relative_inside(folder: str | Path, path: str | Path) -> str | None:
    """``path`` relative to ``folder`` when it lies inside it (resolved), else None."""
    try:
        return str(Path(path).resolve().relative_to(Path(folder).resolve()))
    except (ValueError, OSError, RuntimeError):
        return None


def single_component(name: object, what: str, hint: str | None = None) -> str:
    """``name`` when it can be one folder name inside the folder it is joined to: no ``/`` or ``\\``,
    no control character, not starting with ``.`` (so neither ``..`` nor a hidden name) or ``-``, at
    most 128 characters; else a UserError naming ``what`` (e.g. ``--name``)."""
    if isinstance(name, str) and NAME_RE.match(name):
        return name
    shown = repr(name)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise UserError(
        f"{what} {shown} cannot be a folder name: it must be one path component (no '/' or '\\', no control "
        "characters, not starting with '.' or '-', at most 128 characters).",
        hint or f"Choose a plain name for {what}, e.g. lookupvit_digits_g3.",
    )


def is_plain_file(path: str | Path) -> bool:
    """A regular file that is not a symbolic link."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_plain_dir(path: str | Path) -> bool:
    """A folder that is not a symbolic link."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def remove_file(folder: str | Path, rel: str, source: str | Path | None = None, key: str | None = None) -> int:
    """Delete the regular file ``folder / rel`` (confined; a symbolic link is refused, never
    followed); returns its size, 0 when there was nothing to delete."""
    p = confined(folder, rel, source, key)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return 0
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise _escape(rel, Path(folder), source, key, "is a symbolic link or not a regular file, so it is not one "
                      "this tool wrote")
    p.unlink()
    return st.st_size


def remove_tree(folder: str | Path, name: str, what: str) -> None:
    """Delete the folder ``folder / name`` (a single component) and everything in it, never
    following a symbolic link: a link in its place is refused; links inside are removed as links."""
    single_component(name, what)
    p = Path(folder) / name
    if os.path.islink(p) or not is_plain_dir(p):
        raise UserError(f"{p} is a symbolic link or not a folder: it was not written by this tool and is left alone.",
                        "Move it away, or choose another output folder.")
    shutil.rmtree(p)  # rmtree removes symbolic links inside as links (fd-based, never descends through them)


__all__ = [
    "NAME_RE", "PathEscape", "confined", "is_plain_dir", "is_plain_file", "relative_inside", "remove_file",
    "remove_tree", "single_component",
]
