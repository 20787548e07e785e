"""STIX 2.1 out: one bundle per scan, for sharing campaigns with other providers.

Per campaign: a Campaign (with the MITRE ATLAS technique AML.T0024.002 "Extract ML Model"), its
Infrastructure and the observables it consists of, Indicators for what another provider can
check (IP networks, AS numbers, sign-up domains, payment and template fingerprints), and, where
attributed, the IntrusionSet (reusing the intel's id, so partners join on it). Prompts are shared
only as template fingerprints, never as text. Ids are derived from content, so the same scan
gives the same bundle.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import stix2
from stix2.serialization import STIXJSONEncoder

from distillguard.attribute.match import UNKNOWN_ACTOR, Attribution
from distillguard.link.campaign import Campaign

_NS = uuid.UUID("6f1c1b52-8d0e-4a57-9a51-0c3f8b7e2d10")
ATLAS_REFERENCE = {
    "source_name": "mitre-atlas",
    "external_id": "AML.T0024.002",
    "description": "Extract ML Model",
    "url": "https://atlas.mitre.org/techniques/AML.T0024.002",
}
PAYMENT_OBJECT = "x-distillguard-payment-fingerprint"
TEMPLATE_OBJECT = "x-distillguard-prompt-template"


def _id(kind: str, *parts: object) -> str:
    return f"{kind}--{uuid.uuid5(_NS, '|'.join(map(str, parts)))}"


def export_stix(
    campaigns: Sequence[Campaign],
    attributions: Mapping[str, Attribution],
    created: datetime | None = None,
    max_accounts: int = 500,
) -> dict[str, Any]:
    """A STIX 2.1 bundle (as a JSON-ready dict) for the scan's campaigns."""
    when = created or max(
        (c.last_seen for c in campaigns if c.last_seen), default=datetime(2026, 1, 1, tzinfo=UTC)
    )
    stamp = {"created": when, "modified": when}
    technique = stix2.AttackPattern(
        id=_id("attack-pattern", "AML.T0024.002"),
        name="Extract ML Model",
        external_references=[ATLAS_REFERENCE],
        **stamp,
    )
    objects: list[Any] = [technique]
    actors: dict[str, Any] = {}
    for c in campaigns:
        key = (c.first_seen, *c.accounts)
        campaign = stix2.Campaign(
            id=_id("campaign", *key),
            name=f"Distillation campaign {c.id}",
            description=_describe(c),
            first_seen=c.first_seen,
            last_seen=c.last_seen,
            objective="Harvest model outputs to train another model (distillation).",
            external_references=[ATLAS_REFERENCE],
            confidence=round(100 * c.score),
            **stamp,
        )
        objects += [campaign, _rel(campaign.id, "uses", technique.id, stamp)]
        observables, indicators = _observables(c, key, stamp, max_accounts)
        kinds = c.infrastructure.get("ip_kinds", {})
        infra = stix2.Infrastructure(
            id=_id("infrastructure", *key),
            name=f"{c.id} infrastructure",
            infrastructure_types=["anonymization" if {"vpn", "tor", "proxy"} & set(kinds) else "unknown"],
            **stamp,
        )
        objects += [infra, _rel(campaign.id, "uses", infra.id, stamp), *observables, *indicators]
        objects += [_rel(infra.id, "consists-of", o.id, stamp) for o in observables]
        objects += [_rel(i.id, "indicates", campaign.id, stamp) for i in indicators]
        attribution = attributions.get(c.id)
        if attribution and attribution.actor != UNKNOWN_ACTOR:
            actor_id = attribution.actor_id or _id("intrusion-set", attribution.actor)
            if actor_id not in actors:
                actors[actor_id] = stix2.IntrusionSet(id=actor_id, name=attribution.actor, **stamp)
            rel = _rel(
                campaign.id, "attributed-to", actor_id, stamp, confidence=round(100 * attribution.confidence)
            )
            objects.append(rel)
    objects += list(actors.values())
    # Each object was validated as it was made; stix2.Bundle would parse every one of them again,
    # which was half of the export (`medium`: 12,952 objects). A bundle is only its type, id and list.
    return {
        "type": "bundle",
        "id": _id("bundle", *(o.id for o in objects)),
        "objects": json.loads(json.dumps(objects, cls=STIXJSONEncoder)),
    }


def _rel(src: str, kind: str, dst: str, stamp: Mapping[str, datetime], **extra: Any) -> Any:
    return stix2.Relationship(
        id=_id("relationship", src, kind, dst),
        source_ref=src,
        relationship_type=kind,
        target_ref=dst,
        **stamp,
        **extra,
    )


def _describe(c: Campaign) -> str:
    caps = ", ".join(f"{k} {v:.0%}" for k, v in c.capability.items()) or "unknown"
    return f"{len(c.accounts)} linked accounts, {c.volume} requests; capability mix: {caps}."


def _observables(
    c: Campaign, key: tuple[Any, ...], stamp: Mapping[str, datetime], max_accounts: int
) -> tuple[list[Any], list[Any]]:
    """Observables for the infrastructure and indicators (STIX patterns) for each shareable value."""
    infra = c.infrastructure
    observables: list[Any] = []
    patterns: list[tuple[str, str]] = []
    for p in infra.get("ip_prefixes", []):
        observables.append(
            stix2.IPv4Address(value=p["value"])
            if ":" not in p["value"]
            else stix2.IPv6Address(value=p["value"])
        )
        kind = "ipv6-addr" if ":" in p["value"] else "ipv4-addr"
        patterns.append((f"[{kind}:value ISSUBSET '{p['value']}']", f"IP network {p['value']}"))
    for a in infra.get("asns", []):
        observables.append(stix2.AutonomousSystem(number=a["asn"], name=a.get("org") or None))
    for d in infra.get("email_domains", []):
        if d["accounts"] > 1:
            observables.append(stix2.DomainName(value=d["value"]))
            patterns.append((f"[email-addr:value LIKE '%@{d['value']}']", f"sign-up domain {d['value']}"))
    for f in infra.get("shared_payment_fingerprints", []):
        patterns.append((f"[{PAYMENT_OBJECT}:value = '{f['value']}']", "shared payment fingerprint"))
    for t in infra.get("templates", []):
        patterns.append((f"[{TEMPLATE_OBJECT}:fingerprint = '{t['value']}']", "prompt template fingerprint"))
    observables += [stix2.UserAccount(user_id=a) for a in c.accounts[:max_accounts]]
    indicators = [
        stix2.Indicator(
            id=_id("indicator", *key, pattern),
            name=name,
            pattern=pattern,
            pattern_type="stix",
            valid_from=c.first_seen or stamp["created"],
            indicator_types=["malicious-activity"],
            **stamp,
        )
        for pattern, name in patterns
    ]
    return observables, indicators
