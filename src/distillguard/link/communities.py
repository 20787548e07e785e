"""Community detection on the suspicious part of the account graph.

Clustering the whole graph would spend most of its time on benign neighbourhoods (a NAT, an
ISP) and let them swallow campaign members. Instead the graph is cut down to *seeds* (nodes
whose own risk is above a floor) plus their *strong neighbours* (nodes whose summed edge weight
to seeds is high, which is how a low-and-slow member gets in), and Louvain (networkx, BSD, fixed
seed) runs on that subgraph only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import networkx as nx
import pyarrow as pa

# How much one unit of edge weight of each kind counts when kinds are summed into one graph weight.
KIND_WEIGHTS: dict[str, float] = {
    "payment": 1.0,
    "email_burst": 0.8,
    "ip": 0.6,
    "sync": 0.8,
    "turns": 1.0,
    "template": 0.5,
    "asn_ua": 0.2,
}


def combine_edges(
    edges: pa.Table, kind_weights: Mapping[str, float] = KIND_WEIGHTS
) -> dict[tuple[str, str], float]:
    """One weight per node pair: the kind-weighted sum of its edges."""
    combined: dict[tuple[str, str], float] = defaultdict(float)
    cols = edges.select(["src", "dst", "kind", "weight"]).to_pydict()
    for src, dst, kind, weight in zip(cols["src"], cols["dst"], cols["kind"], cols["weight"], strict=True):
        combined[(src, dst)] += kind_weights.get(kind, 0.0) * weight
    return dict(combined)


def suspicious_subgraph(
    pair_weights: Mapping[tuple[str, str], float],
    node_scores: Mapping[str, float],
    floor: float,
    attach_min: float,
) -> nx.Graph:
    """Seeds (score >= floor) plus nodes whose summed weight to seeds reaches `attach_min`."""
    seeds = {n for n, s in node_scores.items() if s >= floor}
    to_seeds: dict[str, float] = defaultdict(float)
    for (a, b), w in pair_weights.items():
        if a in seeds and b not in seeds:
            to_seeds[b] += w
        elif b in seeds and a not in seeds:
            to_seeds[a] += w
    keep = seeds | {n for n, w in to_seeds.items() if w >= attach_min}
    graph = nx.Graph()
    graph.add_weighted_edges_from(
        (a, b, w) for (a, b), w in sorted(pair_weights.items()) if a in keep and b in keep and w > 0
    )
    return graph


def louvain(graph: nx.Graph, resolution: float = 1.0, seed: int = 0) -> list[set[str]]:
    """Louvain communities, largest first; deterministic for a given graph and seed."""
    parts = nx.community.louvain_communities(graph, weight="weight", resolution=resolution, seed=seed)
    return sorted((set(p) for p in parts), key=lambda p: (-len(p), min(p)))
