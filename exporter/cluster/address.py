"""The ``--cluster`` address and connecting to it (Ray's ``ray.init``).

Ray's rules (docs.ray.io, "Configuring Ray" and "Ray Client"): ``address="auto"`` joins the cluster
started on this machine by ``ray start``; ``HOST:PORT`` is the head node's GCS port (``ray start
--head --port``), joined as a driver that runs on this machine; ``ray://HOST:PORT`` goes through the
Ray Client server of the head node (port 10001 by default; needs ``ray[client]`` here and on the
head). Ray is imported only by :func:`connect`, so a run without ``--cluster`` never loads it.

Before ``ray.init`` (which retries for minutes) the address is probed: nothing listening, or
something that is not a gRPC server (:func:`_speaks_grpc`), is refused within seconds (exit 2); the
probe is a plain socket, so Ctrl-C ends it at once (exit 130).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from ..errors import UserError

INSTALL_HINT = "Install the extra on this machine and on every node: pip install 'lookupvit-deploy[ray]' (or pip install -e '.[ray]')."
START_HINT = ("Start a cluster with `ray start --head --port 6379 --resources '{...}'` on the head node and "
              "`ray start --address HEAD:6379 ...` on the others (docs/cluster.md), then pass "
              "--cluster HEAD:6379, or --cluster auto on a node of it.")


@dataclass(frozen=True)
class ClusterAddress:
    text: str
    kind: str  # "auto", "gcs" (HOST:PORT), "client" (ray://HOST:PORT)
    host: str = ""
    port: int = 0

    @property
    def ray_address(self) -> str:
        return {"auto": "auto", "gcs": f"{self.host}:{self.port}", "client": f"ray://{self.host}:{self.port}"}[self.kind]


def parse_address(text: str) -> ClusterAddress:
    """``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; anything else is refused with the forms."""
    t = text.strip()
    if t == "auto":
        return ClusterAddress(t, "auto")
    kind, rest = ("client", t.removeprefix("ray://")) if t.startswith("ray://") else ("gcs", t)
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(
            f"--cluster {text!r} is not a cluster address.",
            "Give `auto` (the cluster running on this machine), HOST:PORT (the head node's `ray start --head "
            "--port`), or ray://HOST:PORT (its Ray Client server).",
        )
    return ClusterAddress(t, kind, host.strip("[]"), int(port))


def _reachable(addr: ClusterAddress, timeout_s: float = 3.0) -> None:
    """Refuse at once an address nothing listens on (ray.init would retry for a minute)."""
    try:
        socket.create_connection((addr.host, addr.port), timeout=timeout_s).close()
    except OSError as e:
        raise UserError(f"No Ray cluster answers at {addr.text} ({e.strerror or e}).", START_HINT) from None


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
HTTP2_SETTINGS = 0x04


def _speaks_grpc(addr: ClusterAddress, timeout_s: float = 5.0) -> None:
    """Refuse at once an address where something other than Ray listens. A Ray head's GCS port and its
    Ray Client port are gRPC servers, and a gRPC server answers the HTTP/2 client preface with a
    SETTINGS frame (RFC 9113, section 3.4); an HTTP/1 server, a database or a silent socket does not,
    and ray.init would wait on it for minutes."""
    try:
        with socket.create_connection((addr.host, addr.port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(HTTP2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except TimeoutError:
        head, why = b"", f"it sent nothing back within {timeout_s:g} s"
    except OSError as e:
        head, why = b"", f"the connection failed ({e.strerror or e})"
    else:
        why = "it closed the connection" if not head else f"it answered {head[:9]!r}"
    if len(head) == 9 and head[3] == HTTP2_SETTINGS:
        return
    raise UserError(
        f"Something answers at {addr.text}, but it is not a Ray cluster: {why}, where a Ray head (a gRPC server) "
        "answers with an HTTP/2 SETTINGS frame.",
        "Check the port: --cluster takes the head node's GCS port (`ray start --head --port 6379`) or, with "
        "ray://HOST:PORT, its Ray Client port (10001 by default). " + START_HINT,
    )


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--cluster needs Ray, which is not installed.", INSTALL_HINT) from None
    return ray


def connect(addr: ClusterAddress) -> Any:
    """Join the cluster as its driver; returns the ``ray`` module. Bad addresses exit 2 with the fix."""
    ray = import_ray()
    if addr.kind != "auto":
        _reachable(addr)
        _speaks_grpc(addr)
    try:
        ray.init(address=addr.ray_address, namespace="lookupvit", logging_level="ERROR", log_to_driver=False,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        lines = str(e).strip().splitlines()
        hint = START_HINT
        if addr.kind == "client" and "ray[client]" in str(e):
            hint = "ray://HOST:PORT needs Ray Client: pip install 'ray[client]' here and on the head node."
        reason = lines[0].rstrip(".") if lines else type(e).__name__
        raise UserError(f"Could not join the Ray cluster at {addr.text}: {reason}.",
                        hint) from None
    return ray
