"""Threat intel on earlier campaigns, as STIX 2.1 bundles, to test attribution.

Each actor with intel gets one bundle: an intrusion-set, the earlier campaign, and indicators that
`indicates` the intrusion-set. Indicators overlap the new campaigns' infrastructure only in part
(some prefixes, domains, payment instruments and two reused accounts); the rest is stale. One
actor has no intel at all, and one indicator is a decoy covering a benign university NAT.

Payment instruments have no STIX cyber-observable, so they use the custom observable type
`x-distillguard-payment-fingerprint` with a single `value` property, e.g.
`[x-distillguard-payment-fingerprint:value = 'pf_...']`.
"""

from __future__ import annotations

import ipaddress
import uuid
from pathlib import Path

import stix2

from distillguard.sim.campaigns import Actor
from distillguard.sim.core import Ctx
from distillguard.sim.infra import disposable_domains

PAYMENT_OBSERVABLE = "x-distillguard-payment-fingerprint"
# Autonomous systems of the clouds actors rent (public registry facts).
CLOUD_ASNS = {
    "Alibaba Cloud": 45102,
    "Tencent Cloud": 132203,
    "Huawei Cloud": 136907,
    "DigitalOcean": 14061,
    "Amazon AWS": 16509,
    "Oracle Cloud": 31898,
    "Hetzner": 24940,
    "OVHcloud": 16276,
    "Vultr": 20473,
    "Linode": 63949,
    "Contabo": 51167,
}
ACTORS_WITH_INTEL = ("tarsier", "vesper", "kestrel")
DECOY_ACTOR = "vesper"
_WHEN = "2025-12-15T00:00:00Z"


def _sid(ctx: Ctx, kind: str) -> str:
    return f"{kind}--{uuid.UUID(bytes=ctx.rng.bytes(16), version=4)}"


def _prefix(ip: str) -> str:
    return str(ipaddress.ip_network(f"{ip}/24", strict=False))


def _indicator(ctx: Ctx, name: str, pattern: str, confidence: int) -> stix2.Indicator:
    return stix2.Indicator(
        id=_sid(ctx, "indicator"),
        created=_WHEN,
        modified=_WHEN,
        valid_from="2025-10-01T00:00:00Z",
        name=name,
        pattern=pattern,
        pattern_type="stix",
        indicator_types=["malicious-activity"],
        confidence=confidence,
    )


def actor_bundle(ctx: Ctx, actor: Actor, decoy_prefixes: list[str]) -> stix2.Bundle:
    """Intel on the actor's earlier campaign, overlapping its current infrastructure in part."""
    iset = stix2.IntrusionSet(
        id=_sid(ctx, "intrusion-set"),
        created=_WHEN,
        modified=_WHEN,
        name=actor.name,
        description=f"Distillation actor {actor.name}: harvests model outputs at scale.",
    )
    campaign = stix2.Campaign(
        id=_sid(ctx, "campaign"),
        created=_WHEN,
        modified=_WHEN,
        name=f"{actor.name} 2025-Q4 distillation",
        first_seen="2025-10-01T00:00:00Z",
        last_seen="2025-12-10T00:00:00Z",
    )
    indicators: list[stix2.Indicator] = []
    current = sorted({_prefix(ip) for ip in actor.servers})
    stale = sorted({r.prefix24 for r in actor.hosting} - set(current))
    for cidr in current[: max(1, len(current) // 2)] + stale[:3]:
        indicators.append(
            _indicator(ctx, f"{actor.name} server range", f"[ipv4-addr:value ISSUBSET '{cidr}']", 70)
        )
    asns = sorted({CLOUD_ASNS[r.provider] for r in actor.hosting if r.provider in CLOUD_ASNS})
    if asns:
        indicators.append(
            _indicator(ctx, f"{actor.name} hosting", f"[autonomous-system:number = {asns[0]}]", 20)
        )
    domains = sorted(set(actor.domains))
    old = [str(d) for d in ctx.rng.choice(disposable_domains(), size=2, replace=False)]
    for d in domains[: max(1, len(domains) // 2)] + old:
        indicators.append(
            _indicator(ctx, f"{actor.name} sign-up domain", f"[email-addr:value LIKE '%@{d}']", 60)
        )
    fingerprints = sorted({a.payment_fingerprint for a in actor.accounts})
    for fp in fingerprints[:2] + [f"pf_{ctx.hex(10)}" for _ in range(2)]:
        indicators.append(
            _indicator(ctx, f"{actor.name} payment instrument", f"[{PAYMENT_OBSERVABLE}:value = '{fp}']", 85)
        )
    reused = [a.account_id for a in actor.accounts[:2]] + [f"user_{ctx.hex(8)}" for _ in range(3)]
    for login in reused:
        indicators.append(_indicator(ctx, f"{actor.name} account", f"[user-account:user_id = '{login}']", 90))
    for cidr in decoy_prefixes:  # the earlier campaign once came through a campus network
        indicators.append(_indicator(ctx, f"{actor.name} egress", f"[ipv4-addr:value ISSUBSET '{cidr}']", 40))
    rels = [
        stix2.Relationship(
            id=_sid(ctx, "relationship"),
            created=_WHEN,
            modified=_WHEN,
            source_ref=i.id,
            relationship_type="indicates",
            target_ref=iset.id,
        )
        for i in indicators
    ]
    rels.append(
        stix2.Relationship(
            id=_sid(ctx, "relationship"),
            created=_WHEN,
            modified=_WHEN,
            source_ref=campaign.id,
            relationship_type="attributed-to",
            target_ref=iset.id,
        )
    )
    return stix2.Bundle(iset, campaign, *indicators, *rels, id=_sid(ctx, "bundle"))


def write_intel(ctx: Ctx, out_dir: Path, actors: dict[str, Actor], decoy_prefixes: list[str]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ACTORS_WITH_INTEL:
        if name not in actors or not actors[name].accounts:
            continue
        bundle = actor_bundle(ctx, actors[name], decoy_prefixes if name == DECOY_ACTOR else [])
        path = out_dir / f"{name}.json"
        path.write_text(bundle.serialize(pretty=True) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
