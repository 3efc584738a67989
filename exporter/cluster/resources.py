"""What a profile's device task needs, against what the alive nodes of the cluster offer.

Ray's scheduling rule (docs.ray.io, "Resources"): a task runs on a node whose resources cover
every quantity it asks for (``num_cpus``, ``num_gpus``, custom resources); a node with an NVIDIA GPU
of a known type advertises ``accelerator_type:<TYPE>``. A request no node can cover is *infeasible*:
Ray would keep it pending, so the driver compares first and reports such a profile at once with
what each node offers (:func:`infeasible_message`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..profiles.profile import ClusterSettings

_INTERNAL = ("node:", "memory", "object_store_memory")  # bookkeeping resources, not capabilities


@dataclass(frozen=True)
class NodeOffer:
    node_id: str
    address: str
    resources: dict[str, float]

    def describe(self) -> str:
        shown = {k: v for k, v in sorted(self.resources.items()) if not k.startswith(_INTERNAL)}
        body = ", ".join(f"{k}: {v:g}" for k, v in shown.items())
        return f"node {self.address} (id {self.node_id[:12]}) {{{body}}}"


def profile_needs(cluster: ClusterSettings) -> dict[str, float]:
    """The quantities the device task of a profile asks Ray for."""
    needs: dict[str, float] = {"CPU": cluster.cpus}
    if cluster.gpus:
        needs["GPU"] = cluster.gpus
    needs.update(cluster.ray_resources())
    return needs


def fits(needs: dict[str, float], offer: NodeOffer) -> bool:
    return all(offer.resources.get(k, 0.0) >= v for k, v in needs.items())


def alive_nodes(ray: Any) -> list[NodeOffer]:
    return [NodeOffer(n["NodeID"], n.get("NodeManagerAddress", "?"), dict(n.get("Resources", {})))
            for n in ray.nodes() if n.get("Alive")]


def infeasible_message(profile: str, needs: dict[str, float], offers: list[NodeOffer]) -> str:
    want = ", ".join(f"{k}: {v:g}" for k, v in needs.items())
    have = "; ".join(o.describe() for o in offers) or "no alive node"
    return (f"profile {profile} needs {{{want}}} on one node; no node of the cluster offers it. "
            f"The cluster offers: {have}. Start a node with these resources (ray start ... --resources), "
            "or change the profile's [cluster] table")
