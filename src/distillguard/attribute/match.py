"""Campaign -> actor, with a likelihood-ratio confidence and the matched indicators as evidence.

For each indicator we measure two rates on our own traffic: the share of the campaign's members
it matches (coverage) and the share of nodes outside every campaign it matches (benign rate).
Its likelihood ratio is coverage / max(benign rate, a base rate for its type): an AS number is
shared by many customers, a payment fingerprint by almost none. An indicator that matches any
benign node is capped at a weak ratio, and an actor needs at least one indicator that matches no
benign node, so such an indicator can never decide an attribution on its own. Indicators of one
type are correlated, so each actor keeps only its strongest per type; the types multiply. The
posterior over {known actors, unknown actor} is the confidence.
"""

from __future__ import annotations

import ipaddress
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ibis.expr.types import Table

from distillguard.attribute.intel import Intel, Rule
from distillguard.link.campaign import Campaign
from distillguard.link.edges import EdgeParams, event_nodes

UNKNOWN_ACTOR = "unknown actor"
# How often an indicator of each type would match an unrelated account by chance.
BASE_RATES: dict[str, float] = {
    "ip": 0.01,
    "asn": 0.05,
    "account": 0.001,
    "email_domain": 0.01,
    "payment": 0.002,
    "template": 0.01,
}


@dataclass
class Attribution:
    actor: str
    confidence: float
    actor_id: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "actor_id": self.actor_id,
            "confidence": self.confidence,
            "evidence": self.evidence,
        }


def attribute(
    campaigns: Sequence[Campaign],
    events: Table,
    signals: Table,
    accounts: Table,
    intel: Intel,
    *,
    prior_unknown: float = 0.5,
    min_confidence: float = 0.6,
    benign_cap: float = 2.0,
    max_ratio: float = 1000.0,
    router_min_end_users: int = EdgeParams.router_min_end_users,
) -> dict[str, Attribution]:
    """Attribution per campaign id; `unknown actor` when no actor reaches `min_confidence`."""
    nodes = event_nodes(events, router_min_end_users)
    hits = _hits(nodes, signals, accounts, intel)
    in_campaign = {n for c in campaigns for n in c.accounts}
    n_outside = max(int(nodes.node.nunique().execute()) - len(in_campaign), 1)
    benign = {rule: len(matched - in_campaign) for rule, matched in hits.items()}
    prior_actor = (1.0 - prior_unknown) / max(len(intel.actors), 1)

    out = {}
    for c in campaigns:
        members = set(c.accounts)
        best: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # actor -> type -> evidence
        for rule, matched in hits.items():
            covered = len(matched & members)
            if not covered:
                continue
            ev = _evidence(rule, covered / len(members), benign[rule], n_outside, benign_cap, max_ratio)
            ev["matched_accounts"] = covered
            current = best[rule.actor_id].get(rule.type)
            if current is None or _stronger(ev, current):
                best[rule.actor_id][rule.type] = ev
        weights = {
            actor: prior_actor * math.exp(sum(math.log(e["likelihood_ratio"]) for e in by_type.values()))
            for actor, by_type in best.items()
        }
        total = prior_unknown + prior_actor * (len(intel.actors) - len(weights)) + sum(weights.values())
        ranked = sorted(weights, key=lambda a: (-weights[a], a))
        top = ranked[0] if ranked else None
        confidence = weights[top] / total if top else 0.0
        clean = top is not None and any(not e["also_matches_benign"] for e in best[top].values())
        shown = [best[top][t] for t in sorted(best[top])] if top else []
        if top and confidence >= min_confidence and clean:
            out[c.id] = Attribution(intel.actors[top], round(confidence, 4), top, shown)
        else:
            out[c.id] = Attribution(UNKNOWN_ACTOR, round(1.0 - confidence, 4), None, shown)
    return out


def _stronger(ev: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether `ev` replaces `current` as an actor's evidence of one type: the higher likelihood
    ratio, then the wider coverage, then the smaller indicator id, so that the choice never
    depends on the engine's row order."""
    return (-ev["likelihood_ratio"], -ev["coverage"], ev["indicator_id"]) < (
        -current["likelihood_ratio"],
        -current["coverage"],
        current["indicator_id"],
    )


def _evidence(
    rule: Rule, coverage: float, benign_nodes: int, n_outside: int, benign_cap: float, max_ratio: float
) -> dict[str, Any]:
    benign_rate = benign_nodes / n_outside
    ratio = min(max_ratio, max(1.0, coverage / max(benign_rate, BASE_RATES[rule.type])))
    if benign_nodes:
        ratio = min(ratio, benign_cap)
    return {
        "indicator_id": rule.indicator_id,
        "type": rule.type,
        "value": rule.value,
        "coverage": round(coverage, 4),
        "benign_matches": benign_nodes,
        "also_matches_benign": benign_nodes > 0,
        "likelihood_ratio": round(ratio, 3),
    }


def _hits(nodes: Table, signals: Table, accounts: Table, intel: Intel) -> dict[Rule, set[str]]:
    """The graph nodes each rule matches, joined in the engine; IP networks checked in Python."""
    hits: dict[Rule, set[str]] = defaultdict(set)
    by_type: dict[str, list[Rule]] = defaultdict(list)
    for rule in intel.rules:
        by_type[rule.type].append(rule)
    ev = nodes.select("request_id", "node", "account_id", "client_ip")
    acts = ev.join(signals.select("request_id", "asn", "template_id", "ip_prefix"), "request_id", how="left")

    def collect(rules: list[Rule], expr: Table, column: str, cast: Any = str) -> None:
        if not rules:
            return
        values = sorted({cast(r.value) for r in rules})
        found = expr.filter(expr[column].isin(values)).select(column, "node").distinct().to_pyarrow()
        matched: dict[Any, set[str]] = defaultdict(set)
        for value, node in zip(found[column].to_pylist(), found["node"].to_pylist(), strict=True):
            matched[value].add(node)
        for r in rules:
            hits[r] |= matched.get(cast(r.value), set())

    collect(by_type["asn"], acts, "asn", int)
    collect(by_type["template"], acts, "template_id")
    collect(by_type["account"], ev, "account_id")
    fact_nodes = (
        ev.select("account_id", "node")
        .distinct()
        .join(
            accounts.select(
                "account_id", email_domain=accounts.email_domain.lower(), payment=accounts.payment_fingerprint
            ),
            "account_id",
        )
    )
    collect(by_type["email_domain"], fact_nodes, "email_domain")
    collect(by_type["payment"], fact_nodes, "payment")
    networks = intel.networks()
    if networks:
        prefixes = acts.filter(acts.ip_prefix.notnull()).select("ip_prefix").distinct().to_pyarrow()
        near = [p for p in prefixes["ip_prefix"].to_pylist() if _overlaps(p, networks)]
        if near:
            found = acts.filter(acts.ip_prefix.isin(near) & acts.client_ip.notnull())
            found = found.select("client_ip", "node").distinct().to_pyarrow()
            for ip, node in zip(found["client_ip"].to_pylist(), found["node"].to_pylist(), strict=True):
                addr = _address(ip)
                for rule, net in networks:
                    if addr is not None and addr.version == net.version and addr in net:
                        hits[rule].add(node)
    return hits


def _overlaps(prefix: str, networks: list[tuple[Rule, Any]]) -> bool:
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return False
    return any(net.version == n.version and net.overlaps(n) for _, n in networks)


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None
