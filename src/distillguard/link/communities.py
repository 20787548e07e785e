"""Community detection on the suspicious part of the account graph.

Clustering the whole graph would spend most of its time on benign neighbourhoods (a NAT, an
ISP) and let them swallow campaign members. Instead the graph is cut down to *seeds* (nodes
whose own risk is above a floor) plus the few non-seeds that are tied to them the way campaign
members are, and average linkage (below) runs on that subgraph only, over arrays
(scipy's sparse connected components for the cores).

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
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from ibis.expr.types import Table
from scipy import sparse, stats
from scipy.sparse import csgraph

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


_KIND_ORDER: tuple[str, ...] = tuple(sorted(KIND_FAMILIES))
_BIT: dict[str, int] = {k: 1 << i for i, k in enumerate(_KIND_ORDER)}
# Number of distinct evidence families behind each kinds bit mask.
_FAMILY_COUNT = np.array(
    [len({KIND_FAMILIES[k] for k in _KIND_ORDER if m & _BIT[k]}) for m in range(1 << len(_KIND_ORDER))]
)


@dataclass(frozen=True)
class Ties:
    """Everything linking node pairs, as arrays: one row per pair with a < b (indexes into `nodes`,
    which is sorted), the kind-weighted sum of its edges, and the kinds behind it as a bit mask.

    Arrays rather than one object per pair: a campaign of 20,000 accounts has millions of pairs."""

    nodes: np.ndarray  # node ids (str), sorted
    a: np.ndarray  # int64
    b: np.ndarray  # int64
    weight: np.ndarray  # float64
    mask: np.ndarray  # int64

    @property
    def families(self) -> np.ndarray:
        """Independent evidence families per pair."""
        return _FAMILY_COUNT[self.mask]

    @classmethod
    def from_mapping(cls, pairs: Mapping[tuple[str, str], tuple[float, AbstractSet[str]]]) -> Ties:
        """Ties from {(node, node): (weight, kinds)} (small graphs, tests)."""
        return cls._build(
            [min(p) for p in pairs],
            [max(p) for p in pairs],
            np.array([w for w, _ in pairs.values()], dtype=np.float64),
            np.array([sum(_BIT[k] for k in ks) for _, ks in pairs.values()], dtype=np.int64),
        )

    @classmethod
    def _build(
        cls, src: Sequence[str] | pa.Array, dst: Sequence[str] | pa.Array, w: np.ndarray, mask: np.ndarray
    ) -> Ties:
        both = pa.concat_arrays([pa.array(src, pa.string()), pa.array(dst, pa.string())]).dictionary_encode()
        names = np.asarray(both.dictionary.to_pylist(), dtype=object)
        order = np.argsort(names, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        idx = rank[both.indices.to_numpy(zero_copy_only=False)]
        n = len(w)
        a, b = np.minimum(idx[:n], idx[n:]), np.maximum(idx[:n], idx[n:])
        keep = np.lexsort((b, a))
        return cls(
            names[order], a[keep], b[keep], np.asarray(w, np.float64)[keep], np.asarray(mask, np.int64)[keep]
        )

    @classmethod
    def concat(cls, parts: Sequence[Ties]) -> Ties:
        """Ties of several disjoint fetches over the same `nodes`, ordered by (a, b)."""
        a = np.concatenate([t.a for t in parts])
        b = np.concatenate([t.b for t in parts])
        keep = np.lexsort((b, a))
        return cls(
            parts[0].nodes,
            a[keep],
            b[keep],
            np.concatenate([t.weight for t in parts])[keep],
            np.concatenate([t.mask for t in parts])[keep],
        )


class EngineTies:
    """The ties of an edge table, summed where the edges are stored: per node its total tie weight
    comes out, and pairs only around the nodes asked for.

    The account graph of 16M exchanges has 170M edges. Attaching and clustering need every tie that
    touches a suspicious node and, for everyone else, only the total, so the pairs read into memory
    are those of the suspicious neighbourhood, not the graph."""

    def __init__(self, edges: Table, kind_weights: Mapping[str, float] = KIND_WEIGHTS) -> None:
        unknown = set(kind_weights) - set(_BIT)
        if unknown:
            raise ValueError(f"kind_weights: unknown edge kinds {sorted(unknown)}")
        kinds = sorted(kind_weights)
        factor = edges.kind.cases(*((k, kind_weights[k]) for k in kinds), else_=0.0)
        t = edges.select("src", "dst", "kind", w=factor * edges.weight)
        self._edges = t.filter(t.w > 0)
        self._kinds = kinds
        e = self._edges
        content = e.kind.isin([k for k in kinds if KIND_FAMILIES[k] == "content"]).cast("int8")
        ends = ibis.union(
            e.select(node=e.src, w=e.w, content=content),
            e.select(node=e.dst, w=e.w, content=content),
            distinct=False,
        )
        by_node = ends.group_by("node").aggregate(total=ends.w.sum(), content=ends.content.max())
        per_node = by_node.to_pyarrow()
        order = pc.sort_indices(per_node["node"])
        self._names = pc.take(per_node["node"], order).combine_chunks()
        self.nodes: np.ndarray = np.asarray(self._names.to_pylist(), dtype=object)
        self.total: np.ndarray = pc.take(per_node["total"], order).to_numpy()
        # Whether any pair is tied by content (templates, their timing): not in metadata-only logs.
        self.has_content = bool(pc.any(pc.greater(per_node["content"], 0)).as_py())

    def touching(self, new: np.ndarray, old: np.ndarray) -> Ties:
        """The ties with an end in `new` and no end in `old` (masks over `nodes`), one row per pair
        in no particular order: the kind-weighted sum of its edges and its kinds as a bit mask."""
        e = self._edges
        if not new.any():
            none = np.zeros(0, np.int64)
            return Ties(self.nodes, none, none, np.zeros(0), none)
        into = ibis.memtable(pa.table({"node": self._names.filter(pa.array(new))}))
        hit = e.src.isin(into.node) | e.dst.isin(into.node)
        if old.any():
            away = ibis.memtable(pa.table({"node": self._names.filter(pa.array(old))}))
            hit &= ~e.src.isin(away.node) & ~e.dst.isin(away.node)
        near = e.filter(hit)
        # The kinds as bits, from one "any" per kind: Spark's Ibis backend has no bit_or.
        mask = sum(ibis.ifelse((near.kind == k).any(), _BIT[k], 0) for k in self._kinds)
        pairs = near.group_by(["src", "dst"]).aggregate(w=near.w.sum(), mask=mask).to_pyarrow()
        src = pc.index_in(pairs["src"], value_set=self._names).to_numpy()
        dst = pc.index_in(pairs["dst"], value_set=self._names).to_numpy()
        a, b = np.minimum(src, dst).astype(np.int64), np.maximum(src, dst).astype(np.int64)
        return Ties(self.nodes, a, b, pairs["w"].to_numpy(), pairs["mask"].to_numpy().astype(np.int64))


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
    source: EngineTies, seed_score: np.ndarray, floor: float, rule: AttachRule = AttachRule()
) -> tuple[np.ndarray, np.ndarray, Ties]:
    """(nodes of the suspicious subgraph, the attached ones among them, every tie touching them):
    masks over `source.nodes`, and the ties.

    Seeds have `seed_score` >= `floor`; the others join by `rule` (see the module docstring). Each
    round reads the ties of the nodes that just joined, so every node is judged on all of its ties
    to suspicious nodes, with the share taken of its total over the whole graph."""
    n = len(source.nodes)
    total = source.total
    suspicious = seed_score >= floor
    attached = np.zeros(n, dtype=bool)
    ties = Ties.concat([source.touching(suspicious, attached)])
    for _ in range(rule.rounds):
        a, b, w = ties.a, ties.b, ties.weight
        families = ties.families
        # Each tie seen from both ends: (node, other end, weight, families).
        node, other = np.concatenate([a, b]), np.concatenate([b, a])
        w2, f2 = np.concatenate([w, w]), np.concatenate([families, families])
        to_susp = suspicious[other]
        share_w = np.bincount(node[to_susp], w2[to_susp], n)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, share_w / total, 0.0)
        needed = np.where(share >= rule.content_share, 1, rule.min_families)
        strong = to_susp & (w2 >= rule.tie_min) & (f2 >= needed[node])
        count = np.bincount(node[strong], minlength=n)
        new = ~suspicious & (total > 0) & (share >= rule.min_share) & (count >= rule.min_ties)
        if not new.any():
            break
        ties = Ties.concat([ties, source.touching(new, suspicious)])
        attached |= new
        suspicious = suspicious | new
    return suspicious & (total > 0), attached, ties


def _profile_matrix(nodes: np.ndarray, profiles: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    width = len(next(iter(profiles.values()))) if profiles else 1
    mat = np.zeros((len(nodes), width))
    has = np.zeros(len(nodes), dtype=bool)
    for i, node in enumerate(nodes):
        p = profiles.get(node)
        if p is not None:
            mat[i], has[i] = p, True
    return mat, has


# A profile pair below its gate's cosine still passes unless a chi-square test of homogeneity says
# the two differ beyond sampling noise at this level: two accounts of one campaign that sent ten
# requests each can draw (2, 8) and (8, 2) from the same 50/50 model mix.
DIFFERENT_P = 1e-3


def _similar_rows(
    x: np.ndarray, hx: np.ndarray, y: np.ndarray, hy: np.ndarray, min_similarity: float
) -> np.ndarray:
    """`similar` over rows of two profile matrices (`hx`, `hy`: whether the row has a profile)."""
    if min_similarity <= 0:
        return np.ones(len(x), dtype=bool)
    nx_, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (x * y).sum(axis=1) / (nx_ * ny)
    ok = ~hx | ~hy | (nx_ == 0) | (ny == 0) | (cos >= min_similarity)
    if not ok.all():
        ok[~ok] = _same_mix(x[~ok], y[~ok])
    return ok


def _same_mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row pair of counts, whether a chi-square test of homogeneity (2 x categories) keeps them
    as draws from one mix, at `DIFFERENT_P`."""
    col = x + y
    sx, sy, total = x.sum(axis=1), y.sum(axis=1), col.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ex, ey = col * (sx / total)[:, None], col * (sy / total)[:, None]
        stat = np.where(col > 0, (x - ex) ** 2 / ex + (y - ey) ** 2 / ey, 0.0).sum(axis=1)
    dof = np.maximum((col > 0).sum(axis=1) - 1, 1)
    return np.asarray(stats.chi2.sf(stat, dof) > DIFFERENT_P)


def similar(a: np.ndarray | None, b: np.ndarray | None, min_similarity: float) -> bool:
    """Whether two profiles (request counts per category) may be one campaign: cosine similarity
    >= `min_similarity`, or a difference within sampling noise (`_same_mix`); a node without a
    profile (no such data in the log) fits any."""
    if a is None or b is None:
        return True
    one = np.ones(1, dtype=bool)
    return bool(_similar_rows(a[None, :], one, b[None, :], one, min_similarity)[0])


@dataclass(frozen=True)
class ProfileGate:
    """Per node, request counts over the categories of one behaviour (the capabilities harvested,
    the models asked for), and the cosine similarity two nodes or groups need to be one campaign.

    One actor runs several campaigns on the same servers and templates; what each one harvests,
    and from which models, is set by its script and differs between them."""

    name: str
    profiles: Mapping[str, np.ndarray]
    min_similarity: float


class _Gates:
    """The gates as matrices over `nodes`, and group profiles kept as sums while groups merge."""

    def __init__(self, nodes: np.ndarray, gates: Sequence[ProfileGate]) -> None:
        self.gates = [g for g in gates if g.min_similarity > 0]
        self.mats = [_profile_matrix(nodes, g.profiles) for g in self.gates]

    def rows_similar(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ok = np.ones(len(a), dtype=bool)
        for gate, (mat, has) in zip(self.gates, self.mats, strict=True):
            ok &= _similar_rows(mat[a], has[a], mat[b], has[b], gate.min_similarity)
        return ok

    def group(self, members: Sequence[int]) -> list[np.ndarray | None]:
        return [mat[members].sum(axis=0) if has[members].any() else None for mat, has in self.mats]

    def groups_similar(self, x: Sequence[np.ndarray | None], y: Sequence[np.ndarray | None]) -> bool:
        return all(similar(p, q, g.min_similarity) for g, p, q in zip(self.gates, x, y, strict=True))

    @staticmethod
    def merged(x: Sequence[np.ndarray | None], y: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        return [q if p is None else p if q is None else p + q for p, q in zip(x, y, strict=True)]


def average_linkage(
    ties: Ties,
    in_graph: np.ndarray,
    link_min: float,
    merge_min: float,
    gates: Sequence[ProfileGate] = (),
    pair_cap: int | None = None,
) -> list[np.ndarray]:
    """Campaigns (arrays of node indexes) among the `in_graph` nodes: cores (components of ties >=
    `link_min`: shared payment, a sign-up burst) merged greedily while the mean tie over all node pairs
    of two groups reaches `merge_min`, largest first.

    Average linkage has no resolution limit: two small campaigns of one actor that share servers stay
    apart however big a third campaign is, which modularity-based methods (Louvain) cannot promise.
    With `gates`, neither a core edge nor a merge joins nodes or groups whose profiles differ on any
    gate (`similar`): an actor's servers are shared by all its campaigns, what each harvests is not.

    With `pair_cap`, the mean is taken over min(smaller size, `pair_cap`) x larger size pairs. A key
    shared by many nodes is linked as a chain (`EdgeParams.neighbours`), so each node has a bounded
    number of partners, and the plain mean tie between two large halves of one campaign falls as the
    campaign grows, however much they share. Groups up to `pair_cap` are compared as before.
    """
    n = len(ties.nodes)
    gate = _Gates(ties.nodes, gates)
    a, b, w = ties.a, ties.b, ties.weight
    inside = in_graph[a] & in_graph[b]
    core = inside & (w >= link_min)
    core[core] = gate.rows_similar(a[core], b[core])
    graph = sparse.coo_matrix((np.ones(int(core.sum())), (a[core], b[core])), shape=(n, n))
    _, component = csgraph.connected_components(graph, directed=False)
    # Groups numbered by their smallest node, as the components of the sorted node list.
    members = np.flatnonzero(in_graph)
    _, first = np.unique(component[members], return_index=True)
    group_ids = component[members[np.sort(first)]]
    renumber = np.full(n, -1)
    renumber[group_ids] = np.arange(len(group_ids))
    group_of = np.full(n, -1)
    group_of[members] = renumber[component[members]]
    groups: dict[int, list[int]] = defaultdict(list)
    for node in members:
        groups[int(group_of[node])].append(int(node))
    size = {g: len(m) for g, m in groups.items()}
    gprof = {g: gate.group(m) for g, m in groups.items()}

    ga, gb = group_of[a], group_of[b]
    cross = inside & (ga != gb)
    lo, hi = np.minimum(ga[cross], gb[cross]), np.maximum(ga[cross], gb[cross])
    key = lo * len(groups) + hi
    uniq, inv = np.unique(key, return_inverse=True)
    sums = np.bincount(inv, w[cross])
    between: dict[int, dict[int, float]] = defaultdict(dict)
    for k, s in zip(uniq.tolist(), sums.tolist(), strict=True):
        i, j = divmod(k, len(groups))
        between[i][j] = s
        between[j][i] = s
    cap = pair_cap or n

    def pairs(x: int, y: int) -> int:
        return min(size[x], size[y], cap) * max(size[x], size[y])

    heap = [(-s / pairs(i, j), i, j) for i in between for j, s in between[i].items() if i < j]
    heapq.heapify(heap)
    while heap:
        neg, i, j = heapq.heappop(heap)
        if -neg < merge_min:
            break
        if i not in groups or j not in groups or j not in between[i]:
            continue
        if abs(-neg - between[i][j] / pairs(i, j)) > 1e-12:
            continue  # stale: one side grew since this entry was pushed
        if not gate.groups_similar(gprof[i], gprof[j]):
            continue
        groups[i] += groups.pop(j)
        size[i] += size.pop(j)
        gprof[i] = gate.merged(gprof[i], gprof.pop(j))
        for k, s in between.pop(j).items():
            del between[k][j]
            if k != i:
                between[i][k] = between[i].get(k, 0.0) + s
                between[k][i] = between[i][k]
        for k, s in between[i].items():
            heapq.heappush(heap, (-s / pairs(i, k), min(i, k), max(i, k)))
    out = [np.array(sorted(m)) for m in groups.values()]
    return sorted(out, key=lambda m: (-len(m), int(m[0])))


def lift_ties(ties: Ties, campaign_of: np.ndarray, rule: AttachRule) -> np.ndarray:
    """Per node, the weight of its corroborated ties into its own campaign: 0 unless at least
    `rule.min_ties` members are tied to it by `rule.min_families` evidence families each, so one
    shared template or one shared proxy never raises a score."""
    n = len(ties.nodes)
    a, b = ties.a, ties.b
    ok = (
        (campaign_of[a] >= 0)
        & (campaign_of[a] == campaign_of[b])
        & (ties.weight >= rule.tie_min)
        & (ties.families >= rule.min_families)
    )
    count = np.bincount(a[ok], minlength=n) + np.bincount(b[ok], minlength=n)
    total = np.bincount(a[ok], ties.weight[ok], n) + np.bincount(b[ok], ties.weight[ok], n)
    return np.where(count >= rule.min_ties, total, 0.0)
