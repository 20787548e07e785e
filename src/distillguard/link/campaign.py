"""Campaigns: communities of linked suspicious accounts, their summaries and a campaign score.

The campaign score is what the members' own scores say together (the mean of the upper half of
member scores), so one false positive among benign neighbours does not make a campaign. Members
are then lifted towards it in proportion to how strongly they are tied to the rest of the
campaign: a low-and-slow account that shares templates, timing and infrastructure with a strong
campaign rises; an account with no edges into a campaign is never a member, so never lifted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import ibis
import numpy as np
import orjson
import pyarrow as pa
from ibis import _
from ibis.expr.types import Table

from distillguard.link.communities import (
    KIND_WEIGHTS,
    AttachRule,
    EngineTies,
    ProfileGate,
    Ties,
    average_linkage,
    lift_ties,
    suspicious_subgraph,
)
from distillguard.link.edges import EdgeParams, event_nodes, shared_key_examples, split_node, strongest_first
from distillguard.schema import CAPABILITIES
from distillguard.store import scratch

ASSIGNMENT_SCHEMA = pa.schema(
    [
        pa.field("node", pa.string(), nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("end_user_id", pa.string()),
        pa.field("campaign_id", pa.string()),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("lifted_score", pa.float64(), nullable=False),
    ]
)
DEFAULT_ATTACH = AttachRule()
_TOP = 5  # items kept per infrastructure list and edge examples


@dataclass
class Campaign:
    """One campaign. `accounts` are graph nodes: account ids, or account#end_user for routers."""

    id: str
    accounts: list[str]
    score: float
    capability: dict[str, float] = field(default_factory=dict)
    volume: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    infrastructure: dict[str, Any] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)

    def record(self, attribution: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The campaigns.json entry (JSON-ready: times as ISO 8601)."""
        out = asdict(self)
        out["first_seen"] = self.first_seen.isoformat() if self.first_seen else None
        out["last_seen"] = self.last_seen.isoformat() if self.last_seen else None
        out["attribution"] = (
            dict(attribution) if attribution else {"actor": None, "confidence": 0.0, "evidence": []}
        )
        return out


@dataclass
class LinkResult:
    """Campaigns, and one row per scored or linked node with its campaign and lifted score."""

    campaigns: list[Campaign]
    assignments: pa.Table

    def account_campaigns(self) -> dict[str, str]:
        """account_id -> campaign_id for whole-account members (router end users are listed per node)."""
        rows = self.assignments.to_pydict()
        return {
            a: c
            for a, u, c in zip(rows["account_id"], rows["end_user_id"], rows["campaign_id"], strict=True)
            if c is not None and u is None
        }


def find_campaigns(
    edges: pa.Table | Table,
    scores: pa.Table,
    events: Table | None = None,
    signals: Table | None = None,
    accounts: Table | None = None,
    *,
    floor: float = 0.5,
    attach: AttachRule = DEFAULT_ATTACH,
    link_min: float = 0.1,
    merge_min: float = 0.0015,
    merge_min_without_content: float = 0.001,
    campaign_floor: float = 0.5,
    min_members: int = 3,
    min_seeds: int = 2,
    lift_full: float = 1.0,
    kind_weights: Mapping[str, float] = KIND_WEIGHTS,
    router_min_end_users: int = EdgeParams.router_min_end_users,
    min_similarity: float = 0.5,
    min_model_similarity: float = 0.9,
    pair_cap: int | None = 100,
) -> LinkResult:
    """Cluster linked suspicious nodes into campaigns; summarise them when events/signals are given.

    `scores` has account_id and score (0-1). A whole-account node with score >= `floor` is a seed;
    a router's end-user node carries its account's score for reporting but never seeds (the score
    describes all of the router's users together), so end users join only through `attach`. A
    community becomes a campaign with >= `min_members` nodes, >= `min_seeds` seeds and a campaign
    score >= `campaign_floor`. Member m is lifted to max(own, campaign score * min(1, tie / `lift_full`))
    only when its ties into the campaign are corroborated (see `lift_ties`); other members keep their score.
    Nodes and groups join only when their capability profiles reach `min_similarity` and their
    model profiles `min_model_similarity` (cosine; 0 turns a gate off; see `ProfileGate`); `pair_cap`
    keeps the merge criterion from vanishing with campaign size (see `average_linkage`).
    `merge_min_without_content` replaces `merge_min` when no edge is a content edge.

    `edges` is an Arrow table or a stored table (`EDGE_SCHEMA`); a stored one stays in its engine,
    which reads back only the ties around suspicious nodes (`EngineTies`).
    """
    with ExitStack() as stack:
        if isinstance(edges, pa.Table):
            edges = stack.enter_context(scratch()).create_table("account_edges", edges)
        source = EngineTies(edges, kind_weights)
        account_score = dict(zip(scores["account_id"].to_pylist(), scores["score"].to_pylist(), strict=True))
        node_score = {n: float(account_score.get(split_node(n)[0]) or 0.0) for n in source.nodes.tolist()}
        for account, score in account_score.items():
            node_score.setdefault(account, float(score or 0.0))
        seed = np.array([0.0 if split_node(n)[1] else node_score[n] for n in source.nodes.tolist()])
        in_graph, _attached, ties = suspicious_subgraph(source, seed, floor, attach)
        # Actors that send the same public templates are tied by content, which sets the merge floor;
        # a graph without content edges (metadata-only logs) holds infrastructure and account ties only,
        # which actors do not share, so smaller campaign halves may merge.
        if not source.has_content:
            merge_min = merge_min_without_content
        gates = (
            behaviour_gates(
                events,
                signals,
                router_min_end_users,
                min_similarity,
                min_model_similarity,
                nodes=ties.nodes[in_graph].tolist(),
            )
            if events is not None and signals is not None
            else []
        )
        campaigns, lifted, membership = _cluster(
            ties,
            in_graph,
            seed,
            node_score,
            gates,
            floor=floor,
            attach=attach,
            link_min=link_min,
            merge_min=merge_min,
            campaign_floor=campaign_floor,
            min_members=min_members,
            min_seeds=min_seeds,
            lift_full=lift_full,
            pair_cap=pair_cap,
        )
        summaries = _edge_summaries(edges, membership, events, signals, router_min_end_users)
    for c in campaigns:
        c.edges = summaries.get(c.id, [])

    if events is not None and signals is not None and campaigns:
        _summarise(campaigns, membership, events, signals, accounts, router_min_end_users)
    return LinkResult(campaigns, _assignments(node_score, lifted, membership))


def _cluster(
    ties: Ties,
    in_graph: np.ndarray,
    seed: np.ndarray,
    node_score: Mapping[str, float],
    gates: Sequence[ProfileGate],
    *,
    floor: float,
    attach: AttachRule,
    link_min: float,
    merge_min: float,
    campaign_floor: float,
    min_members: int,
    min_seeds: int,
    lift_full: float,
    pair_cap: int | None,
) -> tuple[list[Campaign], dict[str, float], dict[str, str]]:
    """(campaigns, lifted score per node, campaign id per member) from the suspicious subgraph."""
    campaigns: list[Campaign] = []
    lifted = dict(node_score)
    membership: dict[str, str] = {}
    campaign_of = np.full(len(ties.nodes), -1)
    strengths: list[float] = []
    for members in average_linkage(ties, in_graph, link_min, merge_min, gates, pair_cap):
        member_scores = np.sort(seed[members])[::-1]
        half = (len(member_scores) + 1) // 2
        strength = float(member_scores[:half].sum() / half)
        n_seeds = int((member_scores >= floor).sum())
        if len(members) < min_members or n_seeds < min_seeds or strength < campaign_floor:
            continue
        campaign_of[members] = len(campaigns)
        strengths.append(strength)
        campaigns.append(Campaign(f"campaign-{len(campaigns) + 1:03d}", [], round(strength, 4)))
    tie_into = lift_ties(ties, campaign_of, attach)
    for i in np.flatnonzero(campaign_of >= 0).tolist():
        node, c = str(ties.nodes[i]), campaigns[campaign_of[i]]
        lifted[node] = max(
            node_score[node], strengths[campaign_of[i]] * min(1.0, float(tie_into[i]) / lift_full)
        )
        membership[node] = c.id
        c.accounts.append(node)
    return campaigns, lifted, membership


def behaviour_gates(
    events: Table,
    signals: Table,
    router_min_end_users: int,
    min_similarity: float,
    min_model_similarity: float,
    nodes: Sequence[str] | None = None,
) -> list[ProfileGate]:
    """The profile gates of `find_campaigns`: capabilities (nodes without text get no profile) and
    models; profiles of `nodes` only when given (the suspicious subgraph, not the whole population)."""
    gates = []
    if min_similarity > 0:
        gates.append(
            ProfileGate(
                "capability",
                capability_profiles(events, signals, router_min_end_users, nodes),
                min_similarity,
            )
        )
    if min_model_similarity > 0:
        ev = _nodes_of(events, router_min_end_users, nodes)
        gates.append(
            ProfileGate(
                "model", _counts(ev.select("node", category=ev.model_requested)), min_model_similarity
            )
        )
    return gates


def _nodes_of(events: Table, router_min_end_users: int, nodes: Sequence[str] | None) -> Table:
    """`event_nodes`, restricted to the events of `nodes` when given."""
    ev = event_nodes(events, router_min_end_users)
    if nodes is None:
        return ev
    return ev.filter(ev.node.isin(ibis.memtable(pa.table({"node": pa.array(nodes, pa.string())})).node))


def capability_profiles(
    events: Table, signals: Table, router_min_end_users: int, nodes: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Per graph node (of `nodes` when given), its requests counted by predicted capability (nodes
    without text get none)."""
    ev = _nodes_of(events, router_min_end_users, nodes).select("request_id", "node")
    sig = signals.filter(signals.capability.notnull()).select("request_id", "capability")
    t = ev.join(sig, "request_id")
    return _counts(t.select("node", category=t.capability), CAPABILITIES)


def _counts(t: Table, categories: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Per node, its rows counted by `category`: over `categories`, or over every category seen."""
    agg = t.filter(t.category.notnull()).group_by(["node", "category"]).aggregate(n=_.count()).to_pyarrow()
    names = agg["category"].to_pylist()
    index = {c: i for i, c in enumerate(categories if categories is not None else sorted(set(names)))}
    out: dict[str, np.ndarray] = {}
    for node, cat, n in zip(agg["node"].to_pylist(), names, agg["n"].to_pylist(), strict=True):
        if cat in index:
            out.setdefault(node, np.zeros(len(index)))[index[cat]] = n
    return out


def _assignments(
    node_score: Mapping[str, float], lifted: Mapping[str, float], membership: Mapping[str, str]
) -> pa.Table:
    nodes = sorted(node_score)
    parts = [split_node(n) for n in nodes]
    return pa.table(
        {
            "node": nodes,
            "account_id": [a for a, _ in parts],
            "end_user_id": [u for _, u in parts],
            "campaign_id": [membership.get(n) for n in nodes],
            "score": [node_score[n] for n in nodes],
            "lifted_score": [lifted[n] for n in nodes],
        },
        schema=ASSIGNMENT_SCHEMA,
    )


def _edge_summaries(
    e: Table,
    membership: Mapping[str, str],
    events: Table | None,
    signals: Table | None,
    router_min_end_users: int,
) -> dict[str, list[dict[str, Any]]]:
    """Per campaign and edge kind inside it: how many edges, their mean weight, the strongest few,
    each with an example of the keys its ends share (given the events and signals).

    One pass in the engine that holds the edges, for all campaigns: at scale there are millions."""
    if not membership:
        return {}
    m = ibis.memtable(pa.table({"node": list(membership), "cid": list(membership.values())}))
    j = e.join(m.rename(src="node"), "src")
    # The other end in the same campaign, tested as one key: joined to a second copy of the members
    # on (dst, cid), DuckDB (which takes an in-memory table for one row) first joined the two copies
    # on cid, every pair of members of each campaign: 7 s instead of 0.3 on `medium`. Campaign ids
    # hold no "|", so "dst|cid" is unambiguous.
    same = m.select(key=m.node.concat("|", m.cid))
    j = j.filter(j.dst.concat("|", j.cid).isin(same.key))
    rank = ibis.row_number().over(group_by=[j.cid, j.kind], order_by=strongest_first(j))
    stats = j.group_by(["cid", "kind"]).aggregate(count=j.count(), mean_weight=j.weight.mean()).to_pyarrow()
    strongest = j.mutate(rank=rank).filter(lambda t: t["rank"] < _TOP)
    top = strongest.order_by(["cid", "kind", "rank"]).to_pyarrow()
    keys: dict[tuple[str, str, str], str] = {}
    if events is not None and signals is not None:
        keys = shared_key_examples(events, signals, top, router_min_end_users=router_min_end_users)
    examples: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in top.select(["cid", "kind", "src", "dst", "weight", "evidence"]).to_pylist():
        evidence = orjson.loads(r["evidence"])
        example = keys.get((r["src"], r["dst"], r["kind"]))
        if example is not None:
            evidence["example"] = example
        examples[(r["cid"], r["kind"])].append(
            {"src": r["src"], "dst": r["dst"], "weight": round(r["weight"], 4), "evidence": evidence}
        )
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rows = sorted(stats.to_pylist(), key=lambda r: (r["cid"], -r["count"], r["kind"]))
    for r in rows:
        out[r["cid"]].append(
            {
                "kind": r["kind"],
                "count": int(r["count"]),
                "mean_weight": round(r["mean_weight"], 4),
                "examples": examples[(r["cid"], r["kind"])],
            }
        )
    return dict(out)


def _summarise(
    campaigns: Sequence[Campaign],
    membership: Mapping[str, str],
    events: Table,
    signals: Table,
    accounts: Table | None,
    router_min_end_users: int,
) -> None:
    """Volume, time span, capability mix and infrastructure per campaign, aggregated in the engine."""
    members = ibis.memtable(pa.table({"node": list(membership), "campaign_id": list(membership.values())}))
    ev = event_nodes(events, router_min_end_users).select(
        "request_id", "node", "account_id", "start_time", "model_requested"
    )
    sig = signals.select(
        "request_id", "ip_prefix", "asn", "asn_org", "ip_kind", "ua_family", "capability", "template_id"
    )
    t = ev.join(members, "node").left_join(sig, "request_id")
    span = t.group_by("campaign_id").aggregate(
        volume=t.count(), first_seen=t.start_time.min(), last_seen=t.start_time.max()
    )
    by_id = {c.id: c for c in campaigns}
    for row in span.to_pyarrow().to_pylist():
        c = by_id[row["campaign_id"]]
        c.volume, c.first_seen, c.last_seen = int(row["volume"]), row["first_seen"], row["last_seen"]

    # Every column's counts in one pass, its values as text in one long column: a query per column
    # joined all events again each time (`medium`: 5.4-5.8 s for the summaries, 3.8-3.9 now).
    cols = ["capability", "ip_prefix", "asn", "ip_kind", "ua_family", "template_id", "model_requested"]
    long = t.select("campaign_id", *(t[c].cast("string").name(c) for c in cols))
    long = long.pivot_longer(cols, names_to="col", values_to="value")
    long = long.filter(long.value.notnull())
    agg = long.group_by(["campaign_id", "col", "value"]).aggregate(n=_.count()).to_pyarrow()
    infra: dict[str, dict[str, Counter[str]]] = {c: defaultdict(Counter) for c in cols}
    for cid, col, value, n in zip(
        *(agg[c].to_pylist() for c in ("campaign_id", "col", "value", "n")), strict=True
    ):
        infra[col][cid][value] = int(n)
    capability = infra["capability"]
    org_rows = t.filter(t.asn.notnull()).group_by("asn").aggregate(org=_.asn_org.max()).to_pyarrow()
    orgs = dict(zip(map(str, org_rows["asn"].to_pylist()), org_rows["org"].to_pylist(), strict=True))
    acct = _account_facts(accounts, membership) if accounts is not None else {}
    for c in campaigns:
        total = sum(capability[c.id].values()) or 1
        c.capability = {k: round(v / total, 4) for k, v in ranked(capability[c.id])}
        c.infrastructure = {
            "ip_prefixes": _top(infra["ip_prefix"][c.id]),
            "asns": [
                {"asn": int(a), "org": orgs.get(a), "requests": n}
                for a, n in ranked(infra["asn"][c.id], _TOP)
            ],
            "ip_kinds": dict(ranked(infra["ip_kind"][c.id])),
            "ua_families": _top(infra["ua_family"][c.id]),
            "templates": _top(infra["template_id"][c.id]),
            # The model mix keeps an actor's campaigns apart (`ProfileGate`): shown so an analyst sees why.
            "models": _top(infra["model_requested"][c.id]),
            **acct.get(c.id, {}),
        }


def ranked(counter: Counter[str], n: int | None = None) -> list[tuple[str, int]]:
    """`counter.most_common(n)` with ties broken by value, so every engine lists them alike
    (`most_common` keeps ties in insertion order, which is the engine's row order)."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _top(counter: Counter[str]) -> list[dict[str, Any]]:
    return [{"value": v, "requests": n} for v, n in ranked(counter, _TOP)]


def _account_facts(accounts: Table, membership: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """E-mail domains and payment fingerprints shared by each campaign's whole-account members."""
    whole = {n: c for n, c in membership.items() if split_node(n)[1] is None}
    rows = accounts.filter(accounts.account_id.isin(list(whole))).select(
        "account_id", "email_domain", "payment_fingerprint"
    )
    out: dict[str, dict[str, Counter[str]]] = defaultdict(
        lambda: {"email_domains": Counter(), "payment": Counter()}
    )
    for r in rows.to_pyarrow().to_pylist():
        facts = out[whole[r["account_id"]]]
        if r["email_domain"]:
            facts["email_domains"][r["email_domain"]] += 1
        if r["payment_fingerprint"]:
            facts["payment"][r["payment_fingerprint"]] += 1
    return {
        cid: {
            "email_domains": [{"value": d, "accounts": n} for d, n in ranked(f["email_domains"], _TOP)],
            "shared_payment_fingerprints": [
                {"value": p, "accounts": n} for p, n in ranked(f["payment"]) if n > 1
            ][:_TOP],
        }
        for cid, f in out.items()
    }
