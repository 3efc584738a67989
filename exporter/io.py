"""File helpers shared by every stage: atomic writes, temporaries, early output checks, hashes.

Atomic writes (POSIX ``rename(2)`` replaces its target atomically within one file system): data is
written to a hidden temporary next to the target and renamed over it only once complete, so a crash
never leaves a half-written artefact. Files that belong together (a model, its external data and its
JSON sidecar) are written into one private staging folder and renamed into place only once all of
them are written: a full disk fails before anything is committed, never leaving a model without
its sidecar.

Temporaries are named ``.<target>.<host>.<pid>.<random>`` (a folder) or the same with ``.tmp`` (a
file). A process killed with SIGKILL cannot remove its own, so the first write of a process into a
folder removes the stale ones there. The rule, safe for concurrent writers: a temporary is stale when

- it was made on this host by a process that no longer runs (its pid is in its name), or
- it was made on another host, or by an older version of this tool (no host and pid in its name),
  and nothing in it has been modified for :data:`STALE_AGE_S` (two hours).

A live writer on this host is never touched, whatever its age; one on another host (a shared network
folder) is recognised by its recent writes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UserError

STALE_AGE_S = 2 * 3600.0
_HOST = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:32] or "host"
_OURS = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}(?:\.tmp)?$")
# tempfile's names, written by earlier versions: ".<name>.<8 chars>[.tmp]"
_LEGACY = re.compile(r"^\.(?P<name>.+\.(?:onnx|json|data|plan|safetensors|html|png))\.[a-z0-9_]{8}(?:\.tmp)?$")
_swept: set[str] = set()


def temp_name(target: str, suffix: str = "") -> str:
    """A hidden temporary's name for ``target`` (see the module docstring)."""
    return f".{target}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}{suffix}"


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def _last_modified(p: Path) -> float:
    t = p.lstat().st_mtime
    if p.is_dir() and not p.is_symlink():
        for child in p.iterdir():
            with contextlib.suppress(OSError):
                t = max(t, child.lstat().st_mtime)
    return t


def is_stale_temporary(p: Path, now: float | None = None) -> bool:
    """Whether ``p`` is a temporary of this tool that no live writer owns (module docstring's rule)."""
    m = _OURS.match(p.name)
    if m is not None and m.group("host") == _HOST:
        return not _pid_running(int(m.group("pid")))
    if m is None and _LEGACY.match(p.name) is None:
        return False
    try:
        return (now or time.time()) - _last_modified(p) > STALE_AGE_S
    except OSError:
        return False


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the stale temporaries in ``folder``; returns what was removed. Never raises."""
    removed: list[Path] = []
    try:
        entries = [Path(e.path) for e in os.scandir(folder) if e.name.startswith(".")]
    except OSError:
        return removed
    now = time.time()
    for p in entries:
        if not is_stale_temporary(p, now):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def _sweep_once(folder: Path) -> None:
    key = str(folder.resolve())
    if key not in _swept:
        _swept.add(key)
        remove_stale_temporaries(folder)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path.parent)
    tmp = path.parent / temp_name(path.name, ".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~umask))
    except OSError as e:
        e.filename = str(path)
        raise
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _name_target(e, tmp, path)
        raise


def _name_target(e: BaseException, tmp: Path, target: Path) -> None:
    """An OSError about a temporary (or a failed write, which names no file) names the file the
    user asked for instead."""
    if isinstance(e, OSError) and (e.filename is None or str(e.filename).startswith(str(tmp))):
        e.filename = str(target)


@contextlib.contextmanager
def private_folder(path: str | Path, label: str = "") -> Iterator[Path]:
    """A private temporary folder next to ``path`` (``.<name><label>.<host>.<pid>.<random>/``),
    removed on every way out of the block (an exception, Ctrl-C, SIGTERM through SystemExit)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path.parent)
    folder = path.parent / temp_name(path.name + label)
    try:
        folder.mkdir()
    except OSError as e:
        e.filename = str(path)
        raise
    try:
        yield folder
    except BaseException as e:
        _name_target(e, folder, path)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def staged(path: str | Path) -> Iterator[Path]:
    """Write the files of one artefact into the yielded private folder, under their final names;
    when the block succeeds they are renamed next to ``path``: every other file first (external
    data), then ``path`` itself, then its sidecar ``<path>.json`` last. Nothing is committed if the
    block fails, and the folder is always removed."""
    path = Path(path)
    with private_folder(path) as folder:
        yield folder
        sidecar = f"{path.name}.json"
        names = sorted(p.name for p in folder.iterdir())
        order = [n for n in names if n not in (path.name, sidecar)] + [n for n in (path.name, sidecar) if n in names]
        for name in order:
            os.replace(folder / name, path.parent / name)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(data))
    return Path(path)


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --- operating-system errors as user errors ----------------------------------------------------

ENVIRONMENT_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.ENOTDIR,
    errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP,
}


def is_environment_error(e: BaseException) -> bool:
    """An OSError about the file system the user pointed us at (not a bug of ours)."""
    return isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS


def environment_cause(e: BaseException | None) -> OSError | None:
    """The environment OSError (full disk, read-only folder ...) that ``e`` is or was raised from
    (its ``__cause__`` / ``__context__`` chain): a library that wraps a full disk in its own exception
    type is still a full disk, exit 2, never a failed stage."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if is_environment_error(e):
            return e  # type: ignore[return-value]
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def format_bytes(n: float | None) -> str:
    """A byte count for people, in decimal units (``5.3 GB``, ``576.0 MB``, ``812 B``; ``-`` for none):
    the one formatter of sizes in messages, tables and reports."""
    if n is None:
        return "-"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def os_error(e: OSError, action: str | None = None) -> UserError:
    """``e`` as a one-paragraph UserError naming the path and the fix."""
    path = e.filename if e.filename is not None else "the output"
    where = f"{path}"
    code = e.errno
    if action is None:
        action = "write" if code in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "use"
    reason = e.strerror or os.strerror(code or 0)
    hints = {
        errno.EACCES: "You may not write there: give -o a folder you can write to, or change its permissions.",
        errno.EPERM: "You may not write there: give -o a folder you can write to, or change its permissions.",
        errno.EROFS: "That folder is on a read-only file system: give -o a folder on a writable disk.",
        errno.ENOSPC: f"The disk is full: free some space (`df -h {Path(path).parent}` shows it) or give -o a "
                      "folder on another disk. Nothing half-written was left behind.",
        errno.EDQUOT: "Your disk quota is used up: free some space or give -o a folder on another disk.",
        errno.EFBIG: "The file exceeds the file-size limit of this process (`ulimit -f`) or of the file system: "
                     "raise the limit or give -o a folder on another disk. Nothing half-written was left behind.",
        errno.ENOTDIR: "That path or a part of it is a regular file, not a folder: give -o a path whose parents "
                       "are folders (or remove the file in the way).",
        errno.EISDIR: "That path is a folder, where a file is expected: name a file (e.g. model.onnx) instead.",
        errno.EEXIST: "A file is in the way where a folder is needed: remove it or choose another -o.",
        errno.ENAMETOOLONG: "Choose a shorter path.",
        errno.ELOOP: "The path has a symbolic-link loop: choose another path.",
    }
    return UserError(f"Cannot {action} {where}: {reason}.", hints.get(code or 0, "Check the path and try again."))


def _existing_ancestor(p: Path) -> Path:
    p = p.absolute()
    while not p.exists():
        if p.parent == p:
            break
        if p.parent.exists() and not p.parent.is_dir():
            raise os_error(NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(p)), "create")
        p = p.parent
    return p


def check_writable_dir(folder: str | Path, need_bytes: int = 0) -> None:
    """Fail early (before any heavy work) when files cannot be written into ``folder`` (it may not
    exist yet: then its nearest existing parent is probed, and nothing is created): a read-only or
    unwritable folder, a regular file in the way, or less free space than ``need_bytes``. The probe
    creates and removes one empty hidden file."""
    folder = Path(folder)
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise os_error(NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)), "write into")
    probe = base / temp_name("probe", ".tmp")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as e:
        e.filename = str(folder)
        raise os_error(e, "write into") from None
    if need_bytes:
        free = shutil.disk_usage(base).free
        if free < need_bytes:
            raise UserError(
                f"Not enough free space for {folder}: about {format_bytes(need_bytes)} is needed, "
                f"{format_bytes(free)} is free.",
                f"Free some space (`df -h {base}` shows it) or give -o a folder on another disk.",
            )


def check_writable_file(path: str | Path, need_bytes: int = 0) -> None:
    """:func:`check_writable_dir` for the folder of the file ``path``, which must not be a folder."""
    path = Path(path)
    if path.is_dir():
        raise os_error(IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path)))
    check_writable_dir(path.parent, need_bytes)


def memory_bytes() -> int:
    """This machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_memory(need_bytes: float, what: str, hint: str) -> None:
    """Refuse work whose estimated memory exceeds this machine's, before allocating any of it."""
    total = memory_bytes()
    if total and need_bytes > total:
        raise UserError(
            f"{what} needs about {format_bytes(need_bytes)} of memory; this machine has {format_bytes(total)}.", hint
        )


__all__ = [
    "STALE_AGE_S", "atomic_path", "check_memory", "check_writable_dir", "check_writable_file", "environment_cause",
    "is_environment_error",
    "is_stale_temporary", "json_text", "memory_bytes", "os_error", "private_folder", "remove_stale_temporaries",
    "sha256_file", "staged", "temp_name", "write_json",
]
