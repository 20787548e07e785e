"""The account graph: weighted edges between accounts, each saying why it exists.

Every edge kind is a *key* that accounts share (an IP /24 in one hour, a template in one time
bucket, a payment fingerprint, ...). Pairs come from Ibis self-joins on the key, so the same
expressions run on DuckDB and on Spark. Two rules keep the graph bounded at tens of thousands of
attacker accounts:

- a key shared by more than `max_key_share` of all nodes says nothing and is dropped (the big
  cloud ASN with the default SDK, the public benchmark template everyone sweeps);
- a key with more than `full_pair_max` nodes is not expanded into all pairs: each node is linked
  to its next `neighbours` nodes in time order within the key. Over many keys (one per time
  bucket) these chains still join a campaign densely, at O(n * neighbours) edges per key.

Keys are weighted by rarity (an IDF over nodes), so a template shared by a campaign and a public
benchmark runner counts for less than one only the campaign uses.

Router and reseller accounts carry many end users: an account with at least `router_min_end_users`
distinct `end_user_id`s is split into one node per end user (`account_id#end_user_id`), so the
router's genuine users stay apart from a campaign it carries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ibis
import pyarrow as pa
import pyarrow.compute as pc
from ibis import _
from ibis.expr.types import Table

from distillguard.features import epoch_s

NODE_SEP = "#"
EDGE_SCHEMA = pa.schema(
    [
        pa.field("src", pa.string(), nullable=False),
        pa.field("dst", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("weight", pa.float64(), nullable=False),
        pa.field("evidence", pa.string(), nullable=False),
    ]
)
EDGE_KINDS: tuple[str, ...] = ("ip", "asn_ua", "payment", "email_burst", "template", "sync", "turns")
INFRA_KINDS: frozenset[str] = frozenset({"ip", "asn_ua"})
_ACCOUNT_RE = f"^([^{NODE_SEP}]*)"

# Large free webmail providers: sign-up bursts there happen every minute by chance.
PUBLIC_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "yahoo.com", "ymail.com", "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com",
        "gmx.com", "gmx.de", "mail.com", "yandex.ru", "yandex.com", "mail.ru", "qq.com", "163.com",
        "126.com", "sina.com", "foxmail.com", "naver.com", "web.de", "zoho.com",
    }
)  # fmt: skip


@dataclass(frozen=True)
class EdgeParams:
    """How keys become edges. Times are in seconds."""

    ip_bucket_s: int = 3600
    asn_ua_bucket_s: int = 86400
    sync_bucket_s: int = 3600
    turn_gap_s: float = 120.0
    min_turns: int = 2
    burst_window_s: float = 600.0
    router_min_end_users: int = 5
    full_pair_max: int = 40
    neighbours: int = 4
    max_key_share: float = 0.25
    min_weight: float = 0.02

    def most_key_nodes(self, n_nodes: int) -> int:
        """The most nodes a key may have and still link them (`max_key_share` of all, at least 2)."""
        return max(2, int(self.max_key_share * n_nodes))


def event_nodes(events: Table, router_min_end_users: int = EdgeParams.router_min_end_users) -> Table:
    """Events with a `node` column: the account, or account#end_user for router accounts."""
    routers = (
        events.filter(events.end_user_id.notnull())
        .group_by("account_id")
        .aggregate(n_end_users=events.end_user_id.nunique())
        .filter(lambda t: t.n_end_users >= router_min_end_users)
    )
    split = events.account_id.isin(routers.account_id) & events.end_user_id.notnull()
    return events.mutate(
        node=ibis.ifelse(split, events.account_id.concat(NODE_SEP, events.end_user_id), events.account_id)
    )


def split_node(node: str) -> tuple[str, str | None]:
    """(account_id, end_user_id) of a node id; end_user_id is None for whole accounts."""
    account, sep, end_user = node.partition(NODE_SEP)
    return account, (end_user if sep else None)


def build_edges(events: Table, signals: Table, accounts: Table, **params: float) -> pa.Table:
    """Edges (src, dst, kind, weight, evidence JSON) between graph nodes; src < dst, one row per kind,
    ordered by kind, src and dst. Fetched from the engine: for graphs that fit in memory."""
    edges = edge_table(events, signals, accounts, **params).order_by(["kind", "src", "dst"])
    return edges.to_pyarrow().cast(EDGE_SCHEMA)


def edge_table(events: Table, signals: Table, accounts: Table, **params: float) -> Table:
    """The expression behind `build_edges`, unordered and left in the engine.

    At 16M exchanges the graph has 170M edges: the pipeline stores them with `EventStore.materialize`
    and reads back only the ties around suspicious accounts (`link.communities.EngineTies`)."""
    p = EdgeParams(**params)  # type: ignore[arg-type]
    acts = _activity(events, signals, p)
    n_nodes = _node_count(acts)

    parts = [
        *(
            _keyed_pairs(_members(acts, key(acts, p)), kind, n_nodes, p, with_example=False)
            for kind, key in EVENT_KEYS.items()
        ),
        _turn_pairs(acts, p),
        _payment_pairs(accounts, n_nodes, p),
        _burst_pairs(accounts, n_nodes, p),
    ]
    edges = ibis.union(*parts).filter(lambda t: t.weight >= p.min_weight)
    # End users of one router share its servers and client by construction: infrastructure says nothing there.
    same_account = _.src.re_extract(_ACCOUNT_RE, 1) == _.dst.re_extract(_ACCOUNT_RE, 1)
    edges = edges.filter(~(_.kind.isin(list(INFRA_KINDS)) & same_account))
    return edges.select(
        src=edges.src.cast("string"),
        dst=edges.dst.cast("string"),
        kind=edges.kind.cast("string"),
        weight=edges.weight.cast("float64"),
        evidence=edges.evidence.cast("string"),
    )


# The keys of the edge kinds drawn from requests: a key shared by nodes links them. Their edges'
# evidence holds how many keys made the edge; an example key is found afterwards for the few edges
# shown (`shared_key_examples`), since carrying one through the pair aggregation cost a third of
# building the graph (`medium`: 9.3-10.6 s without, 13.6-15.7 s with).
EVENT_KEYS: dict[str, Callable[[Table, EdgeParams], list[ibis.Value]]] = {
    "ip": lambda a, p: [a.ip_prefix, a.epoch // p.ip_bucket_s],
    "asn_ua": lambda a, p: [a.asn.cast("string").concat("/", a.ua_family), a.epoch // p.asn_ua_bucket_s],
    "template": lambda a, p: [a.template_id],
    "sync": lambda a, p: [a.template_id, a.epoch // p.sync_bucket_s],
}


def _node_count(acts: Table) -> int:
    return max(int(acts.node.nunique().execute()), 2)


def _activity(events: Table, signals: Table, p: EdgeParams) -> Table:
    """Per request: its node, epoch seconds and the signal columns the keys are made of."""
    ev = event_nodes(events, p.router_min_end_users)
    ev = ev.select("request_id", "account_id", "node", epoch=epoch_s(ev.start_time))
    sig = signals.select("request_id", "ip_prefix", "asn", "ua_family", "template_id")
    return ev.join(sig, "request_id")


def shared_key_examples(
    events: Table, signals: Table, edges: pa.Table, **params: float
) -> dict[tuple[str, str, str], str]:
    """{(src, dst, kind): example key} for edges of the `EVENT_KEYS` kinds: the smallest key of that
    kind that both ends share and the graph keeps (shared by no more than `max_key_share` of all
    nodes). For the few edges a report shows; at a key with more members than `full_pair_max` the
    edge came from the nodes' nearness in time, so the example may be another key they share."""
    p = EdgeParams(**params)  # type: ignore[arg-type]
    # Not cached: with `epoch_s` a stored copy gives the same keys, but on `medium` it saved only
    # about 0.4 s of 2.2, and a cached expression is one more thing each engine must hold and free.
    acts = _activity(events, signals, p)
    limit: int | None = None
    out: dict[tuple[str, str, str], str] = {}
    for kind, key in EVENT_KEYS.items():
        wanted = edges.filter(pc.equal(edges["kind"], kind)).select(["src", "dst"])
        if not wanted.num_rows:
            continue
        if limit is None:
            limit = p.most_key_nodes(_node_count(acts))
        ends = pa.concat_arrays([wanted["src"].combine_chunks(), wanted["dst"].combine_chunks()]).unique()
        near = acts.filter(acts.node.isin(ibis.memtable(pa.table({"node": ends})).node))
        m = _members(near, key(near, p))
        keys = key_columns(m)
        w, a, b = ibis.memtable(wanted), m.view(), m.view()
        shared = w.join(a, w.src == a.node).join(b, [w.dst == b.node, *(a[k] == b[k] for k in keys)])
        shared = shared.select(w.src, w.dst, *(a[k] for k in keys))
        # A key's size counts every node on it, so all requests are read, but only those whose
        # first key part (address, network and client, template) the ends have at all.
        lead = near.select(part=key(near, p)[0]).distinct()
        some = acts.filter(key(acts, p)[0].isin(lead.part))
        every = _members(some, key(some, p))
        every = every.semi_join(shared.select(keys).distinct(), keys)
        sizes = every.group_by(keys).aggregate(n=every.node.count())
        kept = shared.join(sizes.filter(sizes.n <= limit), keys)
        best = kept.group_by(["src", "dst"]).aggregate(example=key_text(kept, keys).min()).to_pyarrow()
        for src, dst, example in zip(*(best[c].to_pylist() for c in ("src", "dst", "example")), strict=True):
            out[(src, dst, kind)] = example
    return out


def strongest_first(edges: Table) -> list[ibis.Value]:
    """The order of "the strongest edges": by weight rounded to 1e-9, then by their ends. Rounded
    because a parallel sum differs in its last bits from run to run, which reordered equal edges."""
    return [ibis.desc(edges.weight.round(9)), edges.src, edges.dst]


def _idf(n: ibis.Value, n_nodes: int) -> ibis.Value:
    """Rarity of a key shared by n nodes, in (0, 1]: 1 for a pair, near 0 for everyone."""
    return (1.0 + n_nodes / n.cast("float64")).ln() / math.log(1.0 + n_nodes / 2.0)


def _members(acts: Table, parts: list[ibis.Value]) -> Table:
    """Distinct (key, node) rows with the node's first time on the key. The key is its parts as
    columns k0, k1, ... (a key with a null part is none): grouping and joining on typed columns
    is cheaper than on one string made of them (`medium`: the edge table in 19.5-20.8 s against
    21.7-23.9)."""
    cols = [f"k{i}" for i in range(len(parts))]
    keyed = acts.mutate(**dict(zip(cols, parts, strict=True)))
    keyed = keyed.filter([keyed[c].notnull() for c in cols])
    return keyed.group_by([*cols, "node"]).aggregate(t=keyed.epoch.min())


def key_columns(members: Table) -> list[str]:
    """The columns of a members table that make its key (all but node and t)."""
    return [c for c in members.columns if c not in ("node", "t")]


def key_text(t: Table, cols: Sequence[str]) -> ibis.Value:
    """A key as the analyst reads it: its parts joined by "|"."""
    text = t[cols[0]].cast("string")
    for c in cols[1:]:
        text = text.concat("|", t[c].cast("string"))
    return text


def _keyed_pairs(members: Table, kind: str, n_nodes: int, p: EdgeParams, with_example: bool = True) -> Table:
    """Node pairs sharing keys: IDF of the shared keys over the geometric mean of the nodes' key counts.
    The evidence is the number of keys and, `with_example`, the smallest of them."""
    keys = key_columns(members)
    sizes = members.group_by(keys).aggregate(n=members.node.count())
    sizes = sizes.filter((sizes.n >= 2) & (sizes.n <= p.most_key_nodes(n_nodes)))
    sizes = sizes.mutate(w=_idf(sizes.n, n_nodes))
    m = members.join(sizes, keys)
    if with_example:
        m = m.mutate(example=key_text(m, keys))
    # Normalised by how many keys each node has at all (kept or not), so common keys stay cheap.
    totals = members.group_by("node").aggregate(total=members.node.count())
    carried = {"w": _.w, **({"example": _.example} if with_example else {})}

    small = m.filter(m.n <= p.full_pair_max)
    a, b = small.view(), small.view()
    full = a.join(b, [*(a[k] == b[k] for k in keys), a.node < b.node]).select(
        src=a.node, dst=b.node, w=a.w, **({"example": a.example} if with_example else {})
    )
    large = m.filter(m.n > p.full_pair_max)
    win = ibis.window(group_by=keys, order_by=["t", "node"])
    # Every neighbour in one pass over the window (one sort of the key's members, not one per neighbour).
    ahead = large.mutate(**{f"next{j}": large.node.lead(j).over(win) for j in range(1, p.neighbours + 1)})
    chained = [
        ahead.filter(ahead[f"next{j}"].notnull()).select(
            src=ibis.least(_.node, _[f"next{j}"]), dst=ibis.greatest(_.node, _[f"next{j}"]), **carried
        )
        for j in range(1, p.neighbours + 1)
    ]
    pairs = ibis.union(full, *chained)
    agg = pairs.group_by(["src", "dst"]).aggregate(
        shared=pairs.w.sum(),
        n_keys=pairs.count(),
        **({"example": pairs.example.min()} if with_example else {}),
    )
    ta, tb = totals.view(), totals.view()
    agg = agg.join(ta, agg.src == ta.node).join(tb, agg.dst == tb.node)
    weight = (agg.shared / (ta.total * tb.total).cast("float64").sqrt()).clip(upper=1.0)
    return agg.select(
        src=agg.src,
        dst=agg.dst,
        kind=ibis.literal(kind),
        weight=weight,
        evidence=_evidence("shared_keys", agg.n_keys, agg.example if with_example else None),
    )


def _evidence(label: str, n: ibis.Value, example: ibis.Value | None) -> ibis.Value:
    """A small JSON object built in the engine, so million-edge graphs never loop in Python."""
    if example is None:
        return ibis.literal(f'{{"{label}": ').concat(n.cast("string"), "}")
    quoted = example.cast("string").replace("\\", "\\\\").replace('"', '\\"')
    return ibis.literal(f'{{"{label}": ').concat(n.cast("string"), ', "example": "', quoted, '"}')


def _turn_pairs(acts: Table, p: EdgeParams) -> Table:
    """Load-balanced turn-taking: on one template, the next request comes from another node, quickly."""
    t = acts.filter(acts.template_id.notnull())
    win = ibis.window(group_by="template_id", order_by=["epoch", "node"])
    t = t.mutate(prev=t.node.lag(1).over(win), gap=t.epoch - t.epoch.lag(1).over(win))
    per_node = acts.group_by("node").aggregate(n=acts.node.count())
    hops = t.filter((t.prev.notnull()) & (t.prev != t.node) & (t.gap <= p.turn_gap_s))
    hops = hops.mutate(src=ibis.least(hops.node, hops.prev), dst=ibis.greatest(hops.node, hops.prev))
    agg = hops.group_by(["src", "dst"]).aggregate(turns=hops.node.count(), example=hops.template_id.min())
    agg = agg.filter(agg.turns >= p.min_turns)
    na, nb = per_node.view(), per_node.view()
    agg = agg.join(na, agg.src == na.node).join(nb, agg.dst == nb.node)
    weight = (agg.turns / (na.n * nb.n).cast("float64").sqrt()).clip(upper=1.0)
    return agg.select(
        src=agg.src,
        dst=agg.dst,
        kind=ibis.literal("turns"),
        weight=weight,
        evidence=_evidence("turns", agg.turns, agg.example),
    )


def _payment_pairs(accounts: Table, n_nodes: int, p: EdgeParams) -> Table:
    """Accounts paying with the same instrument."""
    acc = accounts.filter(accounts.payment_fingerprint.notnull())
    members = acc.select(key=acc.payment_fingerprint, node=acc.account_id, t=epoch_s(acc.created_at))
    return _keyed_pairs(members.mutate(t=members.t.fill_null(0)), "payment", n_nodes, p)


def _burst_pairs(accounts: Table, n_nodes: int, p: EdgeParams) -> Table:
    """Accounts created within minutes of each other on the same non-public e-mail domain."""
    acc = accounts.filter(
        accounts.email_domain.notnull()
        & accounts.created_at.notnull()
        & ~accounts.email_domain.lower().isin(list(PUBLIC_MAIL_DOMAINS))
    )
    acc = acc.select(domain=acc.email_domain.lower(), node=acc.account_id, t=epoch_s(acc.created_at))
    sizes = acc.group_by("domain").aggregate(n=acc.node.count())
    sizes = sizes.filter(sizes.n <= p.most_key_nodes(n_nodes))
    acc = acc.join(sizes, "domain")
    win = ibis.window(group_by="domain", order_by=["t", "node"])
    chained = [
        acc.mutate(other=acc.node.lead(j).over(win), dt=acc.t.lead(j).over(win) - acc.t)
        .filter(lambda t: t.other.notnull() & (t.dt <= p.burst_window_s))
        .select(
            src=ibis.least(_.node, _.other),
            dst=ibis.greatest(_.node, _.other),
            weight=(1.0 - _.dt / p.burst_window_s / 2.0) * _idf(_.n, n_nodes),
            n=_.n,
            domain=_.domain,
        )
        for j in range(1, p.neighbours + 1)
    ]
    pairs = ibis.union(*chained)
    return pairs.select(
        src=pairs.src,
        dst=pairs.dst,
        kind=ibis.literal("email_burst"),
        weight=pairs.weight,
        evidence=_evidence("domain_accounts", pairs.n, pairs.domain),
    )
