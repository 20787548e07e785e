"""Community detection on the suspicious part of the account graph.

Clustering the whole graph would spend most of its time on benign neighbourhoods (a NAT, an
ISP) and let them swallow campaign members. Instead the graph is cut down to *seeds* (nodes
whose own risk is above a floor) plus the few non-seeds that are tied to them the way campaign
members are, and Louvain (networkx, BSD, fixed seed) runs on that subgraph only.

Benign users touch campaigns all the time: a casual user sends the same generic prompt as a
harvesting script, a home user sits in the /24 a residential proxy exits from. What they lack is
*corroboration*, so a non-seed is attached only when

- it has strong ties to several distinct seeds (or already attached nodes), and
- most of its graph weight goes to them rather than to other unflagged users, and
- each counted tie is backed by at least two independent families of evidence (content,
  infrastructure, account records), or by content alone when that content is shared with
  nothing but suspicious nodes (a reseller's end user sending a campaign's private templates).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import ibis
import networkx as nx
import numpy as np
import pyarrow as pa

# How much one unit of edge weight of each kind counts when kinds are summed into one graph weight.
# Account records and shared infrastructure-at-the-same-time separate campaigns of one actor; content
# (templates, their timing) is shared across an actor's campaigns and with benign users, so it counts less.
# An ASN + user-agent pair is shared by whole ISPs and SDK versions: context, never a link on its own.
KIND_WEIGHTS: dict[str, float] = {
    "payment": 1.0,
    "email_burst": 0.8,
    "turns": 0.6,
    "ip": 0.4,
    "sync": 0.3,
    "template": 0.2,
    "asn_ua": 0.02,
}
# Independent families of evidence: two edges of one family are one piece of evidence.
KIND_FAMILIES: dict[str, str] = {
    "payment": "account",
    "email_burst": "account",
    "ip": "infrastructure",
    "asn_ua": "infrastructure",
    "template": "content",
    "sync": "content",
    "turns": "content",
}


@dataclass(slots=True)
class Tie:
    """Everything linking one node pair: the kind-weighted sum, and which kinds contributed."""

    weight: float = 0.0
    kinds: AbstractSet[str] = frozenset()

    @property
    def families(self) -> set[str]:
        return {KIND_FAMILIES.get(k, k) for k in self.kinds}


def combine_edges(
    edges: pa.Table, kind_weights: Mapping[str, float] = KIND_WEIGHTS
) -> dict[tuple[str, str], Tie]:
    """One tie per node pair: the kind-weighted sum of its edges and the kinds behind it.

    Summed in the engine, one row per pair, with the kinds as a bit mask: a campaign of 20,000
    accounts has millions of edges, and one Python object per edge row does not fit beside them.
    """
    kinds = sorted(kind_weights)
    bit = {k: 1 << i for i, k in enumerate(kinds)}
    t = ibis.memtable(edges.select(["src", "dst", "kind", "weight"]))
    factor = t.kind.cases(*((k, kind_weights[k]) for k in kinds), else_=0.0)
    mask = t.kind.cases(*((k, bit[k]) for k in kinds), else_=0)
    t = t.mutate(w=factor * t.weight, mask=mask).filter(lambda r: r.w > 0)
    pairs = t.group_by(["src", "dst"]).aggregate(w=t.w.sum(), mask=t.mask.bit_or()).to_pyarrow()
    kindsets: dict[int, frozenset[str]] = {}
    out: dict[tuple[str, str], Tie] = {}
    for src, dst, w, m in zip(
        pairs["src"].to_pylist(),
        pairs["dst"].to_pylist(),
        pairs["w"].to_pylist(),
        pairs["mask"].to_pylist(),
        strict=True,
    ):
        ks = kindsets.get(m)
        if ks is None:
            ks = kindsets[m] = frozenset(k for k in kinds if m & bit[k])
        out[(src, dst)] = Tie(w, ks)
    return out


@dataclass(frozen=True)
class AttachRule:
    """When a non-seed joins the suspicious subgraph (see the module docstring)."""

    tie_min: float = 0.04  # combined weight of one tie that counts towards attachment
    min_ties: int = 3  # distinct suspicious nodes it must be tied to
    min_share: float = 0.6  # share of its whole graph weight that goes to suspicious nodes
    min_families: int = 2  # evidence families a counted tie needs ...
    content_share: float = 0.7  # ... unless the node's ties go almost only to suspicious nodes
    rounds: int = 2  # attachment rounds (attached nodes count as suspicious in the next round)


def suspicious_subgraph(
    ties: Mapping[tuple[str, str], Tie],
    node_scores: Mapping[str, float],
    floor: float,
    rule: AttachRule = AttachRule(),
    edge_min: float = 0.0,
) -> tuple[nx.Graph, set[str]]:
    """(graph on seeds plus attached nodes, the attached nodes); seeds have score >= floor.

    The graph holds the ties of at least `edge_min` (the clustering's core threshold): at scale the
    weak ties between suspicious nodes are millions, and only their sums are needed, from `ties`."""
    suspicious = {n for n, s in node_scores.items() if s >= floor}
    neighbours: dict[str, list[tuple[str, Tie]]] = defaultdict(list)
    total: dict[str, float] = defaultdict(float)
    for (a, b), tie in ties.items():
        neighbours[a].append((b, tie))
        neighbours[b].append((a, tie))
        total[a] += tie.weight
        total[b] += tie.weight
    attached: set[str] = set()
    for _ in range(rule.rounds):
        new = {
            n
            for n in neighbours
            if n not in suspicious and _attaches(neighbours[n], total[n], suspicious, rule)
        }
        if not new:
            break
        attached |= new
        suspicious |= new
    graph = nx.Graph()
    graph.add_nodes_from(sorted(n for n in suspicious if n in neighbours))
    graph.add_weighted_edges_from(
        sorted(
            (a, b, tie.weight)
            for (a, b), tie in ties.items()
            if tie.weight >= edge_min and a in suspicious and b in suspicious
        )
    )
    return graph, attached


def _attaches(links: list[tuple[str, Tie]], total: float, suspicious: set[str], rule: AttachRule) -> bool:
    to_suspicious = [(m, t) for m, t in links if m in suspicious]
    share = sum(t.weight for _, t in to_suspicious) / total if total else 0.0
    if share < rule.min_share:
        return False
    families = 1 if share >= rule.content_share else rule.min_families
    strong = [m for m, t in to_suspicious if t.weight >= rule.tie_min and len(t.families) >= families]
    return len(strong) >= rule.min_ties


def similar(a: np.ndarray | None, b: np.ndarray | None, min_similarity: float) -> bool:
    """Whether two capability profiles (request counts per capability) may be one campaign: cosine
    similarity >= `min_similarity`; a node without a profile (metadata-only logs) fits any."""
    if a is None or b is None or min_similarity <= 0:
        return True
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return na == 0 or nb == 0 or float(a @ b) / (na * nb) >= min_similarity


def average_linkage(
    graph: nx.Graph,
    ties: Mapping[tuple[str, str], Tie],
    link_min: float,
    merge_min: float,
    profiles: Mapping[str, np.ndarray] | None = None,
    min_similarity: float = 0.0,
) -> list[set[str]]:
    """Campaigns: cores (components of ties >= `link_min`: shared payment, a sign-up burst) merged greedily
    while the mean tie over all node pairs of two groups reaches `merge_min`, largest first.

    Average linkage has no resolution limit: two small campaigns of one actor that share servers stay
    apart however big a third campaign is, which modularity-based methods (Louvain) cannot promise.
    With `profiles`, neither a core edge nor a merge joins nodes or groups whose capability profiles
    differ (`similar`): an actor's servers are shared by all its campaigns, what each harvests is not.
    """
    profiles = profiles or {}
    strong = nx.Graph()
    strong.add_nodes_from(graph)
    strong.add_edges_from(
        (a, b)
        for a, b, w in graph.edges(data="weight")
        if w >= link_min and similar(profiles.get(a), profiles.get(b), min_similarity)
    )
    groups = {i: set(c) for i, c in enumerate(sorted(nx.connected_components(strong), key=min))}

    def profile(group: set[str]) -> np.ndarray | None:
        found = [profiles[n] for n in group if n in profiles]
        return np.sum(found, axis=0) if found else None

    group_profile = {i: profile(g) for i, g in groups.items()}
    group_of = {n: i for i, c in groups.items() for n in c}
    between: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for (a, b), tie in ties.items():
        ga, gb = group_of.get(a), group_of.get(b)
        if ga is not None and gb is not None and ga != gb:
            between[ga][gb] += tie.weight
            between[gb][ga] += tie.weight
    heap = [
        (-w / (len(groups[i]) * len(groups[j])), i, j)
        for i in between
        for j, w in between[i].items()
        if i < j
    ]
    heapq.heapify(heap)
    while heap:
        neg, i, j = heapq.heappop(heap)
        if -neg < merge_min:
            break
        if i not in groups or j not in groups or j not in between[i]:
            continue
        if abs(-neg - between[i][j] / (len(groups[i]) * len(groups[j]))) > 1e-12:
            continue  # stale: one side grew since this entry was pushed
        if not similar(group_profile[i], group_profile[j], min_similarity):
            continue
        groups[i] |= groups.pop(j)
        pj = group_profile.pop(j)
        pi = group_profile[i]
        group_profile[i] = pj if pi is None else pi if pj is None else pi + pj
        for k, w in between.pop(j).items():
            del between[k][j]
            if k != i:
                between[i][k] += w
                between[k][i] += w
        for k, w in between[i].items():
            heapq.heappush(heap, (-w / (len(groups[i]) * len(groups[k])), min(i, k), max(i, k)))
    return sorted(groups.values(), key=lambda p: (-len(p), min(p)))
